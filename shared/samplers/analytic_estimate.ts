/**
 * Monte Carlo estimate of Analytic-DPM's Γ_t = E_{x₀, ε} ‖ε̂(x_t, t)‖²/d (Bao et al. 2022, eq. 8),
 * x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, for every timestep t = 0…T−1 of the base schedule: at each t, M
 * images drawn (with replacement, seeded) from the training data, each with fresh noise, in one
 * batch. Run once at export; the card stores the result, so sampling pays nothing for it.
 * The model output is turned into ε̂ through shared/prediction.ts (unclipped), so any prediction
 * type gives the same statistic.
 */
import { denoise, denoisedBuffers, type Prediction } from "../prediction.ts";
import { Rng } from "../rng.ts";
import { qSample, type Schedule } from "../schedule.ts";

/** The model output for a batch x (n images) at timestep t, with one label per image or none. */
export type LabelledModel = (
  x: Float32Array,
  n: number,
  t: number,
  labels: Int32Array | null,
) => Promise<ArrayLike<number>>;

export interface GammaData {
  /** count × size values (NCHW per image), in [−1, 1]. */
  images: Float32Array;
  count: number;
  size: number;
  /** The class of each image, for conditional estimates; null otherwise. */
  labels: Int32Array | null;
}

export interface GammaOptions {
  /** Images per timestep (M). */
  samples: number;
  seed: number;
  prediction?: Prediction;
  /** Called after each timestep (progress, yielding). */
  onTimestep?: (done: number, total: number) => void | Promise<void>;
}

/** Γ_t for t = 0…T−1. */
export async function estimateGamma(
  model: LabelledModel,
  base: Schedule,
  data: GammaData,
  o: GammaOptions,
): Promise<Float64Array> {
  const { size } = data, M = o.samples;
  if (!(M >= 1) || data.count < 1) throw new RangeError("need at least one image and sample");
  const rng = new Rng(o.seed);
  const x0 = new Float32Array(M * size), eps = new Float32Array(M * size);
  const xt = new Float32Array(M * size);
  const labels = data.labels ? new Int32Array(M) : null;
  const buffers = denoisedBuffers(M * size);
  const gamma = new Float64Array(base.T);
  for (let t = 0; t < base.T; t++) {
    for (let m = 0; m < M; m++) {
      const k = rng.int(data.count);
      x0.set(data.images.subarray(k * size, (k + 1) * size), m * size);
      if (labels) labels[m] = data.labels![k];
    }
    rng.fillNormal(eps);
    qSample(base, t, x0, eps, xt);
    const out = await model(xt, M, t, labels);
    const a = base.sqrtAlphasCumprod[t], s = base.sqrtOneMinusAlphasCumprod[t];
    const e = denoise(o.prediction ?? "epsilon", xt, out, a, s, false, buffers).eps;
    let sum = 0;
    for (let j = 0; j < e.length; j++) sum += e[j] * e[j];
    gamma[t] = sum / e.length;
    await o.onTimestep?.(t + 1, base.T);
  }
  return gamma;
}

/** Γ rounded to 6 significant digits, as stored in the card. */
export function roundGamma(gamma: ArrayLike<number>): number[] {
  return Array.from(gamma, (g) => Number(g.toPrecision(6)));
}
