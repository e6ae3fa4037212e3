/**
 * The quantities DPM-Solver++ (Lu et al. 2022) works in, on a respaced chain: α_i = √ᾱ_i,
 * σ_i = √(1−ᾱ_i) and the half log-SNR λ_i = log(α_i/σ_i), which grows as noise falls. Step k
 * goes from chain index i = S−1−k to i−1 (to the data, σ = 0, after the last call).
 */
import { respace, type Schedule } from "../schedule.ts";
import type { SamplerSettings } from "./types.ts";

export interface LogSnrChain {
  chain: Schedule;
  alpha: Float64Array;
  sigma: Float64Array;
  lambda: Float64Array;
  /** Original timestep of each call, in call order. */
  timesteps: Int32Array;
}

export function logSnrChain(base: Schedule, s: SamplerSettings): LogSnrChain {
  const chain = respace(base, s.steps, s.spacing);
  const S = chain.T;
  const alpha = chain.sqrtAlphasCumprod.slice();
  const sigma = chain.sqrtOneMinusAlphasCumprod.slice();
  return {
    chain,
    alpha,
    sigma,
    lambda: alpha.map((a, i) => Math.log(a / sigma[i])),
    timesteps: Int32Array.from({ length: S }, (_, k) => chain.timesteps[S - 1 - k]),
  };
}

/** Per-request state of a two-step (2M) solver: the previous x̂₀ and the step that made it. */
export interface MultistepState {
  x0: Float64Array;
  eps: Float64Array;
  /** x̂₀ of the previous call, and the λ-step h that followed it (null before the first). */
  prevX0: Float64Array;
  prevH: number | null;
}

export function multistepState(size: number): MultistepState {
  return {
    x0: new Float64Array(size),
    eps: new Float64Array(size),
    prevX0: new Float64Array(size),
    prevH: null,
  };
}
