/**
 * The prior step: the first call of every chain that starts at t = T − 1, made without the UNet.
 *
 * At t = T − 1 of the cosine schedule α = √ᾱ = 4.9e-5: x_t = α·x₀ + σ·ε carries almost nothing of
 * x₀, so the best estimate of x₀ — the posterior mean E[x₀ | x_t, y] — is the data's own mean (of
 * class y). For a diagonal Gaussian prior N(m, v) per pixel it is exactly
 *
 *   x̂₀ = m + α·v/(α²·v + σ²) · (x − α·m),
 *
 * and for real data the error of that approximation shrinks with α (it is the first-order term
 * of the posterior mean's expansion in α). An ε-network cannot express this estimate: its x̂₀ =
 * (x − σ·ε̂)/α multiplies ε̂'s error by 1/α = 2·10⁴ (QUALITY.md, "Distillation"). So wherever α ≤
 * `maxAlpha` this module hands the sampler the output that the posterior mean implies (in the
 * card's prediction type) instead of calling the model: one UNet call fewer per image, and a
 * better first x̂₀.
 *
 * The per-class means and variances are measured on the training images at export
 * (trainer/prior_export.ts) and stored in the card (`sampling.prior`). Classifier-free guidance
 * is linear in x̂₀, so a guided request gets x̂₀_null + w·(x̂₀_y − x̂₀_null).
 */
import type { Prediction } from "./prediction.ts";
import { target } from "./prediction.ts";
import type { Schedule } from "./schedule.ts";
import type { EpsModel } from "./sample.ts";

/** Mean and variance per pixel of each class, and (last row) of all the training images. */
export interface DataPrior {
  /** Number of classes (0 for unconditional data); there are classes + 1 rows. */
  classes: number;
  /** Values per image (C·H·W, NCHW order). */
  size: number;
  /** (classes + 1)·size means, row k = class k, row `classes` = all images (the null class). */
  mean: Float32Array;
  /** Same layout: per-pixel variances. */
  variance: Float32Array;
  /** The step replaces every call at a timestep with α = √ᾱ ≤ maxAlpha. */
  maxAlpha: number;
}

/** Default `maxAlpha`: only the cosine schedule's t = T − 1 (α 4.9e-5; t = T − 2 has 3.3e-3). */
export const DEFAULT_PRIOR_MAX_ALPHA = 1e-3;

/** Measure a prior on images (n·size values, NCHW) with optional labels in 0…classes−1. */
export function measurePrior(
  images: ArrayLike<number>,
  size: number,
  labels: ArrayLike<number> | null,
  classes: number,
  maxAlpha = DEFAULT_PRIOR_MAX_ALPHA,
): DataPrior {
  const n = images.length / size;
  if (!Number.isInteger(n) || n < 1) throw new RangeError("images must be whole, non-empty");
  if (labels && labels.length !== n) throw new RangeError(`need ${n} labels`);
  const rows = classes + 1;
  const sum = new Float64Array(rows * size), sq = new Float64Array(rows * size);
  const count = new Float64Array(rows);
  for (let i = 0; i < n; i++) {
    const y = labels ? labels[i] : -1;
    const targets = labels && classes > 0 ? [y, classes] : [classes];
    if (labels && classes > 0 && !(y >= 0 && y < classes && Number.isInteger(y))) {
      throw new RangeError(`label ${y} is not in 0…${classes - 1}`);
    }
    for (const r of targets) {
      count[r]++;
      for (let j = 0; j < size; j++) {
        const v = images[i * size + j];
        sum[r * size + j] += v;
        sq[r * size + j] += v * v;
      }
    }
  }
  const mean = new Float32Array(rows * size), variance = new Float32Array(rows * size);
  for (let r = 0; r < rows; r++) {
    if (count[r] === 0) throw new RangeError(`no images of class ${r}`);
    for (let j = 0; j < size; j++) {
      const m = sum[r * size + j] / count[r];
      mean[r * size + j] = m;
      variance[r * size + j] = Math.max(0, sq[r * size + j] / count[r] - m * m);
    }
  }
  return { classes, size, mean, variance, maxAlpha };
}

