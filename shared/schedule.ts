/**
 * Noise schedules for DDPM (Ho et al. 2020) and improved DDPM (Nichol & Dhariwal 2021).
 *
 * Every quantity is derived once, in float64, from the β sequence. Index t runs 0…T−1
 * (t = 0 is the least noisy step), as in diffusers and improved-diffusion.
 */

export type ScheduleKind = "linear" | "cosine";

export interface Schedule {
  /** Number of steps in this chain. */
  readonly T: number;
  /** For a respaced chain: the original timestep of each step (what the model is conditioned on). */
  readonly timesteps: Int32Array;
  readonly betas: Float64Array;
  readonly alphas: Float64Array;
  readonly alphasCumprod: Float64Array;
  /** ᾱ_{t−1}, with ᾱ_{−1} = 1. */
  readonly alphasCumprodPrev: Float64Array;
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  /** β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t). */
  readonly posteriorVariance: Float64Array;
  /** Posterior mean μ̃_t = coef1 · x̂₀ + coef2 · x_t. */
  readonly posteriorMeanCoef1: Float64Array;
  readonly posteriorMeanCoef2: Float64Array;
}

/** β_t of the DDPM paper: linear from 1e-4 to 0.02 (scaled by 1000/T for other lengths). */
export function linearBetas(T: number): Float64Array {
  const scale = 1000 / T;
  const start = scale * 1e-4, end = scale * 0.02;
  const betas = new Float64Array(T);
  for (let t = 0; t < T; t++) betas[t] = T === 1 ? start : start + (end - start) * t / (T - 1);
  return betas;
}

/** Improved-DDPM cosine schedule: ᾱ(t) = cos²(((t/T + s)/(1 + s))·π/2), β capped at 0.999. */
export function cosineBetas(T: number, s = 0.008, maxBeta = 0.999): Float64Array {
  const f = (t: number) => Math.cos(((t / T + s) / (1 + s)) * Math.PI / 2) ** 2;
  const betas = new Float64Array(T);
  for (let t = 0; t < T; t++) betas[t] = Math.min(1 - f(t + 1) / f(t), maxBeta);
  return betas;
}

export function betasFor(kind: ScheduleKind, T: number): Float64Array {
  return kind === "linear" ? linearBetas(T) : cosineBetas(T);
}

/** Build every derived quantity of a chain from its β sequence. */
export function scheduleFromBetas(betas: Float64Array, timesteps?: Int32Array): Schedule {
  const T = betas.length;
  const alphas = betas.map((b) => 1 - b);
  const alphasCumprod = new Float64Array(T);
  let prod = 1;
  for (let t = 0; t < T; t++) alphasCumprod[t] = prod *= alphas[t];
  const alphasCumprodPrev = new Float64Array(T);
  for (let t = 0; t < T; t++) alphasCumprodPrev[t] = t === 0 ? 1 : alphasCumprod[t - 1];
  const posteriorVariance = new Float64Array(T);
  const posteriorMeanCoef1 = new Float64Array(T);
  const posteriorMeanCoef2 = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    const oneMinus = 1 - alphasCumprod[t];
    posteriorVariance[t] = betas[t] * (1 - alphasCumprodPrev[t]) / oneMinus;
    posteriorMeanCoef1[t] = betas[t] * Math.sqrt(alphasCumprodPrev[t]) / oneMinus;
    posteriorMeanCoef2[t] = (1 - alphasCumprodPrev[t]) * Math.sqrt(alphas[t]) / oneMinus;
  }
  return {
    T,
    timesteps: timesteps ?? Int32Array.from({ length: T }, (_, t) => t),
    betas,
    alphas,
    alphasCumprod,
    alphasCumprodPrev,
    sqrtAlphasCumprod: alphasCumprod.map(Math.sqrt),
    sqrtOneMinusAlphasCumprod: alphasCumprod.map((a) => Math.sqrt(1 - a)),
    posteriorVariance,
    posteriorMeanCoef1,
    posteriorMeanCoef2,
  };
}

export function makeSchedule(kind: ScheduleKind, T: number): Schedule {
  return scheduleFromBetas(betasFor(kind, T));
}

/**
 * How a short chain picks its S timesteps out of T (all ascending, always ending at t = T−1):
 * - `linspace`: evenly spaced with both ends kept (t = 0 … T−1);
 * - `trailing`: evenly spaced back from T−1 in strides of T/S, so the last step is t = T/S − 1
 *   (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed");
 * - `quadratic`: t ∝ (i/(S−1))², dense near t = 0 (the DDIM paper's quadratic choice, here with
 *   both ends kept; where rounding would repeat a timestep the next one is used).
 * - `power`: trailing with gaps that grow as the noise falls, dense near t = T−1 where the image's
 *   structure (and its class) is decided: t_k = T·(1 − (k/S)^ρ) − 1 for k = 0…S−1 with
 *   ρ = POWER_SPACING_RHO (ρ = 1 is `trailing`). Measured best for few steps (QUALITY.md).
 */
