/**
 * The sampling loop shared by the edge, the trainer's sample grids and `deno task eval`: any
 * sampler of shared/samplers/ on a respaced chain, driven by any model, noise from the seeded
 * RNG. The loop is the caller's half of the sampler contract: it calls the model at the plan's
 * timesteps and hands each output (with fresh noise where the step needs it) to `plan.step`.
 * Asynchronous so that callers can yield to the event loop and cancel between calls.
 */
import { type Prediction, shiftEpsilon } from "./prediction.ts";
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
  /** An explicit chain instead of the spacing's: `steps` original timesteps, ascending. */
  timesteps?: ArrayLike<number>;
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
  /**
   * Where the chain starts: called once with x holding the seed's first n·size standard normals
   * (x at the first call's timestep by default, i.e. pure noise) to rewrite it in place — e.g.
   * `qSample` of an input image with those normals as ε (SDEdit), or a slerp of two seeds'
   * noise. The normals are drawn either way, so the rest of the seed's noise is unchanged.
   */
  init?: (x: Float32Array, plan: Plan) => void;
  /**
   * Called after each step k (0…calls−1) with the plan's x̂₀ of that step (a buffer the
   * sampler reuses: copy what you keep). Resampled steps report once, after their last round.
   */
  onDenoised?: (x0: Float64Array, k: number, calls: number) => void | Promise<void>;
  /** A region to keep (RePaint): see `KnownRegion`. */
  known?: KnownRegion;
  /** Classifier guidance: see `ClassifierGuidance`. */
  classifier?: ClassifierGuidance;
}

/**
 * Classifier guidance (Dhariwal & Nichol 2021): at every call the gradient g = ∇ₓ log p(y | x_t)
 * of a noise-aware classifier, at the x the model is called with, steers the step — an
 * ancestral step (the plan's `ancestralVariance` σ² > 0) by shifting its mean, x' = μ + S·σ²·g
 * (Algorithm 1); any other step (η = 0, DPM-Solver) by shifting the model's ε̂ before it,
 * ε̂ − S·√(1−ᾱ_t)·g (Algorithm 2, condition_score), whatever the prediction type.
 */
export interface ClassifierGuidance {
  /** S > 0 (S = 0: leave the option out; nothing is called). */
  scale: number;
  /** g for the batch x (n·size values) at original timestep t; must not keep or modify x. */
  grad: (x: Float32Array, t: number) => Promise<ArrayLike<number>>;
  /**
   * Where an ancestral step takes g: at x_t ("input", default; Dhariwal & Nichol's Algorithm 1)
   * or at the step's own mean μ, at the next call's timestep ("mean"). ε-shifted steps always
   * take it at x_t, where the model's ε̂ is.
   */
  at?: "input" | "mean";
  /**
   * A weaker scale at high noise: calls at original timesteps above `above` steer with
   * S·`factor` (absent: S at every call). A noise-aware classifier is least sure where the noise
   * is highest, and a large S there costs more realism than it buys in steering (QUALITY.md,
   * "Classifier guidance").
   */
  highNoise?: HighNoiseScale;
}

export interface HighNoiseScale {
  /** Original timesteps above this one get the factor. */
  above: number;
  /** ≥ 0: the scale there is S·factor. */
  factor: number;
}

/** The scale of classifier guidance at original timestep t. */
export function guidanceScaleAt(g: ClassifierGuidance, t: number): number {
  return g.highNoise && t > g.highNoise.above ? g.scale * g.highNoise.factor : g.scale;
}

/**
 * RePaint (Lugmayr et al. 2022): before the first call and after every step the kept values of
 * x are replaced by the known image noised to x's new level (fresh noise from the seed, after
 * the step's own), and after the last step by the known image itself, so they come back exactly.
 */
export interface KnownRegion {
  /** The known image, n·size values in [−1, 1] (read where `keep` is non-zero). */
  x0: ArrayLike<number>;
  /** Non-zero where a value is kept, 0 where it is generated; n·size values. */
  keep: ArrayLike<number>;
  /**
   * Rounds per step (default 1: no resampling). With r > 1 every step but the last is redone
   * r − 1 more times, each time after diffusing x back up one chain step with fresh noise
   * (RePaint's jump length 1), so the generated part can agree with the kept part. Costs
   * (calls − 1)·(r − 1) more model calls; refused by plans that keep history (multistep).
   */
  resample?: number;
}

/** Model calls a plan makes with `resample` rounds per step. */
export function callsWith(calls: number, resample = 1): number {
  return calls + Math.max(0, calls - 1) * (resample - 1);
}

/** The plan a request's options make (shared by `sample` and whoever counts its calls). */
export function planFor(base: Schedule, opts: Omit<SampleOptions, "n" | "size" | "seed">): Plan {
  return SAMPLERS[opts.sampler ?? DEFAULT_SAMPLER].plan(base, {
    steps: opts.steps,
    spacing: opts.spacing ?? DEFAULT_SPACING,
    timesteps: opts.timesteps,
    eta: opts.eta ?? DEFAULT_STEP_OPTIONS.eta,
    variance: opts.variance ?? DEFAULT_STEP_OPTIONS.variance,
    clipDenoised: opts.clipDenoised ?? DEFAULT_STEP_OPTIONS.clipDenoised,
    prediction: opts.prediction ?? "epsilon",
    analytic: opts.analytic,
  });
}

/**
 * Draw n images. Noise order is fixed: the initial x_T for all n images first, then one batch
 * of noise per step that needs it, so one seed gives one result. With a known region, one more
 * batch before the first call and after every step but the last (after the step's own), and
 * one before every resampling round.
 */
