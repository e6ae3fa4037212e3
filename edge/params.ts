/**
 * The query of `GET /generate`, validated with zod against the loaded model's card. Unknown or
 * repeated parameters are errors, as is a request whose work n × calls × passes exceeds the cap.
 */
import { z } from "zod";
import type { ModelCard } from "../shared/model_card.ts";
import { type Spacing, SPACINGS } from "../shared/schedule.ts";
import { Rng } from "../shared/rng.ts";
import { SAMPLER_NAMES, type SamplerName, SAMPLERS } from "../shared/samplers/mod.ts";
import { type LabelSpec, passes, samplesNullClass } from "./engine.ts";
import { defaultSampler } from "./sampler.ts";

export const MAX_N = 64;
export const MAX_SCALE = 16;
export const MAX_GUIDANCE = 100;
export const MAX_CLASSIFIER_SCALE = 1000;
/**
 * Default work cap: image-forward passes per request (n × steps × passes). An MNIST-sized model
 * runs about 25 ms per image-forward in a batch on wasm, so 2048 is under a minute.
 */
export const DEFAULT_MAX_WORK = 2048;
// (Work counts model calls: steps × the sampler's calls per step.)

/** Validated parameters, with the card's defaults filled in. */
export interface GenerateParams {
  seed: number;
  /** True when the seed came from the query (the response is then cacheable). */
  seedGiven: boolean;
  steps: number;
  /** How the steps are picked out of T (shared/schedule.ts). */
  spacing: Spacing;
  /** shared/samplers/ (the card's, else ddim). */
  sampler: SamplerName;
  /** η of the samplers that take one (ddim, analytic); the card's otherwise (unused). */
  eta: number;
  n: number;
  scale: number;
  /** Class index, or undefined for unconditional sampling. */
  label?: number;
  guidance: number;
  /** Classifier guidance scale S (0: none; > 0 needs the card's classifier and a label). */
  classifierScale: number;
  format: "png" | "json";
}

export interface Issue {
  path: string;
  message: string;
}

export type ParseResult = { ok: true; params: GenerateParams } | { ok: false; issues: Issue[] };

const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const num = (what: string) =>
  z.string().regex(DECIMAL, `must be ${what}`).transform(Number).pipe(z.number().finite());
const int = (min: number, max: number) =>
  z.string().regex(/^\d+$/, `must be an integer in ${min}…${max}`).transform(Number).pipe(
    z.number().int().min(min, `must be ≥ ${min}`).max(max, `must be ≤ ${max}`),
  );

/** Resolve a class name or index to an index, or undefined. */
export function resolveLabel(labels: readonly string[], value: string): number | undefined {
  const byName = labels.indexOf(value);
  if (byName >= 0) return byName;
  return /^\d+$/.test(value) && Number(value) < labels.length ? Number(value) : undefined;
}

/** The zod schema for a model's query (string values in, typed values out). */
/** Built once per model card: rebuilding the zod schema per request cost ~1.6 ms each (soak). */
const schemas = new WeakMap<ModelCard, ReturnType<typeof buildQuerySchema>>();

export function querySchema(card: ModelCard): ReturnType<typeof buildQuerySchema> {
  let s = schemas.get(card);
  if (!s) schemas.set(card, s = buildQuerySchema(card));
  return s;
}

function buildQuerySchema(card: ModelCard) {
  // An unconditional model with a classifier takes its classifier's labels (classifier guidance).
  const labels = card.labels ?? card.classifier?.labels ?? null;
  return z.strictObject({
    seed: int(0, 0xffffffff).optional(),
    steps: int(1, card.schedule.T).optional(),
    spacing: z.enum(SPACINGS, `must be one of ${SPACINGS.join(", ")}`).optional(),
    sampler: z.enum(SAMPLER_NAMES, `must be one of ${SAMPLER_NAMES.join(", ")}`).optional(),
    eta: num("a number in 0…1").pipe(z.number().min(0, "must be ≥ 0").max(1, "must be ≤ 1"))
      .optional(),
    n: int(1, MAX_N).optional(),
    scale: int(1, MAX_SCALE).optional(),
    label: z.string().transform((v, ctx) => {
      if (labels === null) {
        ctx.addIssue({ code: "custom", message: "this model is unconditional: it has no labels" });
        return z.NEVER;
      }
      const i = resolveLabel(labels, v);
      if (i === undefined) {
        ctx.addIssue({
          code: "custom",
          message: `unknown label ${JSON.stringify(v)}: use one of ${labels.join(", ")} ` +
            `or an index 0…${labels.length - 1}`,
        });
        return z.NEVER;
      }
      return i;
    }).optional(),
    guidance: num("a number ≥ 0").pipe(
      z.number().min(0, "must be ≥ 0").max(MAX_GUIDANCE, `must be ≤ ${MAX_GUIDANCE}`),
    ).optional(),
    classifier_scale: num("a number ≥ 0").pipe(
      z.number().min(0, "must be ≥ 0").max(
        MAX_CLASSIFIER_SCALE,
        `must be ≤ ${MAX_CLASSIFIER_SCALE}`,
      ),
    ).optional(),
    format: z.enum(["png", "json"], "must be png or json").optional(),
  });
}

