/**
 * Queries of the image routes: /generate's parameters (edge/params.ts parseQuery, strict, with
 * the card's defaults) plus each route's own, and `format=apng` where a route animates. The
 * work cap counts model calls × images × passes as /generate's does.
 */
import type { ModelCard } from "../../shared/model_card.ts";
import { startTimestep } from "../../shared/img2img.ts";
import { callsWith } from "../../shared/sample.ts";
import { makeSchedule } from "../../shared/schedule.ts";
import { SAMPLER_NAMES, type SamplerName, SAMPLERS } from "../../shared/samplers/mod.ts";
import { type LabelSpec, samplesNullClass } from "../engine.ts";
import { defaultDenoiseSteps } from "../img2img.ts";
import { canInferLabel, labelInferenceWork } from "../inpaint_label.ts";
import {
  defaultSteps,
  type GenerateParams,
  parseQuery,
  sampledLabels,
  workPasses,
} from "../params.ts";
import type { Issue } from "./context.ts";
import type { ImageFormat } from "./render.ts";

export const DEFAULT_STRENGTH = 0.5;
export const MAX_RESAMPLE = 10;
export const MIN_FRAMES = 2, MAX_FRAMES = 32, DEFAULT_FRAMES = 8;

export type Parsed<T> = { ok: true; params: T } | { ok: false; issues: Issue[] };

export interface ImageParams extends Omit<GenerateParams, "format"> {
  format: ImageFormat;
}

const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Split `own` keys (given at most once) and a single `format=apng` off the query, and parse the
 * rest as /generate's query (work cap left to the caller). `drop` are /generate keys this
 * route does not take (reported as unknown); `set` are fixed values added to what is parsed.
 */
export function parseShared(
  query: URLSearchParams,
  card: ModelCard,
  own: readonly string[],
  o: { drop?: readonly string[]; set?: Record<string, string>; apng?: boolean } = {},
): { params?: ImageParams; own: Map<string, string>; issues: Issue[] } {
  const issues: Issue[] = [];
  const mine = new Map<string, string>();
  const rest = new URLSearchParams();
  const formats = query.getAll("format");
  const apng = o.apng !== false && formats.length === 1 && formats[0] === "apng";
  for (const [k, v] of query) {
    if (own.includes(k)) {
      if (mine.has(k)) issues.push({ path: k, message: "given more than once" });
      mine.set(k, v);
    } else if (o.drop?.includes(k)) issues.push({ path: k, message: "unknown parameter" });
    else if (!(apng && k === "format")) rest.append(k, v);
  }
  for (const [k, v] of Object.entries(o.set ?? {})) rest.set(k, v);
  const r = parseQuery(rest, card, Infinity);
  if (!r.ok) {
    issues.push(...r.issues);
    return { own: mine, issues };
  }
  return { params: { ...r.params, format: apng ? "apng" : r.params.format }, own: mine, issues };
}

/** A number in (0, 1], or an issue. */
function strengthOf(v: string | undefined): number | string {
  if (v === undefined) return DEFAULT_STRENGTH;
  if (!DECIMAL.test(v) || !Number.isFinite(Number(v))) return "must be a number in (0, 1]";
  const s = Number(v);
  return s > 0 && s <= 1 ? s : "must be in (0, 1] (the fraction of the chain: > 0, ≤ 1)";
}

function intOf(v: string, min: number, max: number): number | string {
  if (!/^\d+$/.test(v)) return `must be an integer in ${min}…${max}`;
  const n = Number(v);
  return n < min ? `must be ≥ ${min}` : n > max ? `must be ≤ ${max}` : n;
}

function capIssue(path: string, what: string, work: number, maxWork: number): Issue {
  return {
    path,
    message: `work ${what} = ${work} exceeds the cap of ${maxWork} (MAX_WORK); lower n or steps`,
  };
}

/** Labels for a route whose input decides the class: the asked one, else the null class. */
export const inputLabel = (p: ImageParams): LabelSpec => p.label;

export interface DenoiseParams extends ImageParams {
  strength: number;
  /** Original timestep the partial chain starts at. */
  t0: number;
}

export function parseDenoise(
  query: URLSearchParams,
  card: ModelCard,
  maxWork: number,
): Parsed<DenoiseParams> {
  const r = parseShared(query, card, ["strength"]);
  const strength = strengthOf(r.own.get("strength"));
  if (typeof strength === "string") r.issues.push({ path: "strength", message: strength });
  if (r.issues.length > 0 || !r.params || typeof strength === "string") {
    return { ok: false, issues: r.issues };
  }
  const p = r.params;
  const t0 = startTimestep(card.schedule.T, strength);
  const steps = query.has("steps") ? p.steps : defaultDenoiseSteps(card, strength);
  if (steps > t0 + 1) {
    return {
      ok: false,
      issues: [{
        path: "steps",
        message: `must be ≤ ${t0 + 1}: at strength ${strength} the partial chain has ` +
          `t₀ + 1 = ${t0 + 1} timesteps`,
      }],
    };
  }
  const calls = steps * SAMPLERS[p.sampler].callsPerStep;
  const work = p.n * calls * workPasses(p, inputLabel(p), card);
  if (work > maxWork) {
    return { ok: false, issues: [capIssue("n", "n × calls × passes", work, maxWork)] };
  }
  return { ok: true, params: { ...p, steps, strength, t0 } };
}