export const SPACINGS = ["linspace", "trailing", "quadratic", "power"] as const;
/**
 * ρ of the `power` spacing. QUALITY.md: at 5 steps (dpm++2m-sde, n = 1000) FID 1.25 / 1.15 / 1.26
 * for ρ = 1.5 / 1.7 / 2.0; at n = 200 every ρ in 1.35…1.7 beat trailing's 5 steps.
 */
export const POWER_SPACING_RHO = 1.7;
export type Spacing = typeof SPACINGS[number];
/** The spacing of a card or a call that names none. */
export const DEFAULT_SPACING: Spacing = "linspace";

/** The S kept timesteps of a T-step chain, ascending (S = 1 keeps only T−1). */
export function spacedTimesteps(
  T: number,
  S: number,
  spacing: Spacing = DEFAULT_SPACING,
): Int32Array {
  if (!Number.isInteger(S) || S < 1 || S > T) {
    throw new RangeError(`steps must be an integer in 1…${T}, got ${S}`);
  }
  if (S === 1) return Int32Array.of(T - 1);
  const at = (i: number) => i / (S - 1);
  switch (spacing) {
    case "linspace":
      return Int32Array.from({ length: S }, (_, i) => Math.round(at(i) * (T - 1)));
    case "trailing":
      return Int32Array.from({ length: S }, (_, i) => Math.round(T - (S - 1 - i) * T / S) - 1);
    case "power": {
      // k = S−1−i counts from the noisiest step; the gaps (k/S)^ρ grow with k, so timesteps
      // are distinct whenever trailing's are (ρ ≥ 1 only widens the gaps below T−1)…
      const t = Int32Array.from(
        { length: S },
        (_, i) => Math.round(T * (1 - ((S - 1 - i) / S) ** POWER_SPACING_RHO)) - 1,
      );
      // …except where rounding merges two near T−1 for S close to T: push those down by one.
      for (let i = S - 2; i >= 0; i--) if (t[i] >= t[i + 1]) t[i] = t[i + 1] - 1;
      return t;
    }
    case "quadratic": {
      // Pushing a repeat up by one never runs past T−1: (T−1)(1 − u²) ≥ (S−1)(1 − u) for S ≤ T.
      const t = new Int32Array(S);
      for (let i = 0; i < S; i++) {
        t[i] = Math.max(Math.round(at(i) ** 2 * (T - 1)), i === 0 ? 0 : t[i - 1] + 1);
      }
      return t;
    }
    default:
      throw new RangeError(`unknown spacing ${JSON.stringify(spacing)}`);
  }
}

/**
 * An explicit chain (a model card's `sampling.timesteps`, a distilled student's grid): S original
 * timesteps, strictly ascending integers in 0…T−1; throws a RangeError naming what is wrong.
 */
export function checkedTimesteps(T: number, S: number, timesteps: ArrayLike<number>): Int32Array {
  if (timesteps.length !== S) {
    throw new RangeError(`timesteps has ${timesteps.length} entries, steps is ${S}`);
  }
  const t = Int32Array.from(timesteps);
  for (let i = 0; i < S; i++) {
    if (t[i] !== timesteps[i] || t[i] < 0 || t[i] > T - 1) {
      throw new RangeError(`timesteps[${i}] = ${timesteps[i]} is not an integer in 0…${T - 1}`);
    }
    if (i > 0 && t[i] <= t[i - 1]) {
      throw new RangeError(`timesteps must be strictly ascending (timesteps[${i}] = ${t[i]})`);
    }
  }
  return t;
}

/**
 * Respace a chain to S steps (improved-diffusion `space_timesteps`): keep ᾱ at the chosen
 * timesteps and recompute β_i = 1 − ᾱ_i / ᾱ_{i−1}, so the short chain is an exact DDPM of its own.
 * Explicit `timesteps` (ascending, S of them) replace the spacing's.
 */
export function respace(
  base: Schedule,
  S: number,
  spacing: Spacing = DEFAULT_SPACING,
  timesteps?: ArrayLike<number>,
): Schedule {
  const kept = timesteps
    ? checkedTimesteps(base.T, S, timesteps)
    : spacedTimesteps(base.T, S, spacing);
  const betas = new Float64Array(kept.length);
  let prev = 1;
  kept.forEach((t, i) => {
    const abar = base.alphasCumprod[t];
    betas[i] = 1 - abar / prev;
    prev = abar;
  });
  return scheduleFromBetas(betas, Int32Array.from(kept, (i) => base.timesteps[i]));
}

/** Forward process q(x_t | x_0): x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε, written into `out`. */
export function qSample(
  s: Schedule,
  t: number,
  x0: ArrayLike<number>,
  eps: ArrayLike<number>,
  out: Float32Array = new Float32Array(x0.length),
): Float32Array {
  const a = s.sqrtAlphasCumprod[t], b = s.sqrtOneMinusAlphasCumprod[t];
  for (let i = 0; i < x0.length; i++) out[i] = a * x0[i] + b * eps[i];
  return out;
}
