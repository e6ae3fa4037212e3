/**
 * The exporter: a trained run's EMA weights → `model.onnx` (int8, fp16 or fp32 weights) plus its
 * model card `model.json` (validated against `ModelCardSchema`).
 *
 * CLI: deno task export --run <run dir> --out <model dir> [--quant int8|fp16|fp32] [--opset N]
 *        [--steps S] [--eta E] [--guidance G] [--spacing linspace|trailing|quadratic]
 *        [--unlabeled null-class|random-label] [--null-class-steps S] [--sampler NAME]
 *        [--analytic-samples M]
 *        [--analytic-seed N] [--prior on|off] [--name NAME]
 *
 * Unless `--analytic-samples 0`, the exporter also estimates Analytic-DPM's Γ statistics on the
 * exported model over the run's training images (trainer/analytic_export.ts; M = 32 images per
 * timestep by default) and stores them in the card, so `sampler=analytic` works for it.
 * Unless `--prior off`, it also stores the training images' per-class mean and variance
 * (`sampling.prior`), with which the edge answers the call at t = T − 1 without the model
 * (shared/data_prior.ts): one UNet call fewer per image.
 *
 * Library: `exportModel` builds both from a config and weights in memory (tests, scripts);
 * `verifyExport` runs the bytes in onnxruntime-web (wasm) and measures the weight-storage error
 * against the fp32 graph; `writeModel` writes them (temp file then rename, the ONNX file first).
 * The CLI verifies before it writes, so a model that does not run is never written.
 */
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-web";
import { basename, join, resolve } from "node:path";
import {
  type Distillation,
  DistillationSchema,
  type GuideNullTarget,
  type ModelCard,
  ModelCardSchema,
  type UNetConfig,
  UNLABELED_MODES,
} from "../shared/model_card.ts";
import { oneOf } from "../shared/choice.ts";
import type { Prediction } from "../shared/prediction.ts";
import { Rng } from "../shared/rng.ts";
import { SPACINGS } from "../shared/schedule.ts";
import { SAMPLER_NAMES } from "../shared/samplers/mod.ts";
import { type Dataset, loadRunData } from "./data/datasets.ts";
import { nhwcToNchw } from "./training/sample_grid.ts";
import { analyticStats } from "./export/analytic_stats.ts";
import { measurePrior, priorToCard } from "../shared/data_prior.ts";
import { buildOnnxModel, DEFAULT_OPSET } from "./export/onnx_ops.ts";
import { type Quantization, QUANTIZATIONS } from "./export/quantize.ts";
import { paramSpecs } from "./network/unet.ts";
import { type CheckpointMeta, readCheckpoint } from "./training/checkpoint.ts";
import { runInUse } from "./training/config.ts";

/** Default sampling settings written to the card (the quality work may tune them). */
export const DEFAULT_STEPS = 14;
export const DEFAULT_ETA = 1;
/** Classifier-free guidance scale: 1 (plain conditional) or 0 (unconditional model). */
export const defaultGuidance = (cfg: UNetConfig): number => cfg.numClasses > 0 ? 1 : 0;

/** Card fields that come from the run rather than from the export itself. */
export interface CardSource {
  name: string;
  schedule: ModelCard["schedule"];
  labels: string[] | null;
  dataset: string;
  training: ModelCard["training"];
  sampling?: Partial<ModelCard["sampling"]>;
}

export interface ExportOptions {
  cfg: UNetConfig;
  /** Parameters by paramSpecs name, trainer layouts (conv HWIO, dense [nin, nout]). */
  weights: Map<string, Float32Array>;
  quant: Quantization;
  opset?: number;
  card: CardSource;
  /** File name recorded in the card (default "model.onnx"). */
  file?: string;
  /** What the network outputs (default epsilon): the card's `prediction`. */
  prediction?: Prediction;
  /** Creation time (default now). */
  createdAt?: Date;
}

export interface ExportResult {
  onnx: Uint8Array;
  card: ModelCard;
}