const historyOf = new Map<SamplerName, boolean>();
/** Whether a sampler's steps keep history (multistep), so that it cannot resample. */
export function keepsHistory(name: SamplerName): boolean {
  let h = historyOf.get(name);
  if (h === undefined) {
    const base = makeSchedule("linear", 2);
    h = SAMPLERS[name].plan(base, {
      steps: 1,
      spacing: "linspace",
      eta: 1,
      variance: "small",
      clipDenoised: true,
      prediction: "epsilon",
      analytic: { gamma: [0, 0] },
    }).history;
    historyOf.set(name, h);
  }
  return h;
}

export interface InpaintParams extends ImageParams {
  resample: number;
  /**
   * No label, guidance ≠ 0, and a card that can read a class off the kept pixels
   * (edge/inpaint_label.ts): each image is sampled conditioned on the class its kept pixels read
   * as, at the card's labelled steps. Otherwise no label samples the null class.
   */
  inferLabel: boolean;
}

export function parseInpaint(
  query: URLSearchParams,
  card: ModelCard,
  maxWork: number,
): Parsed<InpaintParams> {
  const r = parseShared(query, card, ["resample"]);
  const v = r.own.get("resample");
  const resample = v === undefined ? 1 : intOf(v, 1, MAX_RESAMPLE);
  if (typeof resample === "string") r.issues.push({ path: "resample", message: resample });
  if (r.issues.length > 0 || !r.params || typeof resample === "string") {
    return { ok: false, issues: r.issues };
  }
  const p = r.params;
  // The input decides the class: read off its kept pixels where the card can, else the null
  // class (then with the card's null-class chain, `sampling.nullClassSteps`, unless the query
  // names its steps).
  const inferLabel = p.label === undefined && p.guidance !== 0 && canInferLabel(card);
  if (!query.has("steps")) {
    p.steps = defaultSteps(card, !inferLabel && samplesNullClass(inputLabel(p), p.guidance));
  }
  if (resample > 1 && keepsHistory(p.sampler)) {
    const ok = SAMPLER_NAMES.filter((s) => !keepsHistory(s)).join(", ");
    return {
      ok: false,
      issues: [{
        path: "resample",
        message: `sampler ${p.sampler} is multistep and cannot redo a step; resample > 1 ` +
          `takes one of ${ok}`,
      }],
    };
  }
  const calls = callsWith(p.steps * SAMPLERS[p.sampler].callsPerStep, resample);
  const labelWork = inferLabel ? labelInferenceWork(card) : 0;
  const work = p.n * (calls * workPasses(p, inferLabel ? 0 : inputLabel(p), card) + labelWork);
  if (work > maxWork) {
    const what = inferLabel ? "n × (calls × passes + label reading)" : "n × calls × passes";
    return { ok: false, issues: [capIssue("n", what, work, maxWork)] };
  }
  return { ok: true, params: { ...p, resample, inferLabel } };
}

export interface InterpolateParams extends ImageParams {
  from: number;
  to: number;
  frames: number;
  /** One class per frame, or one for all, or undefined (null class). */
  labels: LabelSpec;
}

export function parseInterpolate(
  query: URLSearchParams,
  card: ModelCard,
  maxWork: number,
): Parsed<InterpolateParams> {
  const from = query.getAll("from"), to = query.getAll("to");
  const r = parseShared(query, card, ["from", "to", "frames"], {
    drop: ["seed", "n", "sampler", "eta"],
    // The seed only names the request (η = 0 draws no noise after x_T); from's, for the labels.
    set: {
      sampler: "ddim",
      eta: "0",
      ...(from.length === 1 && /^\d+$/.test(from[0]) ? { seed: from[0] } : {}),
    },
  });
  const seeds: number[] = [];
  for (const [key, values] of [["from", from], ["to", to]] as const) {
    if (values.length === 0) r.issues.push({ path: key, message: "required: a uint32 seed" });
    else if (values.length === 1) {
      const s = intOf(values[0], 0, 0xffffffff);
      if (typeof s === "string") r.issues.push({ path: key, message: s });
      else seeds.push(s);
    }
  }
  const fv = r.own.get("frames");
  const frames = fv === undefined ? DEFAULT_FRAMES : intOf(fv, MIN_FRAMES, MAX_FRAMES);
  if (typeof frames === "string") r.issues.push({ path: "frames", message: frames });
  if (r.issues.length > 0 || !r.params || typeof frames === "string" || seeds.length < 2) {
    return { ok: false, issues: r.issues };
  }
  const p = { ...r.params, seedGiven: true };
  const [a, b] = seeds;
  let labels: LabelSpec = p.label;
  if (labels === undefined) {
    const la = sampledLabels({ ...p, format: "png", seed: a, n: 1 }, card);
    const lb = sampledLabels({ ...p, format: "png", seed: b, n: 1 }, card);
    // Each end keeps the class /generate draws for its seed; the switch is at the middle.
    if (Array.isArray(la) && Array.isArray(lb)) {
      labels = Array.from({ length: frames }, (_, f) => (f < frames / 2 ? la[0] : lb[0]));
    }
  }
  const work = frames * p.steps * workPasses(p, labels, card);
  if (work > maxWork) {
    return { ok: false, issues: [capIssue("frames", "frames × steps × passes", work, maxWork)] };
  }
  return { ok: true, params: { ...p, n: frames, from: a, to: b, frames, labels } };
}
