/**
 * Sample-quality evaluation through the real edge sampler (edge/sampler.ts `generate` on
 * onnxruntime-web), scored with the committed MNIST classifier (scripts/classifier/):
 *
 *   deno task eval --model fixtures/models/mnist/model.json [--sampler S] [--steps 14] [--eta 1]
 *     [--pairs closest.png: the 8 samples nearest to a training image, beside it]
 *     [--guidance 2] [--n 500] [--batch 50] [--seed 0] [--threads 1] [--grid out.png] [--json f]
 *   deno task eval --sweep [--sweep-sampler ddpm,analytic,dpm++2m,...]
 *     [--sweep-steps 5,10,14,20,50,100,1000] [--sweep-eta 0,1]
 *     [--sweep-guidance 1,2,3] [--sweep-spacing linspace,trailing,quadratic] [--sweep-n 100]
 *     [--long-n 20] [--variance small|large] [--grids <dir>] [--markdown f]
 *
 * Metrics (scripts/metrics.ts): FID on the classifier's 128-d penultimate features against the
 * training split's features; mean classifier confidence and the fraction above 0.9; label
 * coverage (entropy of the predicted-class histogram / ln 10); for conditional models, accuracy
 * of the classifier against the requested label; nearest-neighbour L2 distance in pixel space
 * ([0, 1] pixels, 28×28) to the training split. The same numbers for as many held-out real
 * digits (balanced over classes; the training never saw them) are the ceiling.
 *
 * Diversity (scripts/metrics.ts): improved precision and recall (Kynkäänniemi et al. 2019) and
 * density and coverage (Naeem et al. 2020) at k = 3, in pixel space ([0, 1] pixels) and in the
 * classifier's feature space, against a fixed reference of 1,000 training digits (100 per class,
 * evenly spread through each class), with recall per class. The real row is as many held-out
 * digits scored against the same reference: compare rows of equal n only (a larger generated set
 * has smaller k-NN balls). At n = 1,000 the real row is every held-out digit.
 * CPU ms per sample = process CPU time (user + system, all threads) spent in `generate` / n.
 *
 * Emoji (a card whose `dataset` is "emoji"): the same metrics on 32×32 RGB (CHW) with the emoji
 * category classifier (fixtures/classifier-emoji: its features for FID and precision/recall, its
 * predictions for category accuracy), 100 reference images per category (fewer where a category
 * has fewer), the real row from held-out emoji, and memorisation (scripts/memorisation.ts):
 * nearest-training-image distance and the share of near copies, for the samples and for the real
 * held-out row.
 */
import { parseCli, runCli } from "./cli_args.ts";
import process from "node:process";
import { join, relative } from "node:path";
import { type Dataset, loadDataset } from "../trainer/data/datasets.ts";
import { nhwcToNchw } from "../trainer/training/sample_grid.ts";
import { DEFAULT_MODEL_CARD, loadModel } from "../edge/model.ts";
import { createEngine, type Engine, samplesNullClass } from "../edge/engine.ts";
import { defaultSampler, generate } from "../edge/sampler.ts";
import { defaultSteps } from "../edge/params.ts";
import { encodePng, tileImages } from "../shared/image.ts";
import { type Spacing, SPACINGS } from "../shared/schedule.ts";
import { VARIANCES, type VarianceType } from "../shared/step.ts";
import { oneOf } from "../shared/choice.ts";
import {
  cardSampler,
  DEFAULT_SAMPLER,
  SAMPLER_NAMES,
  type SamplerName,
  SAMPLERS,
} from "../shared/samplers/mod.ts";
import { type Classifier, classifierDir, classify, loadClassifier } from "./classifier/model.ts";
import { type MemorisationStats, memorisationStats, nearestTraining } from "./memorisation.ts";
import {
  classStats,
  frechetDistance,
  type GaussianStats,
  type ManifoldMetrics,
  manifoldMetricsAgainst,
  type ManifoldReference,
  manifoldReference,
  meanCov,
  softmax,
} from "./metrics.ts";

/** MNIST's image side (the default evaluation data). */
const SIZE = 28;

/** k of the k-NN manifolds (Kynkäänniemi et al. 2019's choice, and the issue's). */
export const MANIFOLD_K = 3;
/** Reference digits per class for precision/recall (1,000 in all). */
export const MANIFOLD_PER_CLASS = 100;

