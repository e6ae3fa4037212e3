/**
 * The sampling loop shared by the trainer's sample grids and the edge: a respaced chain driven
 * by any ε-model, noise from the seeded RNG. Asynchronous so that callers can yield to the event
 * loop and cancel between steps.
 */
import { respace, type Schedule, type Spacing } from "./schedule.ts";
import { Rng } from "./rng.ts";
import { DEFAULT_STEP_OPTIONS, reverseStep, stepCoefficients, type StepOptions } from "./step.ts";

/** ε̂ for a batch x (length n·size) at original timestep t; must not keep or modify x. */
export type EpsModel = (x: Float32Array, t: number) => Promise<ArrayLike<number>>;

export interface SampleOptions extends Partial<StepOptions> {
  /** Number of images. */
  n: number;
  /** Values per image (C·H·W). */
  size: number;
  steps: number;
  /** How the S steps are picked out of T (default `linspace`). */
  spacing?: Spacing;
  seed: number;
  signal?: AbortSignal;
  /** Called after every step (e.g. to yield to the event loop or drive a progress bar). */
  onStep?: (done: number, total: number) => void | Promise<void>;
}

/**
 * Draw n images from the respaced chain. Noise order is fixed: the initial x_T for all n
 * images first, then one batch of noise per noisy step, so one seed gives one result.
 */
export async function sample(
  base: Schedule,
  model: EpsModel,
  opts: SampleOptions,
): Promise<Float32Array> {
  const o: StepOptions = {
    eta: opts.eta ?? DEFAULT_STEP_OPTIONS.eta,
    clipDenoised: opts.clipDenoised ?? DEFAULT_STEP_OPTIONS.clipDenoised,
    variance: opts.variance ?? DEFAULT_STEP_OPTIONS.variance,
  };
  const s = respace(base, opts.steps, opts.spacing);
  const rng = new Rng(opts.seed);
  const x = rng.fillNormal(new Float32Array(opts.n * opts.size));
  const noise = new Float32Array(x.length);
  for (let i = s.T - 1; i >= 0; i--) {
    opts.signal?.throwIfAborted();
    const eps = await model(x, s.timesteps[i]);
    const c = stepCoefficients(s, i, o);
    reverseStep(x, eps, c.noiseStd > 0 ? rng.fillNormal(noise) : null, c, o.clipDenoised);
    await opts.onStep?.(s.T - i, s.T);
  }
  return x;
}
