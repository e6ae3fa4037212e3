/**
 * What the network predicts, and the one place its output is turned into the two quantities
 * every sampler works with: the denoised image x̂₀ and the noise ε̂ of x_t = α·x₀ + σ·ε
 * (α = √ᾱ_t, σ = √(1−ᾱ_t)):
 *
 *   epsilon: ε̂ = out,            x̂₀ = (x − σ·ε̂)/α
 *   x0:      x̂₀ = out,           ε̂ = (x − α·x̂₀)/σ
 *   v:       x̂₀ = α·x − σ·out,   ε̂ = σ·x + α·out     (v = α·ε − σ·x₀; Salimans & Ho 2022)
 *
 * With clipping, x̂₀ is clamped to [−1, 1] and ε̂ recomputed from it, so the pair stays a
 * consistent decomposition of x. Values are kept in float64 (the samplers' arithmetic).
 */
export const PREDICTIONS = ["epsilon", "v", "x0"] as const;
export type Prediction = typeof PREDICTIONS[number];

/** Reusable per-request buffers for x̂₀ and ε̂. */
export interface Denoised {
  x0: Float64Array;
  eps: Float64Array;
}

export function denoisedBuffers(size: number): Denoised {
  return { x0: new Float64Array(size), eps: new Float64Array(size) };
}

/**
 * Fill `into` with x̂₀ and ε̂ for x at a timestep with α = √ᾱ, σ = √(1−ᾱ), from the model's
 * output `out` of the given prediction type.
 */
export function denoise(
  prediction: Prediction,
  x: ArrayLike<number>,
  out: ArrayLike<number>,
  alpha: number,
  sigma: number,
  clip: boolean,
  into: Denoised,
): Denoised {
  const { x0, eps } = into;
  for (let j = 0; j < x.length; j++) {
    let d: number;
    switch (prediction) {
      case "epsilon":
        d = (x[j] - sigma * out[j]) / alpha;
        break;
      case "x0":
        d = out[j];
        break;
      case "v":
        d = alpha * x[j] - sigma * out[j];
        break;
      default:
        throw new RangeError(`unknown prediction ${JSON.stringify(prediction)}`);
    }
    if (clip) d = d < -1 ? -1 : d > 1 ? 1 : d;
    x0[j] = d;
    // σ = 0 only at ᾱ = 1 (no noise at all): there ε̂ is undefined and unused.
    eps[j] = sigma > 0 ? (x[j] - alpha * d) / sigma : 0;
  }
  return into;
}

/**
 * `out` rewritten in place so that it decodes to ε̂ + δ (and the x̂₀ consistent with it) for the
 * same x: epsilon adds δ, x0 subtracts (σ/α)·δ, v adds δ/α (α² + σ² = 1). Classifier guidance's
 * ε-shift (Dhariwal & Nichol's condition_score) for any prediction type, before any clipping.
 */
export function shiftEpsilon(
  prediction: Prediction,
  out: Float32Array,
  delta: ArrayLike<number>,
  alpha: number,
  sigma: number,
): Float32Array {
  const c = prediction === "epsilon" ? 1 : prediction === "x0" ? -sigma / alpha : 1 / alpha;
  for (let j = 0; j < out.length; j++) out[j] += c * delta[j];
  return out;
}

/** The target a network of this prediction type is trained on for x_t = α·x₀ + σ·ε. */
export function target(
  prediction: Prediction,
  x0: number,
  eps: number,
  alpha: number,
  sigma: number,
): number {
  switch (prediction) {
    case "epsilon":
      return eps;
    case "x0":
      return x0;
    case "v":
      return alpha * eps - sigma * x0;
  }
}
