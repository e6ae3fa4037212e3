/**
 * The quantities DPM-Solver++ (Lu et al. 2022) works in, on a respaced chain: α_i = √ᾱ_i,
 * σ_i = √(1−ᾱ_i) and the half log-SNR λ_i = log(α_i/σ_i), which grows as noise falls. Step k
 * goes from chain index i = S−1−k to i−1 (to the data, σ = 0, after the last call).
 */
import { denoise } from "../prediction.ts";
import { respace, type Schedule } from "../schedule.ts";
import type { Plan, SamplerSettings } from "./types.ts";

export interface LogSnrChain {
  chain: Schedule;
  alpha: Float64Array;
  sigma: Float64Array;
  lambda: Float64Array;
  /** Original timestep of each call, in call order. */
  timesteps: Int32Array;
}

export function logSnrChain(base: Schedule, s: SamplerSettings): LogSnrChain {
  const chain = respace(base, s.steps, s.spacing, s.timesteps);
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

/**
 * One multistep update from chain index i to i−1 (i ≥ 1), in place: `x0` is this call's x̂₀,
 * `prevX0` the previous call's and `r` = h_prev/h (null at the first call), `noise` standard
 * normals where the plan asks for them.
 */
export type MultistepUpdate = (
  c: LogSnrChain,
  i: number,
  x: Float32Array,
  x0: Float64Array,
  prevX0: Float64Array,
  r: number | null,
  noise: ArrayLike<number> | null,
) => void;

/**
 * The DPM-Solver++ plan scaffolding shared by the 2M solvers: x̂₀ through shared/prediction.ts,
 * the history (previous x̂₀ and λ-step) in the per-request state, and the last call returning
 * x̂₀ itself (σ = 0 ends the chain: first order, as diffusers' lower_order_final).
 * `noiseVariance(c, i)`: the variance of the noise a stochastic step from i adds, which makes its
 * steps ancestral (x' = μ + σ·z) for classifier guidance's mean shift.
 */
export function multistepPlan(
  base: Schedule,
  s: SamplerSettings,
  stochastic: boolean,
  update: MultistepUpdate,
  noiseVariance?: (c: LogSnrChain, i: number) => number,
): Plan {
  const c = logSnrChain(base, s);
  const S = c.chain.T;
  return {
    chain: c.chain,
    timesteps: c.timesteps,
    needsNoise: (k) => stochastic && k < S - 1,
    init: multistepState,
    denoised: (state) => (state as MultistepState).x0,
    history: true,
    ...(noiseVariance
      ? { ancestralVariance: (k: number) => (k < S - 1 ? noiseVariance(c, S - 1 - k) : 0) }
      : {}),
    step(state, x, out, k, noise) {
      const st = state as MultistepState;
      const i = S - 1 - k;
      const { x0 } = denoise(s.prediction, x, out, c.alpha[i], c.sigma[i], s.clipDenoised, st);
      if (i === 0) {
        for (let j = 0; j < x.length; j++) x[j] = x0[j];
        return;
      }
      if (stochastic && noise === null) throw new Error("this step needs noise");
      const h = c.lambda[i - 1] - c.lambda[i];
      update(c, i, x, x0, st.prevX0, st.prevH === null ? null : st.prevH / h, noise);
      st.prevX0.set(x0);
      st.prevH = h;
    },
  };
}