/** Lower-case hex SHA-256. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Build the ONNX bytes and the validated model card. */
export async function exportModel(o: ExportOptions): Promise<ExportResult> {
  const opset = o.opset ?? DEFAULT_OPSET;
  if (o.cfg.numClasses > 0) {
    if (o.card.labels !== null && o.card.labels.length !== o.cfg.numClasses) {
      throw new Error(`${o.card.labels.length} labels for ${o.cfg.numClasses} classes`);
    }
  } else if (o.card.labels !== null) {
    throw new Error("an unconditional model has no labels");
  }
  const T = o.card.schedule.T;
  const checkedSteps = (what: string, s: number) => {
    if (!Number.isInteger(s) || s < 1 || s > T) {
      throw new RangeError(`${what} must be an integer in 1…${T}, got ${s}`);
    }
    return s;
  };
  const steps = checkedSteps("sampling steps", o.card.sampling?.steps ?? DEFAULT_STEPS);
  const nullClassSteps = o.card.sampling?.nullClassSteps === undefined
    ? undefined
    : checkedSteps("null-class steps", o.card.sampling.nullClassSteps);
  const onnx = buildOnnxModel(o.cfg, o.weights, {
    quant: o.quant,
    opset,
    name: o.card.name,
    doc: `ddpm-edge ε-model (${o.quant}); inputs x [N,C,H,W] float32, t [N] float32` +
      (o.cfg.numClasses > 0 ? ", y [N] int64" : "") + "; output eps [N,C,H,W]",
  });
  const card = ModelCardSchema.parse({
    format: "ddpm-edge/model-card@1",
    name: o.card.name,
    image: { size: o.cfg.imageSize, channels: o.cfg.inChannels },
    architecture: o.cfg,
    schedule: o.card.schedule,
    prediction: o.prediction ?? "epsilon",
    labels: o.card.labels ??
      (o.cfg.numClasses > 0 ? Array.from({ length: o.cfg.numClasses }, (_, i) => `${i}`) : null),
    sampling: {
      steps,
      eta: o.card.sampling?.eta ?? DEFAULT_ETA,
      guidance: o.card.sampling?.guidance ?? defaultGuidance(o.cfg),
      spacing: o.card.sampling?.spacing,
      ...(o.card.sampling?.unlabeled ? { unlabeled: o.card.sampling.unlabeled } : {}),
      ...(nullClassSteps !== undefined ? { nullClassSteps } : {}),
      ...(o.card.sampling?.sampler ? { sampler: o.card.sampling.sampler } : {}),
      ...(o.card.sampling?.timesteps && o.card.sampling.timesteps.length === steps
        ? { timesteps: o.card.sampling.timesteps }
        : {}),
      ...(o.card.sampling?.analytic ? { analytic: o.card.sampling.analytic } : {}),
    },
    onnx: {
      file: o.file ?? "model.onnx",
      sha256: await sha256Hex(onnx),
      bytes: onnx.length,
      opset,
      quantization: o.quant,
      timestepType: "float32",
    },
    dataset: o.card.dataset,
    training: o.card.training,
    createdAt: (o.createdAt ?? new Date()).toISOString(),
  });
  return { onnx, card };
}

async function writeAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Write `<dir>/<card.onnx.file>` then `<dir>/model.json`, each via a temp file + rename. */
export async function writeModel(dir: string, r: ExportResult): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await writeAtomic(join(dir, r.card.onnx.file), r.onnx);
  const json = new TextEncoder().encode(JSON.stringify(r.card, null, 2) + "\n");
  await writeAtomic(join(dir, "model.json"), json);
}

/**
 * Random, all non-zero parameters for `cfg` (tests and benchmarks; unlike a fresh init no conv
 * starts at zero): weights ~ N(0, scale²/fanIn), biases and norm shifts ~ N(0, (0.1·scale)²),
 * norm scales 1 + N(0, 0.1²), label embeddings ~ N(0, scale²).
 */
export function randomWeights(cfg: UNetConfig, seed: number, scale = 1): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  for (const s of paramSpecs(cfg)) {
    const v = rng.fillNormal(new Float32Array(s.shape.reduce((a, b) => a * b, 1)));
    const isMatrix = s.shape.length > 1;
    const std = s.name.endsWith(".g") || !isMatrix
      ? 0.1 * (s.name.endsWith(".g") ? 1 : scale)
      : s.init === "normal"
      ? scale
      : scale / Math.sqrt(s.fanIn);
    for (let i = 0; i < v.length; i++) v[i] = v[i] * std + (s.name.endsWith(".g") ? 1 : 0);
    out.set(s.name, v);
  }
  return out;
}

export interface VerifyReport {
  /** max |ε̂| of the exported model on the probe batch. */
  maxAbsEps: number;
  /** max |ε̂ − ε̂_fp32| on the probe batch (0 for an fp32 export). */
  maxAbsDiffVsFp32: number;
}

