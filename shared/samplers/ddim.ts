/**
 * `ddim`: the η-family of Song et al. 2021 (eq. 12) on the respaced chain — η = 0 is DDIM's
 * deterministic update, η = 1 DDPM's ancestral step with σ² = β̃. The per-step scalars live in
 * shared/step.ts (`stepCoefficients`).
 */
import { denoise, denoisedBuffers } from "../prediction.ts";
import { respace } from "../schedule.ts";
import { stepCoefficients, type StepOptions } from "../step.ts";
import type { Plan, Sampler, SamplerSettings } from "./types.ts";
import type { Schedule } from "../schedule.ts";

/** The η-step plan shared by `ddim` and `ddpm` (which fixes η = 1 and picks the variance). */
export function etaPlan(base: Schedule, s: SamplerSettings, o: StepOptions): Plan {
  const chain = respace(base, s.steps, s.spacing, s.timesteps);
  const S = chain.T;
  const coef = Array.from({ length: S }, (_, i) => stepCoefficients(chain, i, o));
  const at = (k: number) => coef[S - 1 - k];
  return {
    chain,
    timesteps: Int32Array.from({ length: S }, (_, k) => chain.timesteps[S - 1 - k]),
    needsNoise: (k) => at(k).noiseStd > 0,
    init: denoisedBuffers,
    denoised: (state) => (state as ReturnType<typeof denoisedBuffers>).x0,
    history: false,
    ancestralVariance: (k) => at(k).noiseStd ** 2,
    step(d, x, out, k, noise) {
      const c = at(k);
      if (c.noiseStd > 0 && noise === null) throw new Error("this step needs noise");
      const { x0, eps } = denoise(
        s.prediction,
        x,
        out,
        c.sqrtAbar,
        c.sqrtOneMinusAbar,
        o.clipDenoised,
        d as ReturnType<typeof denoisedBuffers>,
      );
      for (let j = 0; j < x.length; j++) {
        let v = c.sqrtAbarPrev * x0[j] + c.dirCoef * eps[j];
        if (c.noiseStd > 0) v += c.noiseStd * noise![j];
        x[j] = v;
      }
    },
  };
}

export const ddim: Sampler = {
  name: "ddim",
  description: "DDIM η-family (Song et al. 2021): eta 0 deterministic, 1 = DDPM ancestral (σ² = β̃)",
  usesEta: true,
  needsAnalytic: false,
  callsPerStep: 1,
  plan: (base, s) =>
    // (variance "large" applies at η = 1 only, as the step did before samplers existed)
    etaPlan(base, s, { eta: s.eta, clipDenoised: s.clipDenoised, variance: s.variance }),
};
