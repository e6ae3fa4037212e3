/**
 * The class of a partly known image, read by the model itself — a diffusion classifier (Li et
 * al. 2023, "Your diffusion model is secretly a zero-shot classifier"): noise the image to a few
 * levels t, ask the conditional model for ε̂(x_t, t, y) under every class y, and pick the class
 * whose prediction misses the true noise least over the known pixels,
 *
 *   ŷ = argmin_y Σ_t Σ_{known p} (ε̂(x_t, t, y)_p − ε_p)².
 *
 * Unlabelled /inpaint uses it: the null class at a few steps completes the known half of a digit
 * as some digit, often another one (QUALITY.md, "Inpainting without a label"); conditioned on
 * the class its known pixels read as, RePaint keeps it. The unknown pixels are filled with the
 * data's mean (the card's null-class prior row, shared/data_prior.ts) before noising, so every
 * class sees the same neutral guess there.
 *
 * Cost: LABEL_LEVELS.length model calls of n × classes images each. Deterministic: the noise
 * comes from the request's seed.
 */
import type { ModelCard } from "../shared/model_card.ts";
import { priorFromCard } from "../shared/data_prior.ts";
import { Rng } from "../shared/rng.ts";
import { qSample, type Schedule } from "../shared/schedule.ts";
import type { Engine, Timing } from "./engine.ts";

/** Noise levels, as fractions of T (t = round(f·(T − 1))). Measured best of three sets. */
export const LABEL_LEVELS = [0.2, 0.4, 0.6, 0.8, 0.9];

/** Mixed into the request's seed so the classifier's noise differs from the sampler's. */
const SEED_SALT = 0x1abe1;

/**
 * Whether the card can read a class off an image: a conditional ε-prediction model with a data
 * prior (the fill of the unknown pixels).
 */
export function canInferLabel(card: ModelCard): boolean {
  return card.architecture.numClasses > 0 && card.sampling.prior !== undefined &&
    card.prediction === "epsilon";
}

/** Image-forward passes inferLabels costs per image (the work cap counts them). */
export function labelInferenceWork(card: ModelCard): number {
  return LABEL_LEVELS.length * card.architecture.numClasses;
}

/**
 * One class per image for n images (n·size values in [−1, 1]) whose pixels with `keep` ≠ 0 are
 * known (keep: n·size flags, as RePaint's).
 */
export async function inferLabels(
  engine: Engine,
  base: Schedule,
  images: Float32Array,
  keep: Uint8Array,
  n: number,
  seed: number,
  timing?: Timing,
  signal?: AbortSignal,
): Promise<Int32Array> {
  const { card } = engine.model;
  if (!canInferLabel(card)) throw new RangeError("label inference needs classes and a prior");
  const k = card.architecture.numClasses;
  const size = card.image.channels * card.image.size ** 2;
  if (images.length !== n * size || keep.length !== n * size) {
    throw new RangeError(`need ${n} images of ${size} values and as many flags`);
  }
  const prior = priorFromCard(card.sampling.prior!);
  const mean = prior.mean.subarray(prior.classes * size, (prior.classes + 1) * size);
  const filled = images.map((v, j) => (keep[j] ? v : mean[j % size]));
  const labels = Array.from({ length: n * k }, (_, j) => j % k);
  const model = engine.epsModel(n * k, labels, 1, timing);
  const rng = new Rng((seed ^ SEED_SALT) >>> 0);
  const eps = new Float32Array(n * size), xt = new Float32Array(n * size);
  const batch = new Float32Array(n * k * size);
  const score = new Float64Array(n * k);
  for (const f of LABEL_LEVELS) {
    signal?.throwIfAborted();
    const t = Math.round(f * (base.T - 1));
    rng.fillNormal(eps);
    qSample(base, t, filled, eps, xt);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < k; c++) {
        batch.set(xt.subarray(i * size, (i + 1) * size), (i * k + c) * size);
      }
    }
    const out = await model(batch, t);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < k; c++) {
        const o = (i * k + c) * size;
        let e = 0;
        for (let p = 0; p < size; p++) {
          if (keep[i * size + p]) e += (out[o + p] - eps[i * size + p]) ** 2;
        }
        score[i * k + c] += e;
      }
    }
  }
  return Int32Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let c = 1; c < k; c++) if (score[i * k + c] < score[i * k + best]) best = c;
    return best;
  });
}