/**
 * Run the exported model in onnxruntime-web (wasm) on a seeded probe batch (x ~ N(0, 1),
 * t = 0.1·T and 0.9·T, labels 0 and the null class) and compare it with the fp32 graph of the
 * same weights. Throws if the model does not load, has the wrong output shape or gives
 * non-finite values. Uses whatever `ort.env.wasm.numThreads` the caller set.
 */
export async function verifyExport(
  r: ExportResult,
  weights: Map<string, Float32Array>,
): Promise<VerifyReport> {
  const cfg = r.card.architecture, T = r.card.schedule.T;
  const n = 2, shape = [n, cfg.inChannels, cfg.imageSize, cfg.imageSize];
  const x = new Rng(1234).fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)));
  const run = async (bytes: Uint8Array): Promise<Float32Array> => {
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    try {
      const feeds: Record<string, ort.Tensor> = {
        x: new ort.Tensor("float32", x, shape),
        t: new ort.Tensor("float32", Float32Array.of(Math.floor(0.1 * T), Math.floor(0.9 * T)), [
          n,
        ]),
      };
      if (cfg.numClasses > 0) {
        feeds.y = new ort.Tensor("int64", BigInt64Array.of(0n, BigInt(cfg.numClasses)), [n]);
      }
      const eps = (await session.run(feeds)).eps;
      if (eps === undefined || eps.dims.join() !== shape.join()) {
        throw new Error(`exported model: output eps has dims [${eps?.dims}], want [${shape}]`);
      }
      return eps.data as Float32Array;
    } finally {
      await session.release();
    }
  };
  const got = await run(r.onnx);
  if (!got.every(Number.isFinite)) throw new Error("exported model gives non-finite ε̂");
  const ref = r.card.onnx.quantization === "fp32"
    ? got
    : await run(buildOnnxModel(cfg, weights, { quant: "fp32", opset: r.card.onnx.opset }));
  let maxAbsEps = 0, maxAbsDiffVsFp32 = 0;
  for (let i = 0; i < got.length; i++) {
    maxAbsEps = Math.max(maxAbsEps, Math.abs(got[i]));
    maxAbsDiffVsFp32 = Math.max(maxAbsDiffVsFp32, Math.abs(got[i] - ref[i]));
  }
  return { maxAbsEps, maxAbsDiffVsFp32 };
}

function numberArg(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${v}"`);
  return n;
}

const USAGE = "usage: deno task export --run <run dir> --out <model dir> " +
  "[--quant int8|fp16|fp32] [--opset N] [--steps S] [--eta E] [--guidance G] [--spacing linspace|trailing|quadratic] " +
  "[--unlabeled null-class|random-label] [--null-class-steps S (default: --steps)] " +
  "[--sampler " + SAMPLER_NAMES.join("|") + "] " +
  "[--analytic-samples M (default 32; 0 = none)] [--analytic-seed N] [--prior on|off] " +
  "[--name NAME]";

/**
 * The card's `training.distillation` and default sampling of a distillation checkpoint
 * (`meta.distill`, trainer/distill.ts): DDIM η = 0 on `power` with the student's steps, or for a
 * student distilled after the prior step (`--after-prior`) its M calls plus the prior step at T−1
 * as the card's own chain (`sampling.timesteps`, M + 1 steps); null for an ordinary run.
 */
export function distillationOf(m: CheckpointMeta): {
  card: Distillation;
  sampling: {
    sampler: "ddim";
    eta: number;
    spacing: "power";
    steps: number;
    timesteps?: number[];
    guidance?: number;
  };
} | null {
  const d = m.distill as Record<string, unknown> | undefined;
  if (!d) return null;
  const t = d.teacher as Record<string, unknown>;
  const after = (d.grid as { afterPrior?: number } | undefined)?.afterPrior ?? 0;
  const guided = (m.config as { teacherGuidance?: number }).teacherGuidance ?? 1;
  const card = DistillationSchema.parse({
    ...d,
    ...(after > 0 ? { afterPrior: after } : {}),
    ...(guided !== 1 ? { teacherGuidance: guided } : {}),
    teacher: {
      run: t.run,
      step: t.step,
      sha256: t.sha256,
      prediction: t.prediction,
      command: t.command,
    },
  });
  const T = m.schedule.T;
  const calls = ((d.grid as { student?: number[] } | undefined)?.student ?? []).slice().reverse();
  return {
    card,
    sampling: {
      sampler: "ddim",
      eta: 0,
      spacing: "power",
      ...(after > 0
        ? { steps: card.studentSteps + 1, timesteps: [...calls, T - 1] }
        : { steps: card.studentSteps }),
      // A guided teacher's student has the guidance in its weights.
      ...(card.teacherGuidance !== undefined && card.teacherGuidance !== 1 ? { guidance: 1 } : {}),
    },
  };
}