/** x̂₀ = the posterior mean under row r's Gaussian prior, added with weight w into `into`. */
function addPosteriorMean(
  p: DataPrior,
  r: number,
  x: ArrayLike<number>,
  off: number,
  alpha: number,
  sigma2: number,
  w: number,
  into: Float64Array,
): void {
  const base = r * p.size;
  for (let j = 0; j < p.size; j++) {
    const m = p.mean[base + j], v = p.variance[base + j];
    into[off + j] += w *
      (m + (alpha * v / (alpha * alpha * v + sigma2)) * (x[off + j] - alpha * m));
  }
}

export interface PriorRequest {
  /** Images per batch. */
  n: number;
  /** Class per image, or null for the null class (unconditional). */
  labels: ArrayLike<number> | null;
  /** Classifier-free guidance weight w (1 = the class model alone, 0 = the null class). */
  guidance: number;
  prediction: Prediction;
}

/**
 * The model with its calls at α ≤ prior.maxAlpha answered by the prior: the output that the
 * posterior-mean x̂₀ implies, in the model's prediction type. Other calls go to `model`.
 */
export function withPrior(
  model: EpsModel,
  base: Schedule,
  prior: DataPrior,
  req: PriorRequest,
): EpsModel {
  const { size } = prior;
  const x0 = new Float64Array(req.n * size);
  const out = new Float32Array(req.n * size);
  return (x, t) => {
    const alpha = base.sqrtAlphasCumprod[t], sigma = base.sqrtOneMinusAlphasCumprod[t];
    if (!(alpha <= prior.maxAlpha)) return model(x, t);
    if (x.length !== req.n * size) throw new RangeError(`need ${req.n * size} values`);
    x0.fill(0);
    const s2 = sigma * sigma;
    for (let i = 0; i < req.n; i++) {
      const off = i * size;
      const y = req.labels ? req.labels[i] : null;
      if (y === null || prior.classes === 0 || req.guidance === 0) {
        addPosteriorMean(prior, prior.classes, x, off, alpha, s2, 1, x0);
      } else {
        addPosteriorMean(prior, y, x, off, alpha, s2, req.guidance, x0);
        if (req.guidance !== 1) {
          addPosteriorMean(prior, prior.classes, x, off, alpha, s2, 1 - req.guidance, x0);
        }
      }
    }
    for (let j = 0; j < out.length; j++) {
      out[j] = target(req.prediction, x0[j], (x[j] - alpha * x0[j]) / sigma, alpha, sigma);
    }
    return Promise.resolve(out);
  };
}

/** The card's form of a prior (`sampling.prior`): float32 arrays as base64 (little-endian). */
export interface PriorCard {
  maxAlpha: number;
  classes: number;
  size: number;
  mean: string;
  variance: string;
  data: string;
}

export function priorToCard(p: DataPrior, data: string): PriorCard {
  return {
    data,
    maxAlpha: p.maxAlpha,
    classes: p.classes,
    size: p.size,
    mean: toBase64(p.mean),
    variance: toBase64(p.variance),
  };
}

export function priorFromCard(c: PriorCard): DataPrior {
  const mean = fromBase64(c.mean), variance = fromBase64(c.variance);
  const want = (c.classes + 1) * c.size;
  if (mean.length !== want || variance.length !== want) {
    throw new RangeError(`sampling.prior: need ${want} means and variances`);
  }
  return { classes: c.classes, size: c.size, mean, variance, maxAlpha: c.maxAlpha };
}

function toBase64(a: Float32Array): string {
  const bytes = new Uint8Array(a.length * 4);
  const view = new DataView(bytes.buffer);
  a.forEach((v, i) => view.setFloat32(i * 4, v, true));
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(s: string): Float32Array {
  const bin = atob(s);
  if (bin.length % 4 !== 0) throw new RangeError("sampling.prior: not float32 data");
  const view = new DataView(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)).buffer);
  const out = new Float32Array(bin.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}
