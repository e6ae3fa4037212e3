/**
 * One reverse step of a (respaced) chain, generalised by η (Song et al. 2021, eq. 12):
 *
 *   x̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t            (optionally clipped to [−1, 1])
 *   ε' = (x_t − √ᾱ_t·x̂₀)/√(1−ᾱ_t)            (ε consistent with the clipped x̂₀)
 *   σ  = η·√β̃_t
 *   x_{t−1} = √ᾱ_{t−1}·x̂₀ + √(1−ᾱ_{t−1}−σ²)·ε' + σ_noise·z
 *
 * η = 1 gives DDPM ancestral sampling (the mean equals the posterior mean μ̃_t), η = 0 DDIM.
 * With variance "large" (η = 1 only) the noise uses σ² = β_t instead of β̃_t (Ho et al.).
 * The last step (i = 0) adds no noise and returns x̂₀.
 */
import type { Schedule } from "./schedule.ts";

export const VARIANCES = ["small", "large"] as const;
export type VarianceType = typeof VARIANCES[number];

export interface StepOptions {
  eta: number;
  clipDenoised: boolean;
  variance: VarianceType;
}

export const DEFAULT_STEP_OPTIONS: StepOptions = { eta: 1, clipDenoised: true, variance: "small" };

/** Per-step scalars, computed once in float64 for step index i of schedule s. */
export interface StepCoefficients {
  sqrtAbar: number;
  sqrtOneMinusAbar: number;
  sqrtAbarPrev: number;
  dirCoef: number;
  noiseStd: number;
}

export function stepCoefficients(s: Schedule, i: number, o: StepOptions): StepCoefficients {
  const abar = s.alphasCumprod[i], abarPrev = s.alphasCumprodPrev[i];
  const sigma2 = o.eta * o.eta * s.posteriorVariance[i];
  const noiseVar = i === 0 ? 0 : o.variance === "large" && o.eta === 1 ? s.betas[i] : sigma2;
  return {
    sqrtAbar: Math.sqrt(abar),
    sqrtOneMinusAbar: Math.sqrt(1 - abar),
    sqrtAbarPrev: Math.sqrt(abarPrev),
    dirCoef: Math.sqrt(Math.max(0, 1 - abarPrev - sigma2)),
    noiseStd: Math.sqrt(noiseVar),
  };
}

/**
 * x ← x_{t−1} in place. `eps` is the model's ε̂ for x; `noise` standard normals (only read when
 * this step adds noise; may be null for a deterministic step).
 */
export function reverseStep(
  x: Float32Array,
  eps: ArrayLike<number>,
  noise: ArrayLike<number> | null,
  c: StepCoefficients,
  clip: boolean,
): Float32Array {
  if (c.noiseStd > 0 && noise === null) throw new Error("this step needs noise");
  for (let j = 0; j < x.length; j++) {
    let x0 = (x[j] - c.sqrtOneMinusAbar * eps[j]) / c.sqrtAbar;
    if (clip) x0 = x0 < -1 ? -1 : x0 > 1 ? 1 : x0;
    const e = (x[j] - c.sqrtAbar * x0) / c.sqrtOneMinusAbar;
    let v = c.sqrtAbarPrev * x0 + c.dirCoef * e;
    if (c.noiseStd > 0) v += c.noiseStd * noise![j];
    x[j] = v;
  }
  return x;
}

/** Classifier-free guidance: ε = ε_u + w·(ε_c − ε_u), written into `out`. */
export function guide(
  epsUncond: ArrayLike<number>,
  epsCond: ArrayLike<number>,
  w: number,
  out: Float32Array,
): Float32Array {
  for (let j = 0; j < out.length; j++) out[j] = epsUncond[j] + w * (epsCond[j] - epsUncond[j]);
  return out;
}