/** The card's `training.guideTeacher` of a guidance-distilled run (trainer/guide_teacher.ts). */
function guideTeacherOf(m: CheckpointMeta) {
  const c = m.config as {
    guideTeacher?: string;
    guideTeacherSha256?: string;
    guideWeight?: number;
    guideNull?: GuideNullTarget;
  };
  return runInUse(c.guideTeacher) && c.guideTeacherSha256
    ? {
      guideTeacher: {
        run: c.guideTeacher,
        sha256: c.guideTeacherSha256,
        weight: c.guideWeight ?? 1,
        ...(c.guideNull === "class" ? { nullTarget: "class" as const } : {}),
      },
    }
    : {};
}

/** The card's `training.autoguide` of a run that learnt an autoguided null class (trainer/autoguide.ts). */
function autoguideOf(m: CheckpointMeta) {
  const c = m.config as {
    autoguideGood?: string;
    autoguideBad?: string;
    autoguideWeight?: number;
    autoguideGoodSha256?: string;
    autoguideBadSha256?: string;
  };
  return c.autoguideGood && c.autoguideBad && c.autoguideGoodSha256 && c.autoguideBadSha256
    ? {
      autoguide: {
        good: { run: c.autoguideGood, sha256: c.autoguideGoodSha256 },
        bad: { run: c.autoguideBad, sha256: c.autoguideBadSha256 },
        weight: c.autoguideWeight ?? 2,
      },
    }
    : {};
}

/** Default Monte Carlo images per timestep for the Γ statistics. */
export const DEFAULT_ANALYTIC_SAMPLES = 32;

/**
 * The images a run trained on: its `--data` (the checkpoint's config; `dataset` for checkpoints
 * without one), cut to its `--limit` as the trainer cut it.
 */
async function trainingImages(m: CheckpointMeta): Promise<Dataset> {
  const spec = typeof m.config.data === "string" ? m.config.data : m.dataset;
  const limit = typeof m.config.limit === "number" ? m.config.limit : 0;
  const { train } = await loadRunData(spec, limit, {
    imageSize: m.unet.imageSize,
    channels: m.unet.inChannels,
  });
  return train;
}

