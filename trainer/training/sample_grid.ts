/**
 * Sample grids during training: images drawn with the EMA weights through the one shared
 * sampling loop (shared/sample.ts: a short respaced chain, ancestral unless told otherwise), tiled and written as
 * `<run>/samples/step-NNNNNN.png`. Conditional models get one row per class (up to 10 classes),
 * 10 images per row.
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import type { UNetConfig } from "../../shared/model_card.ts";
import type { Schedule } from "../../shared/schedule.ts";
import { type EpsModel, sample } from "../../shared/sample.ts";
import { guide } from "../../shared/step.ts";
import type { SamplerName } from "../../shared/samplers/mod.ts";
import type { Prediction } from "../../shared/prediction.ts";
import { encodePng, tileImages } from "../../shared/image.ts";
import { forward } from "../network/tfjs_ops.ts";

/** NCHW ↔ NHWC for n images of `c` channels and `hw` pixels. */
export function nchwToNhwc(x: ArrayLike<number>, n: number, c: number, hw: number): Float32Array {
  const out = new Float32Array(n * c * hw);
  for (let k = 0; k < n; k++) {
    for (let ch = 0; ch < c; ch++) {
      for (let p = 0; p < hw; p++) out[(k * hw + p) * c + ch] = x[(k * c + ch) * hw + p];
    }
  }
  return out;
}

export function nhwcToNchw(x: ArrayLike<number>, n: number, c: number, hw: number): Float32Array {
  const out = new Float32Array(n * c * hw);
  for (let k = 0; k < n; k++) {
    for (let ch = 0; ch < c; ch++) {
      for (let p = 0; p < hw; p++) out[(k * c + ch) * hw + p] = x[(k * hw + p) * c + ch];
    }
  }
  return out;
}

/**
 * An EpsModel (NCHW in, NCHW out) running the UNet with `params` in tfjs. `labels` (conditional
 * models) gives each image's class; with `guidance` ≠ 1 the unconditional (null-class) pass is
 * also run and combined as ε_u + w·(ε_c − ε_u).
 */
export function tfjsEpsModel(
  params: Record<string, tf.Tensor>,
  unet: UNetConfig,
  n: number,
  labels: Int32Array | null,
  guidance = 1,
): EpsModel {
  const S = unet.imageSize, C = unet.inChannels, hw = S * S;
  return async (x, t) => {
    const run = async (y: Int32Array | null) => {
      const out = tf.tidy(() => {
        const xt = tf.tensor4d(C === 1 ? x : nchwToNhwc(x, n, C, hw), [n, S, S, C]);
        const tt = tf.fill([n], t, "float32") as tf.Tensor1D;
        const yt = y ? tf.tensor1d(y, "int32") : undefined;
        return forward(params, unet, xt, tt, yt);
      });
      const v = (await out.data()) as Float32Array;
      out.dispose();
      return C === 1 ? v : nhwcToNchw(v, n, C, hw);
    };
    if (unet.numClasses === 0) return await run(null);
    const cond = await run(labels ?? new Int32Array(n).fill(unet.numClasses));
    if (guidance === 1 || !labels) return cond;
    const uncond = await run(new Int32Array(n).fill(unet.numClasses));
    return guide(uncond, cond, guidance, new Float32Array(cond.length));
  };
}

export interface GridOptions {
  /** Images for an unconditional model. */
  count: number;
  /** Respaced sampler steps. */
  steps: number;
  seed: number;
  guidance?: number;
  /** Default ddim at η = 1 (DDPM ancestral); any sampler that needs no card statistics. */
  sampler?: SamplerName;
  /** What the network outputs (default epsilon). */
  prediction?: Prediction;
  signal?: AbortSignal;
}

export interface SampleGrid {
  /** NCHW samples in [−1, 1]. */
  images: Float32Array;
  n: number;
  cols: number;
  png: Uint8Array;
}

/** Draw a grid with the given (EMA) parameters. */
export async function sampleGrid(
  params: Record<string, tf.Tensor>,
  unet: UNetConfig,
  base: Schedule,
  o: GridOptions,
): Promise<SampleGrid> {
  let n = o.count, cols: number | undefined, labels: Int32Array | null = null;
  if (unet.numClasses > 0) {
    const rows = Math.min(unet.numClasses, 10);
    cols = 10;
    n = rows * cols;
    labels = Int32Array.from({ length: n }, (_, k) => Math.floor(k / cols!));
  }
  const model = tfjsEpsModel(params, unet, n, labels, o.guidance ?? 1);
  const size = unet.inChannels * unet.imageSize * unet.imageSize;
  const images = await sample(base, model, {
    n,
    size,
    steps: o.steps,
    seed: o.seed,
    sampler: o.sampler,
    prediction: o.prediction,
    signal: o.signal,
  });
  const grid = tileImages(images, n, unet.inChannels, unet.imageSize, 2, cols);
  return { images, n, cols: cols ?? Math.ceil(Math.sqrt(n)), png: encodePng(grid) };
}

/**
 * `<run>/samples/<prefix>step-NNNNNN<suffix>.png` (written via a temporary file + rename);
 * resolves to its path.
 */
export async function writeSampleGrid(
  runDir: string,
  step: number,
  png: Uint8Array,
  prefix = "",
  suffix = "",
): Promise<string> {
  const dir = join(runDir, "samples");
  await Deno.mkdir(dir, { recursive: true });
  const file = join(dir, `${prefix}step-${String(step).padStart(6, "0")}${suffix}.png`);
  await Deno.writeFile(`${file}.tmp`, png);
  await Deno.rename(`${file}.tmp`, file);
  return file;
}