/** What every evaluation compares against, loaded once. */
export interface EvalContext {
  /** "mnist" or "emoji": the data, classifier and image shape below. */
  dataset: string;
  size: number;
  channels: number;
  /** Values per image (size² × channels); images are CHW, as the edge's. */
  px: number;
  /** The classifier's classes (= the dataset's) and its feature width. */
  labelNames: string[];
  numClasses: number;
  featureDim: number;
  classifier: Classifier;
  /** Training-split images in [−1, 1] (n × px, CHW): the memorisation reference. */
  trainImages: Float32Array;
  /** Training-split pixels in [0, 1] (n × px), the nearest-neighbour reference. */
  trainPixels: Float32Array;
  trainCount: number;
  /** Classifier features of the training split: the FID reference. */
  trainStats: GaussianStats;
  /** Held-out real digits in [−1, 1] and their labels. */
  heldOut: { images: Float32Array; labels: Int32Array; count: number };
  /** Precision/recall references: 1,000 training digits in pixel and in feature space. */
  manifold: { pixels: ManifoldReference; features: ManifoldReference };
}

/** Indices of `perClass` training digits per class, evenly spread through each class. */
export function spreadPerClass(labels: Int32Array, perClass: number, classes = 10): number[] {
  const byClass: number[][] = Array.from({ length: classes }, () => []);
  labels.forEach((c, i) => byClass[c].push(i));
  return byClass.flatMap((list) => {
    const m = Math.min(perClass, list.length);
    return Array.from({ length: m }, (_, j) => list[Math.floor((j * list.length) / m)]);
  });
}

/** Rows `picked` of an n × d array. */
function pickRows(data: Float32Array, d: number, picked: number[]): Float32Array {
  const out = new Float32Array(picked.length * d);
  picked.forEach((i, j) => out.set(data.subarray(i * d, (i + 1) * d), j * d));
  return out;
}

/** [−1, 1] images → [0, 1] pixels, clipped (what a PNG shows). */
const toPixels = (images: Float32Array) => images.map((v) => Math.min(Math.max((v + 1) / 2, 0), 1));

/** A dataset's images as CHW per image (the edge's layout; a no-op for one channel). */
const chwImages = (d: Dataset): Float32Array =>
  d.channels === 1 ? d.images : nhwcToNchw(d.images, d.count, d.channels, d.imageSize ** 2);

/** The evaluation data of a model card's `dataset`: emoji for emoji, else MNIST. */
export const evalDataset = (cardDataset: string) => cardDataset === "emoji" ? "emoji" : "mnist";

export async function loadEvalContext(dataset = "mnist"): Promise<EvalContext> {
  const classifier = await loadClassifier(classifierDir(dataset));
  const { train, test } = await loadDataset(dataset);
  if (!train.labels || !test.labels || !train.labelNames) throw new Error(`${dataset}: no labels`);
  const px = train.imageSize ** 2 * train.channels;
  if (classifier.layers[0].nin !== px) throw new Error(`${dataset}: classifier input ≠ ${px}`);
  const numClasses = train.labelNames.length;
  const featureDim = classifier.layers[classifier.layers.length - 2].nout;
  const trainImages = chwImages(train);
  const feats = classify(classifier, trainImages, train.count).features;
  const trainStats = meanCov({ n: train.count, d: featureDim, data: feats });
  const trainPixels = trainImages.map((v) => (v + 1) / 2);
  const picked = spreadPerClass(train.labels, MANIFOLD_PER_CLASS, numClasses);
  const labels = Int32Array.from(picked, (i) => train.labels![i]);
  const n = picked.length;
  const PX = px, FEATURE_DIM = featureDim;
  return {
    dataset,
    size: train.imageSize,
    channels: train.channels,
    px,
    labelNames: train.labelNames,
    numClasses,
    featureDim,
    classifier,
    trainImages,
    trainPixels,
    trainCount: train.count,
    trainStats,
    heldOut: { images: chwImages(test), labels: test.labels, count: test.count },
    manifold: {
      pixels: manifoldReference(
        { n, d: PX, data: pickRows(trainPixels, PX, picked) },
        MANIFOLD_K,
        labels,
        numClasses,
      ),
      features: manifoldReference(
        { n, d: FEATURE_DIM, data: pickRows(feats, FEATURE_DIM, picked) },
        MANIFOLD_K,
        labels,
        numClasses,
      ),
    },
  };
}