/** The CLI: read the run's EMA weights, export, verify, write. */
export async function main(
  args: string[],
): Promise<{ card: ModelCard; out: string; verify: VerifyReport }> {
  const { values } = parseArgs({
    args,
    options: {
      run: { type: "string" },
      out: { type: "string" },
      quant: { type: "string", default: "int8" },
      opset: { type: "string" },
      steps: { type: "string" },
      eta: { type: "string" },
      guidance: { type: "string" },
      spacing: { type: "string" },
      unlabeled: { type: "string" },
      "null-class-steps": { type: "string" },
      sampler: { type: "string" },
      "analytic-samples": { type: "string", default: String(DEFAULT_ANALYTIC_SAMPLES) },
      "analytic-seed": { type: "string", default: "0" },
      prior: { type: "string", default: "on" },
      name: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (!values.run || !values.out) throw new Error(USAGE);
  const quant = oneOf(QUANTIZATIONS, values.quant!, "--quant");
  const sampler = values.sampler === undefined
    ? undefined
    : oneOf(SAMPLER_NAMES, values.sampler, "--sampler");
  const samples = numberArg(values["analytic-samples"], "analytic-samples")!;
  const analyticSeed = numberArg(values["analytic-seed"], "analytic-seed")!;
  if (!Number.isInteger(samples) || samples < 0) {
    throw new Error(`--analytic-samples must be an integer ≥ 0, got ${samples}`);
  }
  if (sampler === "analytic" && samples === 0) {
    throw new Error("--sampler analytic needs the Γ statistics: --analytic-samples ≥ 1");
  }
  const withPriorStep = oneOf(["on", "off"] as const, values.prior!, "--prior") === "on";
  const ckpt = await readCheckpoint(values.run);
  const m = ckpt.meta;
  // A distilled student (trainer/distill.ts) samples with its own chain by default.
  const dist = distillationOf(m);
  if (dist?.card.afterPrior && !withPriorStep) {
    throw new Error(
      "--prior off: this student was distilled after the prior step and needs it (--prior on)",
    );
  }
  const result = await exportModel({
    cfg: m.unet,
    weights: ckpt.ema,
    quant,
    prediction: m.prediction ?? "epsilon",
    opset: numberArg(values.opset, "opset") ?? DEFAULT_OPSET,
    card: {
      name: values.name ?? basename(resolve(values.out)),
      schedule: { kind: m.schedule.kind, T: m.schedule.T },
      labels: m.labels,
      dataset: m.dataset,
      training: {
        steps: m.step,
        batch: m.batch,
        wallTimeSeconds: m.wallTimeSeconds,
        finalLoss: m.lastLoss,
        backend: m.backend,
        command: m.command,
        commands: m.commands,
        ...(m.loss ? { loss: m.loss } : {}),
        ...(m.condDrop !== undefined && m.unet.numClasses > 0 ? { condDrop: m.condDrop } : {}),
        ...(m.lrSchedule ? { lrSchedule: m.lrSchedule } : {}),
        ...guideTeacherOf(m),
        ...autoguideOf(m),
        ...(dist ? { distillation: dist.card } : {}),
      },
      sampling: {
        ...dist?.sampling,
        guidance: numberArg(values.guidance, "guidance") ?? dist?.sampling.guidance,
        steps: numberArg(values.steps, "steps") ?? dist?.sampling.steps,
        eta: numberArg(values.eta, "eta") ?? dist?.sampling.eta,
        spacing: values.spacing === undefined
          ? dist?.sampling.spacing
          : oneOf(SPACINGS, values.spacing, "--spacing"),
        unlabeled: values.unlabeled === undefined
          ? undefined
          : oneOf(UNLABELED_MODES, values.unlabeled, "--unlabeled"),
        nullClassSteps: numberArg(values["null-class-steps"], "null-class-steps"),
        sampler: sampler ?? dist?.sampling.sampler,
      },
    },
  });
  const verify = await verifyExport(result, ckpt.ema);
  if (samples > 0 || withPriorStep) {
    const cfg = m.unet;
    const train = await trainingImages(m);
    const images = nhwcToNchw(train.images, train.count, cfg.inChannels, cfg.imageSize ** 2);
    const size = cfg.inChannels * cfg.imageSize ** 2;
    const dataName = `${train.name} train split (${train.count} images)`;
    const sampling = { ...result.card.sampling };
    if (withPriorStep) {
      const labels = cfg.numClasses > 0 ? train.labels : null;
      const prior = measurePrior(images, size, labels, labels ? cfg.numClasses : 0);
      sampling.prior = priorToCard(prior, dataName);
    }
    if (samples > 0) {
      const t0 = performance.now();
      sampling.analytic = await analyticStats(result.card, result.onnx, {
        images,
        count: train.count,
        size,
        labels: train.labels,
      }, {
        samples,
        seed: analyticSeed,
        dataName,
        onProgress: (done, total) => {
          if (done % 100 === 0 || done === total) {
            const s = (performance.now() - t0) / 1000;
            console.error(
              `analytic Γ: ${done}/${total} timesteps, ${s.toFixed(0)} s, ` +
                `ETA ${(s / done * (total - done)).toFixed(0)} s`,
            );
          }
        },
      });
    }
    result.card = ModelCardSchema.parse({ ...result.card, sampling });
  }
  await writeModel(values.out, result);
  return { card: result.card, out: values.out, verify };
}

if (import.meta.main) {
  try {
    ort.env.wasm.numThreads = 1;
    const { card, out, verify } = await main(Deno.args);
    console.log(
      `wrote ${join(out, card.onnx.file)} ` +
        `(${card.onnx.quantization}, ${card.onnx.bytes} bytes, sha256 ${card.onnx.sha256}) ` +
        `and model.json; runs in onnxruntime-web: max |ε̂| ${verify.maxAbsEps.toFixed(4)}, ` +
        `max |ε̂ − ε̂ fp32| ${verify.maxAbsDiffVsFp32.toExponential(2)}`,
    );
  } catch (e) {
    console.error(`export failed: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
