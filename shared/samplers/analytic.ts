/**
 * `analytic`: Analytic-DPM (Bao et al., ICLR 2022). The mean is the η-family's (λ² = η²·β̃ on the
 * respaced chain, so η = 1 is Analytic-DDPM and η = 0 Analytic-DDIM); the variance is the optimal
 * one for the shortened chain,
 *
 *   σ*² = λ² + c₀²·Var[x₀ | x_t],   Var[x₀ | x_t] = (1−ᾱ_t)/ᾱ_t · (1 − Γ_t),
 *
 * where c₀ is the mean's coefficient on x̂₀ and Γ_t = E‖ε̂(x_t, t)‖²/d comes from the model card
 * (estimated once at export, shared/samplers/analytic_estimate.ts). Var[x₀|x_t] is clipped to
 * [0, ((b−a)/2)²] = [0, 1] for data in [−1, 1] — the paper's Theorem 2 bounds: λ² ≤ σ*² ≤
 * λ² + c₀²·min(1, (1−ᾱ_t)/ᾱ_t). The step that lands on the last noisy timestep has σ clipped so
 * its noise is at most CLIP_PIXEL grey levels in mean absolute value (σ ≤ 2·(2/255)·√(π/2)), as
 * in the paper's experiments; the last step adds no noise and returns x̂₀.
 * Per request this costs nothing extra: the variances are computed once per plan.
 */
import { denoise, denoisedBuffers } from "../prediction.ts";
import { respace, type Schedule } from "../schedule.ts";
import type { Plan, Sampler, SamplerSettings } from "./types.ts";

/** Mean absolute noise of the last noisy step, in grey levels of 255 (the paper's clip). */
export const CLIP_PIXEL = 2;

export interface AnalyticVariances {
  /** σ² of the step from chain index i to i−1 (0 at i = 0). */
  sigma2: Float64Array;
  /** Theorem 2's bounds on σ*² at each chain index (before the last-step clip). */
  lower: Float64Array;
  upper: Float64Array;
  /** The mean's coefficients: x_{i−1} = sqrtAbarPrev·x̂₀ + dirCoef·ε̂ + σ·z. */
  dirCoef: Float64Array;
}

/** σ*² for every step of a respaced chain, from Γ at the chain's original timesteps. */
export function analyticVariances(
  chain: Schedule,
  gamma: ArrayLike<number>,
  eta: number,
): AnalyticVariances {
  const S = chain.T;
  const sigma2 = new Float64Array(S), lower = new Float64Array(S), upper = new Float64Array(S);
  const dirCoef = new Float64Array(S);
  const clip2 = (CLIP_PIXEL * 2 / 255 * Math.sqrt(Math.PI / 2)) ** 2;
  for (let i = 0; i < S; i++) {
    const abar = chain.alphasCumprod[i], abarPrev = chain.alphasCumprodPrev[i];
    const lambda2 = eta * eta * chain.posteriorVariance[i];
    dirCoef[i] = Math.sqrt(Math.max(0, 1 - abarPrev - lambda2));
    const c0 = Math.sqrt(abarPrev) - dirCoef[i] * Math.sqrt(abar / (1 - abar));
    const g = gamma[chain.timesteps[i]];
    if (!Number.isFinite(g)) throw new RangeError(`Γ at timestep ${chain.timesteps[i]} is ${g}`);
    const ratio = (1 - abar) / abar;
    // Γ ≥ 0 as a mean of squares; Γ > 1 (an imperfect model) gives the lower bound.
    const varX0 = Math.min(Math.max(ratio * (1 - Math.max(g, 0)), 0), 1);
    lower[i] = lambda2;
    upper[i] = lambda2 + c0 * c0 * Math.min(1, ratio);
    sigma2[i] = i === 0 ? 0 : lambda2 + c0 * c0 * varX0;
    if (i === 1) sigma2[i] = Math.min(sigma2[i], clip2);
  }
  return { sigma2, lower, upper, dirCoef };
}

function plan(base: Schedule, s: SamplerSettings): Plan {
  if (!s.analytic) {
    throw new RangeError("the analytic sampler needs the card's sampling.analytic statistics");
  }
  if (s.analytic.gamma.length !== base.T) {
    throw new RangeError(`Γ has ${s.analytic.gamma.length} values, the schedule ${base.T}`);
  }
  const chain = respace(base, s.steps, s.spacing, s.timesteps);
  const S = chain.T;
  const v = analyticVariances(chain, s.analytic.gamma, s.eta);
  const std = v.sigma2.map(Math.sqrt);
  return {
    chain,
    timesteps: Int32Array.from({ length: S }, (_, k) => chain.timesteps[S - 1 - k]),
    needsNoise: (k) => std[S - 1 - k] > 0,
    init: denoisedBuffers,
    denoised: (state) => (state as ReturnType<typeof denoisedBuffers>).x0,
    history: false,
    ancestralVariance: (k) => v.sigma2[S - 1 - k],
    step(d, x, out, k, noise) {
      const i = S - 1 - k;
      if (std[i] > 0 && noise === null) throw new Error("this step needs noise");
      const { x0, eps } = denoise(
        s.prediction,
        x,
        out,
        chain.sqrtAlphasCumprod[i],
        chain.sqrtOneMinusAlphasCumprod[i],
        s.clipDenoised,
        d as ReturnType<typeof denoisedBuffers>,
      );
      const a = Math.sqrt(chain.alphasCumprodPrev[i]), b = v.dirCoef[i], z = std[i];
      for (let j = 0; j < x.length; j++) {
        let value = a * x0[j] + b * eps[j];
        if (z > 0) value += z * noise![j];
        x[j] = value;
      }
    },
  };
}

export const analytic: Sampler = {
  name: "analytic",
  description: "Analytic-DPM (Bao et al. 2022): the optimal reverse variance from the card's Γ " +
    "statistics; eta 1 = Analytic-DDPM, 0 = Analytic-DDIM",
  usesEta: true,
  needsAnalytic: true,
  callsPerStep: 1,
  plan,
};