export interface QualityMetrics {
  n: number;
  fid: number;
  confidence: number;
  confidentFraction: number;
  coverage: number;
  /** null for unconditional samples. */
  accuracy: number | null;
  /** Nearest-neighbour L2 to the training split, [0, 1] pixels: mean and median. */
  nnMean: number;
  nnMedian: number;
  histogram: number[];
  /** Precision, recall, density, coverage in [0, 1] pixel space (k = 3, 1,000 training digits). */
  pixelManifold: ManifoldMetrics;
  /** The same in the classifier's 128-d feature space. */
  featureManifold: ManifoldMetrics;
  /** Nearest-training-image distance and near copies (scripts/memorisation.ts). */
  memorisation: MemorisationStats;
}

/**
 * Score n images (CHW, the context's size and channels, values in [−1, 1]); `labels` are the
 * requested classes for conditional samples, or null.
 */
export function evaluateImages(
  ctx: EvalContext,
  images: Float32Array,
  n: number,
  labels: ArrayLike<number> | null,
): QualityMetrics {
  const PX = ctx.px, FEATURE_DIM = ctx.featureDim, NUM_CLASSES = ctx.numClasses;
  if (images.length !== n * PX) {
    throw new RangeError(`expected ${n} ${ctx.size}×${ctx.size}×${ctx.channels} images`);
  }
  const out = classify(ctx.classifier, images, n);
  const probs = softmax({ n, d: NUM_CLASSES, data: out.logits });
  const cs = classStats({ n, d: NUM_CLASSES, data: probs }, labels);
  const fid = frechetDistance(meanCov({ n, d: FEATURE_DIM, data: out.features }), ctx.trainStats);
  const pixels = toPixels(images);
  // One exact search serves both the L2 nearest neighbour ([0, 1] pixels) and memorisation.
  const clipped = pixels.map((v) => v * 2 - 1);
  const near = nearestTraining(clipped, n, ctx.trainImages, ctx.trainCount, PX);
  const l2 = Float64Array.from(near.d1, (d) => d * Math.sqrt(PX)).sort();
  const nn = {
    mean: l2.reduce((a, b) => a + b, 0) / n,
    median: n % 2 ? l2[(n - 1) / 2] : (l2[n / 2 - 1] + l2[n / 2]) / 2,
  };
  return {
    n,
    fid,
    confidence: cs.confidence,
    confidentFraction: cs.confidentFraction,
    coverage: cs.coverage,
    accuracy: cs.accuracy,
    nnMean: nn.mean,
    nnMedian: nn.median,
    histogram: cs.histogram,
    pixelManifold: manifoldMetricsAgainst(ctx.manifold.pixels, { n, d: PX, data: pixels }),
    featureManifold: manifoldMetricsAgainst(ctx.manifold.features, {
      n,
      d: FEATURE_DIM,
      data: out.features,
    }),
    memorisation: memorisationStats(near),
  };
}

/** n held-out real digits, classes interleaved (0,1,…,9,0,1,…) so any n is balanced. */
export function heldOutSubset(
  ctx: EvalContext,
  n: number,
): { images: Float32Array; labels: Int32Array } {
  const PX = ctx.px;
  const byClass: number[][] = Array.from({ length: ctx.numClasses }, () => []);
  ctx.heldOut.labels.forEach((c, i) => byClass[c].push(i));
  const order: number[] = [];
  for (let k = 0; order.length < ctx.heldOut.count; k++) {
    for (const list of byClass) if (k < list.length) order.push(list[k]);
  }
  const m = Math.min(n, order.length);
  const images = new Float32Array(m * PX), labels = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    images.set(ctx.heldOut.images.subarray(order[i] * PX, (order[i] + 1) * PX), i * PX);
    labels[i] = ctx.heldOut.labels[order[i]];
  }
  return { images, labels };
}

/** The ceiling: the same metrics on n held-out real digits (accuracy against their labels). */
export function realCeiling(ctx: EvalContext, n: number): QualityMetrics {
  const { images, labels } = heldOutSubset(ctx, n);
  return evaluateImages(ctx, images, labels.length, labels);
}