/**
 * Validate a query against the card. `maxWork` caps n × steps × passes (passes = 2 with
 * guidance ∉ {0, 1} and a label); `randomSeed` supplies the seed when none is given.
 */
export function parseQuery(
  query: URLSearchParams,
  card: ModelCard,
  maxWork = DEFAULT_MAX_WORK,
  randomSeed: () => number = () => crypto.getRandomValues(new Uint32Array(1))[0],
): ParseResult {
  // No prototype: keys like __proto__ or constructor are plain (unknown) keys, not members.
  const raw: Record<string, string> = Object.create(null);
  const issues: Issue[] = [];
  for (const [k, v] of query) {
    if (Object.hasOwn(raw, k)) issues.push({ path: k, message: "given more than once" });
    raw[k] = v;
  }
  const r = querySchema(card).safeParse(raw);
  if (!r.success) {
    for (const i of r.error.issues) {
      if (i.code === "unrecognized_keys") {
        for (const key of i.keys) issues.push({ path: key, message: "unknown parameter" });
      } else issues.push({ path: i.path.join("."), message: i.message });
    }
  }
  if (issues.length > 0 || !r.success) return { ok: false, issues };
  const q = r.data;
  // Whether it samples the null class (labelsUsed's answer, without drawing the labels).
  const nullClass = (q.guidance ?? card.sampling.guidance) === 0 ||
    (q.label === undefined && !drawsRandomLabels(card));
  const sampler = q.sampler ?? defaultSampler(card, nullClass, (q.classifier_scale ?? 0) > 0);
  const def = SAMPLERS[sampler];
  if (def.needsAnalytic && !card.sampling.analytic) {
    return {
      ok: false,
      issues: [{
        path: "sampler",
        message: `${sampler} needs Analytic-DPM statistics, which this model's card does not ` +
          `have (re-export it with --analytic-samples); use one of ${
            SAMPLER_NAMES.filter((s) => !SAMPLERS[s].needsAnalytic).join(", ")
          }`,
      }],
    };
  }
  if (q.eta !== undefined && !def.usesEta) {
    return {
      ok: false,
      issues: [{
        path: "eta",
        message: `sampler ${sampler} takes no eta; eta applies to ${
          SAMPLER_NAMES.filter((s) => SAMPLERS[s].usesEta).join(", ")
        }`,
      }],
    };
  }
  const classifierIssue = checkClassifier(q, card);
  if (classifierIssue) return { ok: false, issues: [classifierIssue] };
  const params: GenerateParams = {
    seed: q.seed ?? randomSeed(),
    seedGiven: q.seed !== undefined,
    steps: q.steps ?? card.sampling.steps,
    spacing: q.spacing ?? card.sampling.spacing,
    sampler,
    eta: q.eta ?? card.sampling.eta,
    n: q.n ?? 1,
    scale: q.scale ?? 1,
    label: q.label,
    guidance: q.guidance ?? card.sampling.guidance,
    classifierScale: q.classifier_scale ?? 0,
    format: q.format ?? "png",
  };
  if (q.steps === undefined) {
    params.steps = defaultSteps(card, nullClass, params.classifierScale > 0);
  }
  const p = workPasses(params, sampledLabels(params, card), card);
  const calls = params.steps * def.callsPerStep;
  const work = params.n * calls * p;
  if (work > maxWork) {
    return {
      ok: false,
      issues: [{
        path: "n",
        message: `work n × calls × passes = ${params.n} × ${calls} × ` +
          `${p} = ${work} exceeds the cap of ${maxWork} ` +
          `(MAX_WORK); lower n or steps`,
      }],
    };
  }
  return { ok: true, params };
}

