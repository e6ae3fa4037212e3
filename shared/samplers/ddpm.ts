/**
 * `ddpm`: ancestral sampling (Ho et al. 2020) on the respaced chain, with either of the paper's
 * two variances: σ² = β̃_t (the posterior variance, "small", default) or σ² = β_t ("large").
 * With "small" it is the η = 1 member of the DDIM family, step for step.
 */
import { etaPlan } from "./ddim.ts";
import type { Sampler } from "./types.ts";

export const ddpm: Sampler = {
  name: "ddpm",
  description: "DDPM ancestral (Ho et al. 2020), σ² = β̃ (variance small) or β (large)",
  usesEta: false,
  needsAnalytic: false,
  callsPerStep: 1,
  plan: (base, s) =>
    etaPlan(base, s, { eta: 1, clipDenoised: s.clipDenoised, variance: s.variance }),
};