export interface SampleRequest {
  n: number;
  /** Default: the card's. */
  sampler?: SamplerName;
  steps: number;
  /** Default: the card's. */
  spacing?: Spacing;
  /** σ² = β̃ ("small", default) or β ("large"). */
  variance?: VarianceType;
  eta: number;
  /** Guidance weight (conditional models); ignored for unconditional ones. */
  guidance: number;
  seed: number;
  /** Images per generate() call. */
  batch: number;
  /** Answer the t = T − 1 call from the card's data prior (default true; shared/data_prior.ts). */
  prior?: boolean;
}

export interface SampleResult {
  images: Float32Array;
  /** Requested digit per image, or null (unconditional model). */
  labels: Int32Array | null;
  /** Process CPU time (user + system, every thread) spent generating, ms. */
  cpuMs: number;
  wallMs: number;
  /** UNet calls (forward passes) per image. */
  calls: number;
}

/** Process CPU time in ms (user + system, all threads). */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Labels 0…9 for a card whose class names are the digits "0".."9", else null. */
export function digitLabels(engine: Engine): boolean {
  const labels = engine.model.card.labels;
  return labels !== null && labels.length === 10 && labels.every((l, i) => l === String(i));
}

/** Whether a card's classes are the evaluation classifier's (so accuracy can be scored). */
export function classifierLabels(ctx: EvalContext, engine: Engine): boolean {
  const labels = engine.model.card.labels;
  return labels !== null && labels.length === ctx.numClasses &&
    labels.every((l, i) => l === ctx.labelNames[i]);
}

/**
 * Draw n samples through the edge sampler in batches; conditional models get labels i mod
 * numClasses (balanced). Batch b uses seed + b.
 */
export async function sampleImages(
  engine: Engine,
  r: SampleRequest,
  ctx?: EvalContext,
): Promise<SampleResult> {
  const card = engine.model.card;
  const size = ctx?.size ?? SIZE, channels = ctx?.channels ?? 1, PX = size * size * channels;
  if (card.image.size !== size || card.image.channels !== channels) {
    throw new Error(
      `the evaluation classifier takes ${size}×${size}×${channels}; model is ${card.image.size}² × ${card.image.channels}`,
    );
  }
  const k = card.architecture.numClasses;
  const labels = k > 0 ? Int32Array.from({ length: r.n }, (_, i) => i % k) : null;
  const images = new Float32Array(r.n * PX);
  const c0 = cpuMs(), t0 = performance.now(), runs0 = engine.runs;
  for (let b = 0, i = 0; i < r.n; b++, i += r.batch) {
    const m = Math.min(r.batch, r.n - i);
    const x = await generate(engine, {
      seed: (r.seed + b) >>> 0,
      steps: r.steps,
      spacing: r.spacing,
      sampler: r.sampler,
      variance: r.variance,
      eta: r.eta,
      n: m,
      label: labels ? Array.from(labels.subarray(i, i + m)) : undefined,
      guidance: labels ? r.guidance : undefined,
      prior: r.prior,
    });
    images.set(x, i * PX);
  }
  return {
    images,
    labels,
    cpuMs: cpuMs() - c0,
    wallMs: performance.now() - t0,
    calls: (engine.runs - runs0) / Math.ceil(r.n / r.batch),
  };
}

export interface EvalRow {
  sampler: SamplerName;
  steps: number;
  spacing: Spacing;
  variance: VarianceType;
  eta: number;
  guidance: number | null;
  /** UNet calls per image (fewer than steps where the data prior answers a call). */
  calls: number;
  metrics: QualityMetrics;
  cpuMsPerSample: number;
  wallMsPerSample: number;
  grid: string | null;
}

/** Write up to 100 images as a PNG grid (10 columns, so conditional columns show one digit). */
export async function writeGrid(
  path: string,
  images: Float32Array,
  n: number,
  size = SIZE,
  channels = 1,
): Promise<void> {
  const k = Math.min(n, 100), cols = Math.min(channels === 1 ? 10 : 9, k);
  const g = tileImages(images.subarray(0, k * size * size * channels), k, channels, size, 2, cols);
  await Deno.writeFile(path, encodePng(g));
}

/**
 * The closest samples beside their nearest training images (memorisation's `closest` pairs):
 * one row per pair, sample left, training image right.
 */
export async function writePairs(
  path: string,
  ctx: EvalContext,
  images: Float32Array,
  closest: MemorisationStats["closest"],
): Promise<void> {
  const PX = ctx.px, k = closest.length, pairs = new Float32Array(2 * k * PX);
  closest.forEach(([q, t], i) => {
    pairs.set(images.subarray(q * PX, (q + 1) * PX), 2 * i * PX);
    pairs.set(ctx.trainImages.subarray(t * PX, (t + 1) * PX), (2 * i + 1) * PX);
  });
  await Deno.writeFile(path, encodePng(tileImages(pairs, 2 * k, ctx.channels, ctx.size, 2, 2)));
}

