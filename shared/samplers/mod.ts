/**
 * Every sampler behind the one contract (types.ts), by the name the API, the card and the CLIs
 * use. `DEFAULT_SAMPLER` is what a card that names none samples with: the η-family step of
 * cards written before samplers existed (`ddpm-edge/model-card@1` without `sampling.sampler`),
 * so they draw the same images as before.
 */
import { analytic } from "./analytic.ts";
import { ddim } from "./ddim.ts";
import { ddpm } from "./ddpm.ts";
import { dpmpp2m } from "./dpmpp_2m.ts";
import { dpmpp2mSde } from "./dpmpp_2m_sde.ts";
import type { Sampler } from "./types.ts";

export const SAMPLER_NAMES = ["ddpm", "ddim", "analytic", "dpm++2m", "dpm++2m-sde"] as const;
export type SamplerName = typeof SAMPLER_NAMES[number];

export const SAMPLERS: Record<SamplerName, Sampler> = {
  ddpm,
  ddim,
  analytic,
  "dpm++2m": dpmpp2m,
  "dpm++2m-sde": dpmpp2mSde,
};

export const DEFAULT_SAMPLER: SamplerName = "ddim";

/** The sampler a card's `sampling` block samples with when a request names none. */
export function cardSampler(sampling: { sampler?: SamplerName }): SamplerName {
  return sampling.sampler ?? DEFAULT_SAMPLER;
}

export type { AnalyticStats, Plan, Sampler, SamplerSettings } from "./types.ts";
