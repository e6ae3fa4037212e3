/**
 * The sampling loop shared by the edge, the trainer's sample grids and `deno task eval`: any
 * sampler of shared/samplers/ on a respaced chain, driven by any model, noise from the seeded
 * RNG. The loop is the caller's half of the sampler contract: it calls the model at the plan's
 * timesteps and hands each output (with fresh noise where the step needs it) to `plan.step`.
 * Asynchronous so that callers can yield to the event loop and cancel between calls.
 */
import type { Prediction } from "./prediction.ts";
import type { Schedule, Spacing } from "./schedule.ts";
import { DEFAULT_SPACING } from "./schedule.ts";
import { Rng } from "./rng.ts";
import { DEFAULT_STEP_OPTIONS, type VarianceType } from "./step.ts";
import { type AnalyticStats, DEFAULT_SAMPLER, type SamplerName, SAMPLERS } from "./samplers/mod.ts";
import type { Plan } from "./samplers/types.ts";

/**
 * The model's output (ε̂, or whatever `prediction` says) for a batch x (length n·size) at
 * original timestep t; must not keep or modify x.
 */
export type EpsModel = (x: Float32Array, t: number) => Promise<ArrayLike<number>>;

export interface SampleOptions {
  /** Number of images. */
  n: number;
  /** Values per image (C·H·W). */
  size: number;
  steps: number;
  /** How the S steps are picked out of T (default `linspace`). */
  spacing?: Spacing;
  seed: number;
  /** Default `ddim` (with η = 1: DDPM ancestral, the pre-sampler behaviour). */
  sampler?: SamplerName;
  /** η of the samplers that take one (default 1). */
  eta?: number;
  /** σ² = β̃ ("small", default) or β ("large") for `ddpm`. */
  variance?: VarianceType;
  /** Clamp x̂₀ to [−1, 1] (default true). */
  clipDenoised?: boolean;
  /** What the model outputs (default epsilon). */
  prediction?: Prediction;
  /** Γ statistics, for `analytic`. */
  analytic?: AnalyticStats;
  signal?: AbortSignal;
  /** Called after every model call (e.g. to yield to the event loop or drive a progress bar). */
  onStep?: (done: number, total: number) => void | Promise<void>;
}

/** The plan a request's options make (shared by `sample` and whoever counts its calls). */
export function planFor(base: Schedule, opts: Omit<SampleOptions, "n" | "size" | "seed">): Plan {
  return SAMPLERS[opts.sampler ?? DEFAULT_SAMPLER].plan(base, {
    steps: opts.steps,
    spacing: opts.spacing ?? DEFAULT_SPACING,
    eta: opts.eta ?? DEFAULT_STEP_OPTIONS.eta,
    variance: opts.variance ?? DEFAULT_STEP_OPTIONS.variance,
    clipDenoised: opts.clipDenoised ?? DEFAULT_STEP_OPTIONS.clipDenoised,
    prediction: opts.prediction ?? "epsilon",
    analytic: opts.analytic,
  });
}

/**
 * Draw n images. Noise order is fixed: the initial x_T for all n images first, then one batch
 * of noise per step that needs it, so one seed gives one result.
 */
export async function sample(
  base: Schedule,
  model: EpsModel,
  opts: SampleOptions,
): Promise<Float32Array> {
  const plan = planFor(base, opts);
  const rng = new Rng(opts.seed);
  const x = rng.fillNormal(new Float32Array(opts.n * opts.size));
  const noise = new Float32Array(x.length);
  const state = plan.init(x.length);
  const calls = plan.timesteps.length;
  for (let k = 0; k < calls; k++) {
    opts.signal?.throwIfAborted();
    const out = await model(x, plan.timesteps[k]);
    plan.step(state, x, out, k, plan.needsNoise(k) ? rng.fillNormal(noise) : null);
    await opts.onStep?.(k + 1, calls);
  }
  return x;
}
