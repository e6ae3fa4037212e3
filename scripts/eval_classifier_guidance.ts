/**
 * Classifier guidance through the edge sampler (edge/sampler.ts `generate`, the card's own
 * classifier in onnxruntime-web), scored as `deno task eval` scores (scripts/eval.ts: the
 * project's evaluation classifier, FID, precision/recall, CPU per sample): the null class
 * (guidance 0) steered toward label i mod 10 at each scale, against the labelled default and
 * classifier-free guidance rows at chosen steps (e.g. at equal CPU).
 *
 *   deno task eval:classifier-guidance [--model fixtures/models/mnist/model.json]
 *     [--scales 0,1,2,4,8] [--steps S] [--sampler S] [--n 640] [--seed 0] [--batch 50]
 *     [--labelled 5,16,9:2] [--at input|mean] [--grids <dir>]
 *
 * `--steps` and `--sampler` apply to the guided rows (default: what such a request gets, the
 * card's `classifier.steps` / `classifier.sampler` with a scale > 0, else the null class's);
 * scale 0 is the unguided null class. `--labelled` lists labelled rows as steps or
 * steps:guidance (classifier-free; default the card's), on the card's sampler. Each row also
 * reports the per-digit accuracy (the label spread). CPU counts the UNet and the classifier.
 * `--at mean`: ancestral steps take the gradient at their mean instead of x_t
 * (shared/sample.ts ClassifierGuidance).
 */
import { join } from "node:path";
import { type CliInfo, parseCli, runCli, usageError } from "./cli_args.ts";
import { DEFAULT_MODEL_CARD, loadModel } from "../edge/model.ts";
import { createEngine, type Engine, warmUp } from "../edge/engine.ts";
import { defaultSteps } from "../edge/params.ts";
import { defaultSampler, generate, highNoiseOf } from "../edge/sampler.ts";
import { oneOf } from "../shared/choice.ts";
import { SAMPLER_NAMES, type SamplerName } from "../shared/samplers/mod.ts";
import { classify } from "./classifier/model.ts";
import type { HighNoiseScale } from "../shared/sample.ts";
import { parseHighNoise } from "../trainer/classifier/card.ts";
import {
  ceilingRow,
  cpuMs,
  digitLabels,
  type EvalContext,
  type EvalRow,
  evaluateImages,
  loadEvalContext,
  realCeiling,
  TABLE_HEADER,
  tableRow,
  writeGrid,
} from "./eval.ts";

const PX = 28 * 28;

export interface GuidedRequest {
  n: number;
  steps: number;
  sampler?: SamplerName;
  /** Classifier-free guidance weight (0: the UNet's null class). */
  guidance: number;
  /** Classifier guidance scale (0: none). */
  classifierScale: number;
  /** Where ancestral steps take the gradient (default x_t). */
  at?: "input" | "mean";
  /** The weaker scale at high noise (undefined: the card's; null: S at every step). */
  highNoise?: HighNoiseScale | null;
  seed: number;
  batch: number;
}

/** Accuracy per requested digit (labels i mod 10), by the evaluation classifier. */
export function accuracyByDigit(
  ctx: EvalContext,
  images: Float32Array,
  labels: Int32Array,
): number[] {
  const n = labels.length, { logits } = classify(ctx.classifier, images, n);
  const right = new Array(10).fill(0), count = new Array(10).fill(0);
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * 10, (i + 1) * 10);
    const top = row.indexOf(Math.max(...row));
    count[labels[i]]++;
    if (top === labels[i]) right[labels[i]]++;
  }
  return right.map((r, d) => (count[d] ? r / count[d] : NaN));
}

/** n samples with labels i mod 10 in batches (batch b: seed + b), scored; + per-digit accuracy. */
export async function evalGuided(
  ctx: EvalContext,
  engine: Engine,
  r: GuidedRequest,
  grid: string | null,
): Promise<{ row: EvalRow; byDigit: number[] }> {
  const card = engine.model.card;
  if (!digitLabels(engine) && !card.classifier?.labels.every((l, i) => l === String(i))) {
    throw new RangeError("the model's labels (or its classifier's) must be the digits 0…9");
  }
  const labels = Int32Array.from({ length: r.n }, (_, i) => i % 10);
  const images = new Float32Array(r.n * PX);
  const c0 = cpuMs(), t0 = performance.now(), runs0 = engine.runs;
  for (let b = 0, i = 0; i < r.n; b++, i += r.batch) {
    const m = Math.min(r.batch, r.n - i);
    images.set(
      await generate(engine, {
        seed: (r.seed + b) >>> 0,
        steps: r.steps,
        sampler: r.sampler,
        eta: card.sampling.eta,
        n: m,
        label: Array.from(labels.subarray(i, i + m)),
        guidance: r.guidance,
        classifierScale: r.classifierScale,
        classifierAt: r.at,
        classifierHighNoise: r.highNoise,
      }),
      i * PX,
    );
  }
  const cpu = cpuMs() - c0, wall = performance.now() - t0;
  if (grid) await writeGrid(grid, images, r.n);
  return {
    row: {
      sampler: r.sampler ?? defaultSampler(card, r.guidance === 0, r.classifierScale > 0),
      steps: r.steps,
      spacing: card.sampling.spacing,
      variance: "small",
      eta: card.sampling.eta,
      guidance: r.guidance,
      calls: (engine.runs - runs0) / Math.ceil(r.n / r.batch),
      metrics: evaluateImages(ctx, images, r.n, labels),
      cpuMsPerSample: cpu / r.n,
      wallMsPerSample: wall / r.n,
      grid,
    },
    byDigit: accuracyByDigit(ctx, images, labels),
  };
}