/** Sample one configuration, score it, optionally write its grid and its closest pairs. */
export async function evalConfig(
  ctx: EvalContext,
  engine: Engine,
  r: SampleRequest,
  gridPath: string | null,
  pairsPath: string | null = null,
): Promise<EvalRow> {
  const s = await sampleImages(engine, r, ctx);
  const labels = s.labels && classifierLabels(ctx, engine) ? s.labels : null;
  const metrics = evaluateImages(ctx, s.images, r.n, labels);
  if (gridPath) await writeGrid(gridPath, s.images, r.n, ctx.size, ctx.channels);
  if (pairsPath) await writePairs(pairsPath, ctx, s.images, metrics.memorisation.closest);
  return {
    // What generate() drew with: the card's null-class sampler where the request samples it.
    sampler: r.sampler ??
      defaultSampler(engine.model.card, !s.labels || r.guidance === 0),
    steps: r.steps,
    spacing: r.spacing ?? engine.model.card.sampling.spacing,
    variance: r.variance ?? "small",
    eta: r.eta,
    guidance: s.labels ? r.guidance : null,
    calls: s.calls,
    metrics,
    cpuMsPerSample: s.cpuMs / r.n,
    wallMsPerSample: s.wallMs / r.n,
    grid: gridPath,
  };
}

const f = (v: number | null, d = 3) => (v === null || Number.isNaN(v) ? "–" : v.toFixed(d));

export const TABLE_HEADER =
  "| sampler | steps | UNet calls | η | guidance | n | FID (clf) ↓ | P / R (px) | D / C (px) | P / R (clf) | D / C (clf) | confidence | conf > 0.9 | coverage | cond. acc. | NN L2 to train | CPU ms / sample | grid |\n" +
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/** "P / R | D / C" cells of one space. */
const manifoldCells = (m: ManifoldMetrics) =>
  `${f(m.precision)} / ${f(m.recall)} | ${f(m.density)} / ${f(m.coverage)}`;

/** FID and the four manifold cells of a row. */
const qualityCells = (m: QualityMetrics) =>
  `${f(m.fid, 2)} | ${manifoldCells(m.pixelManifold)} | ${manifoldCells(m.featureManifold)}`;

/** Per-class recall in pixel space, one line ("0: 0.91, 1: …"), when the reference has labels. */
export function recallByClassLine(m: QualityMetrics): string {
  const r = m.pixelManifold.recallByClass;
  return r ? r.map((v, c) => `${c}: ${f(v)}`).join(", ") : "–";
}

/** Nearest-training distance and near copies, one line. */
export function memorisationLine(m: QualityMetrics): string {
  const s = m.memorisation;
  return `median nearest-training RMS ${f(s.medianNearest)} (5th percentile ${
    f(s.p5Nearest)
  }), near copies ${(100 * s.nearCopyShare).toFixed(1)} % of ${s.n}`;
}

/** One markdown row; the grid link is relative to the working directory (the repo root). */
export function tableRow(r: EvalRow): string {
  const m = r.metrics;
  const usesEta = SAMPLERS[r.sampler].usesEta;
  const name = r.sampler === "ddim"
    ? (r.eta === 0 ? "DDIM" : r.eta === 1 ? "DDPM" : `DDIM η=${r.eta}`)
    : r.sampler === "ddpm"
    ? "DDPM"
    : r.sampler === "analytic"
    ? `Analytic-${r.eta === 1 ? "DDPM" : r.eta === 0 ? "DDIM" : `DPM η=${r.eta}`}`
    : r.sampler === "dpm++2m"
    ? "DPM-Solver++(2M)"
    : "DPM-Solver++(2M) SDE";
  const sampler = name + (r.spacing === "linspace" ? "" : `, ${r.spacing}`) +
    (r.variance === "large" && (r.sampler === "ddpm" || r.eta === 1) ? ", σ²=β" : "");
  const grid = r.grid ? `[png](${relative(Deno.cwd(), r.grid)})` : "";
  return `| ${sampler} | ${r.steps} | ${r.calls} | ${usesEta ? r.eta : "–"} | ${
    r.guidance ?? "–"
  } | ${m.n} | ${qualityCells(m)} | ` +
    `${f(m.confidence)} | ${f(m.confidentFraction)} | ${f(m.coverage)} | ${f(m.accuracy)} | ` +
    `${f(m.nnMean, 2)} | ${f(r.cpuMsPerSample, 0)} | ${grid} |`;
}