/**
 * `classifier_scale` needs the card's classifier and a label; a label on an unconditional model
 * (its classifier's class) needs `classifier_scale`.
 */
function checkClassifier(
  q: { label?: number; classifier_scale?: number },
  card: ModelCard,
): Issue | null {
  const s = q.classifier_scale;
  if (s !== undefined && !card.classifier) {
    return {
      path: "classifier_scale",
      message:
        "this model's card has no classifier (card field classifier): no classifier guidance",
    };
  }
  if (s !== undefined && q.label === undefined) {
    return {
      path: "classifier_scale",
      message: "needs label: the class the classifier steers toward" +
        (card.architecture.numClasses > 0 ? " (guidance=0 keeps the UNet's null class)" : ""),
    };
  }
  if (q.label !== undefined && card.labels === null && s === undefined) {
    return {
      path: "label",
      message: "this model is unconditional: label names a class of its classifier and needs " +
        "classifier_scale",
    };
  }
  return null;
}

/**
 * Passes per image per model call that the work cap counts: the UNet's (2 with classifier-free
 * guidance; an unconditional UNet takes no label) plus one for the classifier's gradient.
 */
export function workPasses(
  p: { guidance: number; classifierScale: number },
  labels: LabelSpec,
  card: ModelCard,
): number {
  const unet = card.architecture.numClasses > 0 ? passes(labels, p.guidance) : 1;
  return unet + (p.classifierScale > 0 ? 1 : 0);
}

/** Mixed into the seed for drawing labels, so the label stream is not the noise stream. */
const LABEL_SEED_SALT = 0x6c616231;

/**
 * The labels the sampler is given: the requested label; else, for a card whose
 * `sampling.unlabeled` is `random-label`, one class per image drawn uniformly from the seed (so
 * the same query gives the same labels); else undefined (the null class).
 */
export function sampledLabels(p: GenerateParams, card: ModelCard): LabelSpec {
  if (p.label !== undefined) return p.label;
  if (!drawsRandomLabels(card)) return undefined;
  const k = card.architecture.numClasses;
  const rng = new Rng((p.seed ^ LABEL_SEED_SALT) >>> 0);
  return Array.from({ length: p.n }, () => rng.int(k));
}

/** Whether a request without a label draws random ones (a conditional card's `random-label`). */
function drawsRandomLabels(card: ModelCard): boolean {
  return card.architecture.numClasses > 0 && card.sampling.unlabeled === "random-label";
}

/** The class each image was conditioned on, or null for null-class (unconditional) sampling. */
export function labelsUsed(p: GenerateParams, card: ModelCard): number[] | null {
  const l = sampledLabels(p, card);
  if (samplesNullClass(l, p.guidance) || l === undefined) return null; // (l: for the type check)
  return typeof l === "number" ? new Array(p.n).fill(l) : [...l];
}

/**
 * The steps of a request that names none: the card's `classifier.steps` where it steers with the
 * classifier and the card has them; else its `sampling.nullClassSteps` where the request samples
 * the null class (`labelsUsed` is null); else (and for a card without them) its `steps`.
 */
export function defaultSteps(
  card: ModelCard,
  nullClass: boolean,
  classifierGuided = false,
): number {
  if (classifierGuided && card.classifier?.steps !== undefined) return card.classifier.steps;
  return nullClass ? card.sampling.nullClassSteps ?? card.sampling.steps : card.sampling.steps;
}

/** The parameters that determine the output, in a fixed order (for ETags and the JSON body). */
export function canonical(p: GenerateParams) {
  return {
    seed: p.seed,
    steps: p.steps,
    spacing: p.spacing,
    sampler: p.sampler,
    eta: p.eta,
    n: p.n,
    scale: p.scale,
    label: p.label ?? null,
    guidance: p.guidance,
    // Only when it steers: requests without it keep their ETags and JSON bytes.
    ...(p.classifierScale > 0 ? { classifier_scale: p.classifierScale } : {}),
    format: p.format,
  };
}
