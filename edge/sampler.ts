/**
 * generate(): n images from the engine's model with the shared sampling loop, yielding to the
 * event loop between steps at least every YIELD_SLICE_MS of work (edge/yield.ts) so other
 * requests (and disconnect signals) get a turn, and stopping as soon as the signal aborts.
 */
import { makeSchedule, type Schedule, type Spacing } from "../shared/schedule.ts";
import { truncate } from "../shared/img2img.ts";
import {
  type ClassifierGuidance,
  type HighNoiseScale,
  sample,
  type SampleOptions,
} from "../shared/sample.ts";
import type { VarianceType } from "../shared/step.ts";
import type { ModelCard } from "../shared/model_card.ts";
import { cardSampler, type SamplerName } from "../shared/samplers/mod.ts";
import { type DataPrior, priorFromCard, withPrior } from "../shared/data_prior.ts";
import { type Engine, labelsOf, type LabelSpec, samplesNullClass, type Timing } from "./engine.ts";
import { slicedYield } from "./yield.ts";

export interface GenerateOptions {
  /** uint32 seed of the sampling noise. */
  seed: number;
  /** Respaced chain length, 1…T. */
  steps: number;
  /** How the steps are picked out of T (default: the card's). */
  spacing?: Spacing;
  /**
   * Default: the card's `classifier.sampler` with classifierScale > 0, else its
   * `sampling.sampler`, else `ddim` (what older cards drew with).
   */
  sampler?: SamplerName;
  /** η of ddim/analytic: 1 = ancestral, 0 = deterministic. */
  eta: number;
  /** Ancestral noise σ² = β̃_t ("small", default) or β_t ("large"; η = 1 only). */
  variance?: VarianceType;
  /** Number of images. */
  n: number;
  /** Class index for all images, one per image, or undefined for unconditional. */
  label?: LabelSpec;
  /** Classifier-free guidance weight (default: the card's). */
  guidance?: number;
  /**
   * Classifier guidance scale S (card `classifier`; default 0, none): the classifier's gradient
   * toward `label` steers every step (shared/sample.ts ClassifierGuidance). On an unconditional
   * model `label` then names a class of the classifier only.
   */
  classifierScale?: number;
  /** Where ancestral steps take the classifier's gradient (ClassifierGuidance `at`; default x_t). */
  classifierAt?: ClassifierGuidance["at"];
  /**
   * The weaker scale at high noise (ClassifierGuidance `highNoise`): undefined = the card's
   * `classifier.highNoise`, null = S at every step.
   */
  classifierHighNoise?: HighNoiseScale | null;
  /** Receives model time and run count. */
  timing?: Timing;
  /** Called after every step. */
  onStep?: (done: number, total: number) => void;
  /**
   * Image-to-image: start the chain at this original timestep t₀ instead of T − 1 (the base
   * schedule cut to t₀ + 1 timesteps, then respaced to `steps`; see shared/img2img.ts).
   */
  startAt?: number;
  /** shared/sample.ts: the starting x, the per-step x̂₀, a region to keep (RePaint). */
  init?: SampleOptions["init"];
  onDenoised?: SampleOptions["onDenoised"];
  known?: SampleOptions["known"];
  /**
   * Answer the calls at α ≤ the card's `sampling.prior.maxAlpha` from the data prior instead of
   * the model (shared/data_prior.ts). Default true; no effect for a card without a prior.
   */
  prior?: boolean;
}

const schedules = new WeakMap<Engine, Schedule>();
const priors = new WeakMap<Engine, DataPrior>();

/** The card's data prior, decoded once per engine, or null when the card has none. */
function priorOf(engine: Engine): DataPrior | null {
  const c = engine.model.card.sampling.prior;
  if (!c) return null;
  let p = priors.get(engine);
  if (!p) priors.set(engine, p = priorFromCard(c));
  return p;
}