export async function sample(
  base: Schedule,
  model: EpsModel,
  opts: SampleOptions,
): Promise<Float32Array> {
  const plan = planFor(base, opts);
  const rng = new Rng(opts.seed);
  const x = rng.fillNormal(new Float32Array(opts.n * opts.size));
  opts.init?.(x, plan);
  const noise = new Float32Array(x.length);
  const state = plan.init(x.length);
  const calls = plan.timesteps.length;
  const known = opts.known;
  const rounds = known?.resample ?? 1;
  if (known) checkKnown(known, plan, x.length);
  // The chain index of call k is calls − 1 − k; after step k x is at chain index calls − 2 − k.
  if (known) replaceKnown(x, known, plan.chain, calls - 1, rng, noise);
  const total = callsWith(calls, rounds);
  const guided = opts.classifier && opts.classifier.scale > 0 ? opts.classifier : null;
  let done = 0;
  for (let k = 0; k < calls; k++) {
    const repeats = k < calls - 1 ? rounds : 1;
    for (let r = 0; r < repeats; r++) {
      if (r > 0) diffuseUp(x, plan.chain, calls - 1 - k, rng, noise);
      opts.signal?.throwIfAborted();
      const out = await model(x, plan.timesteps[k]);
      if (guided) await guidedStep(plan, state, x, out, k, guided, opts.prediction, rng, noise);
      else plan.step(state, x, out, k, plan.needsNoise(k) ? rng.fillNormal(noise) : null);
      if (known) replaceKnown(x, known, plan.chain, calls - 2 - k, rng, noise);
      await opts.onStep?.(++done, total);
    }
    await opts.onDenoised?.(plan.denoised(state), k, calls);
  }
  return x;
}

/**
 * Step k with classifier guidance (see `ClassifierGuidance`), noise drawn as the unguided step
 * draws it: an ancestral step's mean shifted by S·σ²·g, any other step's ε̂ by −S·√(1−ᾱ_t)·g.
 */
async function guidedStep(
  plan: Plan,
  state: unknown,
  x: Float32Array,
  out: ArrayLike<number>,
  k: number,
  guided: ClassifierGuidance,
  prediction: Prediction = "epsilon",
  rng: Rng,
  noise: Float32Array,
): Promise<void> {
  const variance = plan.ancestralVariance?.(k) ?? 0;
  const z = plan.needsNoise(k) ? rng.fillNormal(noise) : null;
  if (variance > 0 && guided.at === "mean") {
    // μ (the step without noise), then g at μ and the next call's timestep.
    plan.step(state, x, out, k, new Float32Array(x.length));
    const g = await guided.grad(x, plan.timesteps[k + 1]);
    const c = guidanceScaleAt(guided, plan.timesteps[k + 1]) * variance, sd = Math.sqrt(variance);
    for (let j = 0; j < x.length; j++) x[j] += c * g[j] + sd * z![j];
    return;
  }
  const g = await guided.grad(x, plan.timesteps[k]);
  const scale = guidanceScaleAt(guided, plan.timesteps[k]);
  if (variance > 0) {
    plan.step(state, x, out, k, z);
    const c = scale * variance;
    for (let j = 0; j < x.length; j++) x[j] += c * g[j];
    return;
  }
  const i = plan.timesteps.length - 1 - k, sigma = plan.chain.sqrtOneMinusAlphasCumprod[i];
  const delta = Float32Array.from(g, (v) => -scale * sigma * v);
  const shifted = shiftEpsilon(
    prediction,
    Float32Array.from(out),
    delta,
    plan.chain.sqrtAlphasCumprod[i],
    sigma,
  );
  plan.step(state, x, shifted, k, z);
}

function checkKnown(known: KnownRegion, plan: Plan, length: number): void {
  if (known.x0.length !== length || known.keep.length !== length) {
    throw new RangeError(`known region needs ${length} values`);
  }
  const r = known.resample ?? 1;
  if (!Number.isInteger(r) || r < 1) throw new RangeError(`resample must be ≥ 1, got ${r}`);
  if (r > 1 && plan.history) {
    throw new RangeError("resampling redoes steps, which a multistep sampler cannot");
  }
  if (plan.chain.T !== plan.timesteps.length) throw new RangeError("one call per chain step");
}

/** Kept values ← the known image at chain index i's noise level (i < 0: the image itself). */
function replaceKnown(
  x: Float32Array,
  known: KnownRegion,
  chain: Schedule,
  i: number,
  rng: Rng,
  noise: Float32Array,
): void {
  const { x0, keep } = known;
  if (i < 0) {
    for (let j = 0; j < x.length; j++) if (keep[j]) x[j] = x0[j];
    return;
  }
  rng.fillNormal(noise);
  const a = chain.sqrtAlphasCumprod[i], b = chain.sqrtOneMinusAlphasCumprod[i];
  for (let j = 0; j < x.length; j++) if (keep[j]) x[j] = a * x0[j] + b * noise[j];
}

/** x from chain index i − 1 up to i: q(x_i | x_{i−1}) = N(√α_i·x, β_i). */
function diffuseUp(x: Float32Array, chain: Schedule, i: number, rng: Rng, noise: Float32Array) {
  rng.fillNormal(noise);
  const a = Math.sqrt(chain.alphas[i]), b = Math.sqrt(chain.betas[i]);
  for (let j = 0; j < x.length; j++) x[j] = a * x[j] + b * noise[j];
}
