/**
 * One distillation update and its parts: the teacher as a batch model on per-image timesteps, the
 * batch draw (its order is part of the resume contract), the student's clipped output the loss
 * compares, the update itself, a round's optimiser settings and a student's starting state.
 */
import * as tf from "@tensorflow/tfjs";
import type { UNetConfig } from "../../shared/model_card.ts";
import type { Schedule } from "../../shared/schedule.ts";
import type { Prediction } from "../../shared/prediction.ts";
import type { Rng } from "../../shared/rng.ts";
import { guide } from "../../shared/step.ts";
import {
  applyStep,
  droppedLabels,
  noisedImages,
  type OptimConfig,
  restoreState,
  type StepResult,
  type TrainState,
} from "../training/loop.ts";
import { type BatchSampler, type Dataset, imageValues } from "../data/datasets.ts";
import { forward } from "../network/tfjs_ops.ts";
import { type BatchModel, distillTargets, type RoundGrid } from "./math.ts";
import type { DistillConfig } from "./config.ts";

/** A model of `params` on per-image timesteps and labels (NHWC = the data's layout). */
export function tfjsBatchModel(params: Record<string, tf.Tensor>, unet: UNetConfig): BatchModel {
  const S = unet.imageSize, C = unet.inChannels;
  return async (x, t, y) => {
    const out = tf.tidy(() =>
      forward(
        params,
        unet,
        tf.tensor4d(x, [t.length, S, S, C]),
        tf.tensor1d(t),
        y ? tf.tensor1d(y, "int32") : undefined,
      )
    );
    const v = (await out.data()) as Float32Array;
    out.dispose();
    return v;
  };
}

/**
 * `model`'s outputs at labels `y` (cond) and at the null class (uncond) for the same x and t,
 * from one call on [x; x] with labels [y; null].
 */
export async function withNullClass(
  model: BatchModel,
  x: Float32Array,
  t: Float32Array,
  y: Int32Array,
  nullLabel: number,
): Promise<{ cond: Float32Array; uncond: Float32Array }> {
  const n = t.length;
  const x2 = new Float32Array(2 * x.length);
  x2.set(x);
  x2.set(x, x.length);
  const t2 = new Float32Array(2 * n);
  t2.set(t);
  t2.set(t, n);
  const y2 = new Int32Array(2 * n).fill(nullLabel);
  y2.set(y);
  const got = await model(x2, t2, y2);
  const e = got instanceof Float32Array ? got : Float32Array.from(got);
  return { cond: e.subarray(0, x.length), uncond: e.subarray(x.length) };
}

/**
 * The teacher under classifier-free guidance w (the edge's combination, shared/step.ts `guide`):
 * ε̂_∅ + w·(ε̂_y − ε̂_∅) for labelled images, from one call on [x; x] with labels [y; null]; images
 * whose label is the null class (`nullLabel`, dropped labels) get ε̂_∅. w = 1: `model` itself.
 */
export function guidedBatchModel(model: BatchModel, w: number, nullLabel: number): BatchModel {
  if (w === 1) return model;
  return async (x, t, y) => {
    if (!y) return await model(x, t, y);
    const { cond, uncond } = await withNullClass(model, x, t, y, nullLabel);
    const out = guide(uncond, cond, w, new Float32Array(x.length));
    return withRows(out, uncond, y.length, (i) => y[i] === nullLabel);
  };
}

/** `out` (n images) with image i's values replaced by `from`'s wherever `pick(i)`. */
export function withRows(
  out: Float32Array,
  from: Float32Array,
  n: number,
  pick: (i: number) => boolean,
): Float32Array {
  const px = out.length / n;
  for (let i = 0; i < n; i++) if (pick(i)) out.set(from.subarray(i * px, (i + 1) * px), i * px);
  return out;
}

/** The host inputs of a distillation step before the teacher runs. */
export interface DistillBatch {
  xt: Float32Array;
  /** Student call index of each image. */
  k: Int32Array;
  /** Its original timestep. */
  t: Float32Array;
  y: Int32Array | null;
}

/**
 * Draw batch indices, then each image's student step, then ε for the whole batch, then
 * (conditional) the label-dropout coins: this order is part of the resume contract.
 */