export function ceilingRow(m: QualityMetrics): string {
  return `| real held-out digits | – | – | – | – | ${m.n} | ${qualityCells(m)} | ${
    f(m.confidence)
  } | ` +
    `${f(m.confidentFraction)} | ${f(m.coverage)} | ${f(m.accuracy)} | ${f(m.nnMean, 2)} | – | |`;
}

const varianceOf = (v: string | undefined) =>
  v === undefined ? undefined : oneOf(VARIANCES, v, "variance");
const spacingOf = (v: string) => oneOf(SPACINGS, v.trim(), "spacing");
const samplerOf = (v: string) => oneOf(SAMPLER_NAMES, v.trim(), "sampler");

const list = (s: string) => s.split(",").filter((v) => v.trim() !== "").map(Number);

/** The CLI; `context` lets a caller reuse a loaded EvalContext. */
export async function main(argv: string[], context?: EvalContext): Promise<void> {
  const { values: a } = parseCli({
    args: argv,
    options: {
      model: { type: "string", default: DEFAULT_MODEL_CARD.pathname },
      steps: { type: "string" },
      spacing: { type: "string" },
      sampler: { type: "string" },
      variance: { type: "string" },
      eta: { type: "string" },
      guidance: { type: "string" },
      n: { type: "string", default: "500" },
      batch: { type: "string", default: "50" },
      seed: { type: "string", default: "0" },
      threads: { type: "string", default: "1" },
      grid: { type: "string" },
      pairs: { type: "string" },
      json: { type: "string" },
      sweep: { type: "boolean", default: false },
      "sweep-sampler": { type: "string" },
      "sweep-steps": { type: "string", default: "5,10,14,20,50,100,1000" },
      "sweep-eta": { type: "string", default: "0,1" },
      "sweep-spacing": { type: "string", default: "linspace" },
      "sweep-guidance": { type: "string", default: "1,2,3" },
      "sweep-n": { type: "string", default: "100" },
      "long-n": { type: "string", default: "20" },
      "long-steps": { type: "string", default: "500" },
      grids: { type: "string" },
      markdown: { type: "string" },
      prior: { type: "string", default: "on" },
    },
  }, {
    name: "eval",
    summary:
      "sample quality through the real edge sampler, scored with the committed MNIST classifier",
    usage: "deno task eval [options]",
  });
  const model = await loadModel(a.model!);
  const card = model.card;
  const engine = await createEngine(model, { backend: "wasm", threads: Number(a.threads) });
  const ctx = context ?? await loadEvalContext(evalDataset(card.dataset));
  const conditional = card.architecture.numClasses > 0;
  const base = {
    seed: Number(a.seed),
    batch: Number(a.batch),
    variance: varianceOf(a.variance),
    prior: oneOf(["on", "off"] as const, a.prior!, "prior") === "on",
  };
  const head = `model ${card.name} (${a.model}; ${card.onnx.quantization}, ` +
    `${conditional ? `conditional, ${card.architecture.numClasses} classes` : "unconditional"}); ` +
    `onnxruntime-web wasm, ${a.threads} thread(s), batches of ${a.batch}; classifier held-out acc ` +
    `${ctx.classifier.card.heldOutAccuracy.toFixed(4)}`;
  console.log(head);
  const rows: EvalRow[] = [];
  // The ceiling at every sample count used (FID is biased upwards at small n), computed once.
  const ceilingByN = new Map<number, QualityMetrics>();
  const ceilings = () =>
    [...new Set(rows.map((r) => r.metrics.n))].sort((x, y) => y - x).map((n) => {
      if (!ceilingByN.has(n)) ceilingByN.set(n, realCeiling(ctx, n));
      return ceilingByN.get(n)!;
    });
  const table = () =>
    [
      `<!-- ${head}; ${new Date().toISOString()} -->`,
      TABLE_HEADER,
      ...rows.map((r) => tableRow(r)),
      ...ceilings().map(ceilingRow),
    ].join("\n");
  // Rewritten after every configuration, so an interrupted sweep keeps what it measured.
  const save = async () => {
    if (a.markdown) await Deno.writeTextFile(a.markdown, table() + "\n");
    if (a.json) {
      await Deno.writeTextFile(
        a.json,
        JSON.stringify(
          {
            model: a.model,
            card: card.name,
            threads: Number(a.threads),
            rows,
            ceilings: ceilings(),
          },
          null,
          2,
        ) + "\n",
      );
    }
  };
  if (!a.sweep) {
    const guidance = Number(a.guidance ?? card.sampling.guidance);
    const r: SampleRequest = {
      ...base,
      n: Number(a.n),
      // sampleImages gives a conditional model labels (i mod k), an unconditional one none.
      steps: Number(
        a.steps ?? defaultSteps(card, samplesNullClass(conditional ? 0 : undefined, guidance)),
      ),
      spacing: a.spacing === undefined ? undefined : spacingOf(a.spacing),
      sampler: a.sampler === undefined ? undefined : samplerOf(a.sampler),
      eta: Number(a.eta ?? card.sampling.eta),
      guidance,
    };
    const row = await evalConfig(ctx, engine, r, a.grid ?? null, a.pairs ?? null);
    rows.push(row);
    console.log(`recall per class (pixels): ${recallByClassLine(row.metrics)}`);
    console.log(`real held-out digits, same n: ${recallByClassLine(ceilings()[0])}`);
    console.log(`memorisation: ${memorisationLine(row.metrics)}`);
    console.log(`real held-out, same n: ${memorisationLine(ceilings()[0])}`);
  } else {
    const dir = a.grids ??
      join(new URL("../fixtures/models/mnist/grids/", import.meta.url).pathname);
    await Deno.mkdir(dir, { recursive: true });
    const n = Number(a["sweep-n"]),
      longN = Number(a["long-n"]),
      longSteps = Number(a["long-steps"]);
    const guidances = conditional ? list(a["sweep-guidance"]!) : [0];
    const spacings = a["sweep-spacing"]!.split(",").map(spacingOf);
    const samplers = a["sweep-sampler"] === undefined
      ? [cardSampler(card.sampling)]
      : a["sweep-sampler"].split(",").map(samplerOf);
    const configs = samplers.flatMap((sampler) =>
      spacings.flatMap((spacing) =>
        list(a["sweep-steps"]!).flatMap((steps) =>
          (SAMPLERS[sampler].usesEta ? list(a["sweep-eta"]!) : [card.sampling.eta]).flatMap((eta) =>
            guidances.map((guidance) => ({
              sampler,
              steps,
              spacing,
              eta,
              guidance,
              variance: base.variance,
            }))
          )
        )
      )
    );
    const passes = (g: number) => conditional && g !== 0 && g !== 1 ? 2 : 1;
    const work = configs.reduce(
      (s, c) => s + c.steps * (c.steps >= longSteps ? longN : n) * passes(c.guidance),
      0,
    );
    // Estimate the run time from one warm model run at the sweep's batch size.
    const size = card.image.channels * card.image.size ** 2, b = Math.min(base.batch, n);
    const x = new Float32Array(b * size);
    await engine.forward(x, b, 10, null);
    const t0 = performance.now();
    await engine.forward(x, b, 10, null);
    const perImage = (performance.now() - t0) / b;
    console.log(
      `sweep: ${configs.length} configurations, ${work} image-forward passes in all, ` +
        `≈ ${(work * perImage / 60000).toFixed(1)} min at ${
          perImage.toFixed(2)
        } ms per image-forward`,
    );
    for (const c of configs) {
      const m = c.steps >= longSteps ? longN : n;
      const tag = c.sampler === DEFAULT_SAMPLER ? "" : `${c.sampler.replaceAll("+", "p")}_`;
      const name = `${tag}S${c.steps}_eta${c.eta}${conditional ? `_g${c.guidance}` : ""}` +
        `${c.spacing === "linspace" ? "" : `_${c.spacing}`}` +
        `${c.variance === "large" ? "_large" : ""}.png`;
      const row = await evalConfig(ctx, engine, { ...base, ...c, n: m }, join(dir, name));
      rows.push(row);
      console.log(tableRow(row));
      await save();
    }
  }
  await save();
  console.log("\n" + table());
}

if (import.meta.main) await runCli(() => main(Deno.args));