const CLI: CliInfo = {
  name: "eval_classifier_guidance",
  summary: "the null class steered by the card's classifier, against labelled and CFG rows",
  usage: "deno task eval:classifier-guidance [options]",
  help: {
    model: "a model card with a classifier (default: the shipped MNIST model)",
    scales: "classifier_scale values for the null class (0: unguided)",
    steps: "steps of the guided rows (default: the card's for such a request)",
    sampler: "sampler of the guided rows (default: the card's for such a request)",
    labelled: "labelled rows, steps or steps:guidance each (empty: none; default the card's)",
    grids: "write each row's first 100 samples as a PNG grid into this directory",
    at: "where ancestral steps take the gradient: input (x_t) or mean",
    "high-noise":
      "ABOVE:FACTOR: S × FACTOR above timestep ABOVE; none: S everywhere (default: the card's)",
  },
};

/** How the guided rows scale at high noise, in words. */
function highNoiseText(h: HighNoiseScale | undefined): string {
  return h ? `S × ${h.factor} above t = ${h.above}` : "S at every step";
}

const list = (s: string) => s.split(",").filter((v) => v.trim() !== "").map(Number);

export async function main(argv: string[], context?: EvalContext): Promise<string[]> {
  const { values: a } = parseCli({
    args: argv,
    options: {
      model: { type: "string", default: DEFAULT_MODEL_CARD.pathname },
      scales: { type: "string", default: "0,1,2,4,8" },
      steps: { type: "string" },
      sampler: { type: "string" },
      n: { type: "string", default: "640" },
      seed: { type: "string", default: "0" },
      batch: { type: "string", default: "50" },
      labelled: { type: "string" },
      grids: { type: "string" },
      at: { type: "string", default: "input" },
      "high-noise": { type: "string" },
    },
  }, CLI);
  const engine = await createEngine(await loadModel(a.model!), { backend: "wasm", threads: 1 });
  const card = engine.model.card;
  if (!card.classifier) throw usageError(CLI, `${a.model} has no classifier in its card`);
  const scales = list(a.scales!);
  if (scales.some((s) => !(s >= 0))) throw usageError(CLI, "--scales must be numbers ≥ 0");
  const common = { n: Number(a.n), seed: Number(a.seed), batch: Number(a.batch) };
  const at = oneOf(["input", "mean"] as const, a.at!, "at");
  let highNoise: HighNoiseScale | null | undefined;
  try {
    highNoise = a["high-noise"] === undefined
      ? undefined
      : a["high-noise"] === "none"
      ? null
      : parseHighNoise(a["high-noise"]);
  } catch (e) {
    throw usageError(CLI, (e as Error).message);
  }
  const sampler = a.sampler === undefined ? undefined : oneOf(SAMPLER_NAMES, a.sampler, "sampler");
  const ctx = context ?? await loadEvalContext();
  // Out of the CPU columns: V8's tier-up of the UNet's wasm, the classifier's session.
  await warmUp(engine);
  await generate(engine, { seed: 0, steps: 2, eta: 1, n: 1, label: 0, classifierScale: 1 });
  if (a.grids) await Deno.mkdir(a.grids, { recursive: true });
  const gridOf = (name: string) => (a.grids ? join(a.grids, `${name}.png`) : null);
  const lines = [
    `classifier guidance of ${a.model} (recommended scale ${card.classifier.scale}; ` +
    `${highNoiseText(highNoiseOf(card, highNoise))})`,
    TABLE_HEADER,
  ];
  const spread: string[] = [];
  console.log(lines.join("\n"));
  const emit = (name: string, r: { row: EvalRow; byDigit: number[] }) => {
    const line = tableRow(r.row).replace(/^\| /, `| ${name}: `);
    const low = Math.min(...r.byDigit), digit = r.byDigit.indexOf(low);
    spread.push(
      `${name}: per-digit accuracy ${r.byDigit.map((v) => v.toFixed(2)).join(" ")} ` +
        `(lowest ${low.toFixed(3)}, digit ${digit})`,
    );
    lines.push(line);
    console.log(line);
  };
  // The card's default steps for each row (a request with classifier_scale: classifier.steps).
  const stepsOf = (s: number) => Number(a.steps ?? defaultSteps(card, true, s > 0));
  for (const s of scales) {
    const r = await evalGuided(ctx, engine, {
      ...common,
      steps: stepsOf(s),
      sampler, // undefined: generate() picks the card's sampler for such a request
      guidance: 0,
      classifierScale: s,
      at,
      highNoise,
    }, gridOf(`null-s${s}`));
    emit(s === 0 ? "null class, unguided" : `null class, classifier_scale ${s}`, r);
  }
  for (const entry of (a.labelled ?? String(card.sampling.steps)).split(",")) {
    if (entry.trim() === "") continue;
    const [st, g] = [
      Number(entry.split(":")[0]),
      Number(entry.split(":")[1] ?? card.sampling.guidance),
    ];
    if (!(st >= 1) || !(g >= 0)) throw usageError(CLI, `--labelled: bad entry "${entry}"`);
    const r = await evalGuided(ctx, engine, {
      ...common,
      steps: st,
      guidance: g,
      classifierScale: 0,
    }, gridOf(`labelled-w${g}-steps${st}`));
    emit(`labelled, guidance ${g}`, r);
  }
  // The floor every row is read against: as many real held-out digits, scored the same way.
  const real = ceilingRow(realCeiling(ctx, common.n));
  lines.push(real);
  console.log(real);
  lines.push("", ...spread);
  console.log(["", ...spread].join("\n"));
  return lines;
}

if (import.meta.main) await runCli(() => main(Deno.args));
