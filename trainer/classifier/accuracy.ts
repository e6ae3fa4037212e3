/**
 * Held-out accuracy of the classifier against t: the test split (never trained on) noised at
 * every t bucket — B equal ranges of 0…T−1, each image at one t drawn uniformly inside the bucket
 * — with a fixed seed, so every evaluation of a run (and of the shipped classifier) sees the same
 * x_t and numbers compare across steps and runs.
 */
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../shared/rng.ts";
import type { Schedule } from "../../shared/schedule.ts";
import { type Dataset, imageValues, subset } from "../data/datasets.ts";
import { noisedImages } from "../training/loop.ts";
import type { ClassifierConfig } from "./net.ts";
import { classifierLogits } from "./tfjs.ts";

/** The fixed seed of the evaluation's t and ε draws. */
export const EVAL_SEED = 28;

export interface BucketAccuracy {
  /** Timesteps from…to (inclusive). */
  from: number;
  to: number;
  accuracy: number;
}

export interface AccuracyByT {
  /** Held-out images per bucket. */
  images: number;
  buckets: BucketAccuracy[];
  /** Mean over the buckets (= t uniform over the schedule). */
  mean: number;
}

/** The B buckets of 0…T−1 as [from, to] (inclusive, equal up to rounding). */
export function tBuckets(T: number, B: number): [number, number][] {
  return Array.from(
    { length: B },
    (_, b) => [Math.floor(b * T / B), Math.floor((b + 1) * T / B) - 1],
  );
}

/**
 * Accuracy of `params` on `test` (cut to `images` spread over the classes, 0 = all) in each of
 * `buckets` t ranges.
 */
export async function accuracyByT(
  params: Record<string, tf.Tensor>,
  cfg: ClassifierConfig,
  sched: Schedule,
  test: Dataset,
  o: { buckets: number; images?: number; batch?: number },
): Promise<AccuracyByT> {
  if (!test.labels) throw new Error("held-out accuracy needs labelled data");
  const data = o.images && o.images < test.count ? subset(test, o.images) : test;
  const labels = data.labels!;
  const rng = new Rng(EVAL_SEED), px = imageValues(data), batch = o.batch ?? 250;
  const S = cfg.imageSize, C = cfg.inChannels;
  const out: BucketAccuracy[] = [];
  for (const [from, to] of tBuckets(sched.T, o.buckets)) {
    let correct = 0;
    for (let s = 0; s < data.count; s += batch) {
      const n = Math.min(batch, data.count - s);
      const idx = Int32Array.from({ length: n }, (_, i) => s + i);
      const t = Float32Array.from(idx, () => from + rng.int(to - from + 1));
      const xt = noisedImages(sched, data, idx, t, rng.fillNormal(new Float32Array(n * px)));
      const pred = tf.tidy(() =>
        tf.argMax(classifierLogits(params, cfg, tf.tensor4d(xt, [n, S, S, C]), tf.tensor1d(t)), 1)
      );
      const p = await pred.data();
      pred.dispose();
      for (let i = 0; i < n; i++) if (p[i] === labels[s + i]) correct++;
    }
    out.push({ from, to, accuracy: correct / data.count });
  }
  return {
    images: data.count,
    buckets: out,
    mean: out.reduce((a, b) => a + b.accuracy, 0) / out.length,
  };
}

/** "t 0–99 99.8 % · t 100–199 99.6 % · …" */
export function formatAccuracy(a: AccuracyByT): string {
  return a.buckets.map((b) => `t ${b.from}–${b.to} ${(100 * b.accuracy).toFixed(1)}%`).join(" · ") +
    ` · mean ${(100 * a.mean).toFixed(1)}% (${a.images} held-out images per bucket)`;
}