export function drawDistillBatch(
  st: TrainState,
  data: Dataset,
  base: Schedule,
  grid: RoundGrid,
  batch: number,
  unet: UNetConfig,
  condDrop: number,
): DistillBatch {
  const px = imageValues(data);
  const idx = st.sampler.next(batch);
  const k = new Int32Array(batch);
  for (let i = 0; i < batch; i++) k[i] = st.noise.int(grid.steps);
  const t = Float32Array.from(k, (kk) => grid.student[kk]);
  const eps = st.noise.fillNormal(new Float32Array(batch * px));
  const xt = noisedImages(base, data, idx, t, eps);
  return { xt, k, t, y: droppedLabels(st.noise, data, idx, unet, condDrop) };
}

/**
 * The network output as the student's DDIM step uses it: x̂₀ from the output (per prediction
 * type), clipped to [−1, 1], and re-expressed in the prediction's own terms with ε' consistent
 * with the clipped x̂₀ (shared/prediction.ts `denoise`). Comparing this with the distilled target
 * is the loss: for an ε-student, ‖ε' − ε̃‖² = SNR_t·‖clip(x̂₀) − x̃₀‖², i.e. ε-space MSE wherever
 * x̂₀ is inside [−1, 1] and no gradient where the sampler clips it (at t = T−1, α = 4.9e-5, that
 * is nearly every value: there an ε-model cannot be steered). α, σ: per image, shape [n,1,1,1].
 */
export function clippedOutput(
  prediction: Prediction,
  out: tf.Tensor4D,
  xt: tf.Tensor4D,
  alpha: tf.Tensor4D,
  sigma: tf.Tensor4D,
): tf.Tensor {
  const x0raw = prediction === "epsilon"
    ? tf.div(tf.sub(xt, tf.mul(sigma, out)), alpha)
    : prediction === "x0"
    ? out
    : tf.sub(tf.mul(alpha, xt), tf.mul(sigma, out));
  const x0 = tf.clipByValue(x0raw, -1, 1);
  if (prediction === "x0") return x0;
  const eps = tf.div(tf.sub(xt, tf.mul(alpha, x0)), sigma);
  return prediction === "epsilon" ? eps : tf.sub(tf.mul(alpha, eps), tf.mul(sigma, x0));
}

/** One distillation update of `st` (mutates it): draw, run the teacher twice, apply Adam. */
export async function distillStep(
  st: TrainState,
  data: Dataset,
  base: Schedule,
  grid: RoundGrid,
  teacher: BatchModel,
  unet: UNetConfig,
  batch: number,
  opt: OptimConfig & { prediction: Prediction; clipLoss?: boolean },
): Promise<StepResult> {
  const b = drawDistillBatch(st, data, base, grid, batch, unet, opt.condDrop);
  const { target } = await distillTargets(base, grid, teacher, b.xt, b.k, b.y, opt.prediction);
  const n = b.k.length;
  const a = Float32Array.from(b.t, (t) => base.sqrtAlphasCumprod[t]);
  const s = Float32Array.from(b.t, (t) => base.sqrtOneMinusAlphasCumprod[t]);
  const alpha = tf.tensor4d(a, [n, 1, 1, 1]), sigma = tf.tensor4d(s, [n, 1, 1, 1]);
  try {
    return await applyStep(
      st,
      { xt: b.xt, t: b.t, y: b.y, target },
      unet,
      batch,
      opt,
      opt.clipLoss === false
        ? undefined
        : (out, xt) => clippedOutput(opt.prediction, out, xt, alpha, sigma),
    );
  } finally {
    alpha.dispose();
    sigma.dispose();
  }
}

/** The optimiser settings of a round of K updates. */
export function roundOptim(
  cfg: DistillConfig,
): OptimConfig & { prediction: Prediction; clipLoss: boolean } {
  return {
    lr: cfg.lr,
    warmup: cfg.warmup,
    ema: cfg.ema,
    gradClip: cfg.gradClip,
    condDrop: cfg.condDrop,
    lrSchedule: cfg.lrSchedule,
    lrMin: 0,
    lrDecaySteps: cfg.stepsPerRound,
    loss: "l2",
    prediction: cfg.prediction,
    clipLoss: cfg.loss === "clipped",
  };
}

/** A student state starting from `weights` (params = EMA = weights, zero Adam moments). */
export function studentFrom(
  unet: UNetConfig,
  weights: Map<string, Float32Array>,
  sampler: BatchSampler,
  noise: Rng,
): TrainState {
  const zeros = new Map([...weights].map(([k, v]) => [k, new Float32Array(v.length)]));
  const st = restoreState(unet, {
    step: 0,
    params: weights,
    ema: weights,
    adamM: zeros,
    adamV: zeros,
    sampler: sampler.state(),
    noise: noise.state(),
  }, sampler.count);
  st.sampler = sampler;
  st.noise = noise;
  return st;
}