/** n images as NCHW float32 in [−1, 1] (clipped x̂₀ at the last step). */
export async function generate(
  engine: Engine,
  o: GenerateOptions,
  signal?: AbortSignal,
): Promise<Float32Array> {
  const { card } = engine.model;
  let base = schedules.get(engine);
  if (!base) schedules.set(engine, base = makeSchedule(card.schedule.kind, card.schedule.T));
  const guidance = o.guidance ?? card.sampling.guidance;
  const sampler = o.sampler ?? defaultSampler(
    card,
    card.architecture.numClasses === 0 || samplesNullClass(o.label, guidance),
    (o.classifierScale ?? 0) > 0,
  );
  if (o.startAt !== undefined) base = truncate(base, o.startAt);
  const yieldNow = slicedYield();
  // An unconditional UNet takes no label: there the label is the classifier's alone.
  const label = card.architecture.numClasses > 0 ? o.label : undefined;
  let model = engine.epsModel(o.n, label, guidance, o.timing);
  const prior = o.prior === false ? null : priorOf(engine);
  if (prior) {
    model = withPrior(model, base, prior, {
      n: o.n,
      labels: labelsOf(o.n, label),
      guidance,
      prediction: card.prediction,
    });
  }
  const spacing = o.spacing ?? card.sampling.spacing;
  return await sample(base, model, {
    n: o.n,
    size: card.image.channels * card.image.size ** 2,
    steps: o.steps,
    spacing,
    timesteps: cardChain(card, o.steps, spacing, o.startAt),
    seed: o.seed,
    sampler,
    eta: o.eta,
    variance: o.variance,
    prediction: card.prediction,
    analytic: sampler === "analytic"
      ? cut(analyticStats(card, label, guidance), base.T)
      : undefined,
    classifier: classifierGuidance(engine, o),
    signal,
    init: o.init,
    onDenoised: o.onDenoised,
    known: o.known,
    onStep: async (done, total) => {
      o.onStep?.(done, total);
      await yieldNow();
      signal?.throwIfAborted();
    },
  });
}

/**
 * The sampler of a request that names none: the card's `classifier.sampler` where it steers with
 * the classifier and the card names one; else its `sampling.nullClassSampler` where it samples the
 * null class; else its `sampling.sampler` (else `ddim`, what older cards drew with).
 */
export function defaultSampler(
  card: ModelCard,
  nullClass: boolean,
  classifierGuided = false,
): SamplerName {
  if (classifierGuided && card.classifier?.sampler) return card.classifier.sampler;
  if (nullClass && card.sampling.nullClassSampler) return card.sampling.nullClassSampler;
  return cardSampler(card.sampling);
}

/**
 * The weaker scale at high noise a classifier-guided request gets: the card's
 * `classifier.highNoise` unless the request names one (`null`: S at every step).
 */
export function highNoiseOf(
  card: ModelCard,
  requested: HighNoiseScale | null | undefined,
): HighNoiseScale | undefined {
  return requested === undefined ? card.classifier?.highNoise : requested ?? undefined;
}

/** The sampling loop's classifier guidance for a request, or undefined (scale 0 or absent). */
function classifierGuidance(engine: Engine, o: GenerateOptions): ClassifierGuidance | undefined {
  const scale = o.classifierScale ?? 0;
  if (!(scale > 0)) return undefined;
  const y = labelsOf(o.n, o.label), grad = engine.classifierGrad;
  if (!grad) throw new RangeError("this model's card has no classifier");
  if (!y) throw new RangeError("classifier guidance needs a label");
  const highNoise = highNoiseOf(engine.model.card, o.classifierHighNoise);
  return {
    scale,
    grad: (x, t) => grad(x, o.n, t, y, o.timing),
    at: o.classifierAt,
    ...(highNoise ? { highNoise } : {}),
  };
}

/**
 * The card's own chain (`sampling.timesteps`) where a request samples at the card's steps and
 * spacing from pure noise; undefined (the spacing's chain) otherwise.
 */
export function cardChain(
  card: ModelCard,
  steps: number,
  spacing: Spacing,
  startAt?: number,
): number[] | undefined {
  const s = card.sampling;
  return s.timesteps && startAt === undefined && steps === s.steps && spacing === s.spacing
    ? s.timesteps
    : undefined;
}

/** Γ for a chain cut to its first T timesteps. */
const cut = (a: { gamma: ArrayLike<number> }, T: number) =>
  a.gamma.length === T ? a : { gamma: Array.prototype.slice.call(a.gamma, 0, T) as number[] };

/**
 * The Γ statistics a request samples with: the null class's (`gammaNull`) when it samples the
 * null class of a conditional model (no label, or guidance 0), else `gamma` — estimated at the
 * card's guidance, and used as the nearest available estimate for other guidance weights.
 */
export function analyticStats(card: ModelCard, label: LabelSpec, guidance: number) {
  const a = card.sampling.analytic;
  if (!a) throw new RangeError("this model's card has no Analytic-DPM statistics");
  const nullClass = card.architecture.numClasses > 0 && samplesNullClass(label, guidance);
  return { gamma: nullClass && a.gammaNull ? a.gammaNull : a.gamma };
}
