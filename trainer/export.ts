/**
 * The exporter: a trained run's EMA weights → `model.onnx` (int8, fp16 or fp32 weights) plus its
 * model card `model.json` (validated against `ModelCardSchema`).
 *
 * CLI: deno task export --run <run dir> --out <model dir> [--quant int8|fp16|fp32]
 *        [--fp32-layers in,out] [--opset N]
 *        [--steps S] [--eta E] [--guidance G] [--spacing linspace|trailing|quadratic]
 *        [--unlabeled null-class|random-label] [--null-class-steps S] [--sampler NAME]
 *        [--null-class-sampler NAME] [--timesteps t1,t2,…] [--analytic-samples M]
 *        [--analytic-seed N] [--prior on|off] [--name NAME]
 *
 * Unless `--analytic-samples 0`, the exporter also estimates Analytic-DPM's Γ statistics on the
 * exported model over the run's training images (trainer/export/analytic_stats.ts; M = 32 images
 * per timestep by default) and stores them in the card, so `sampler=analytic` works for it.
 * Unless `--prior off`, it also stores the training images' per-class mean and variance
 * (`sampling.prior`), with which the edge answers the call at t = T − 1 without the model
 * (shared/data_prior.ts): one UNet call fewer per image.
 *
 * The library behind it (`exportModel`, `verifyExport`, `writeModel`) is trainer/export/model.ts.
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
  UNLABELED_MODES,
} from "../shared/model_card.ts";
import { oneOf } from "../shared/choice.ts";
import { SPACINGS } from "../shared/schedule.ts";
import { SAMPLER_NAMES } from "../shared/samplers/mod.ts";
import { type Dataset, datasetCredits, loadRunData } from "./data/datasets.ts";
import { nhwcToNchw } from "./training/sample_grid.ts";
import { analyticStats } from "./export/analytic_stats.ts";
import { measurePrior, priorToCard } from "../shared/data_prior.ts";
import { DEFAULT_OPSET } from "./export/onnx_ops.ts";
import { QUANTIZATIONS } from "./export/quantize.ts";
import { exportModel, verifyExport, type VerifyReport, writeModel } from "./export/model.ts";
import { type CheckpointMeta, readCheckpoint } from "./training/checkpoint.ts";
import { runInUse } from "./training/config.ts";

function numberArg(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${v}"`);
  return n;
}

const USAGE = "usage: deno task export --run <run dir> --out <model dir> " +
  "[--quant int8|fp16|fp32] [--fp32-layers in,out] [--opset N] [--steps S] [--eta E] [--guidance G] [--spacing linspace|trailing|quadratic] " +
  "[--unlabeled null-class|random-label] [--null-class-steps S (default: --steps)] " +
  "[--sampler " + SAMPLER_NAMES.join("|") + "] [--null-class-sampler NAME] " +
  "[--timesteps t1,t2,… (the card's own chain, ascending)] " +
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

/** The card's `training.guideTeacher` of a guidance-distilled run (guidance/guide_teacher.ts). */
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

/** The card's `training.autoguide` of a run that learnt an autoguided null class. */
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

/**
 * `--timesteps a,b,…`: the card's own chain (`sampling.timesteps`, ascending original timesteps),
 * as many as `--steps` where that is given too; undefined without the flag.
 */
export function timestepsArg(
  v: string | undefined,
  steps: number | undefined,
): number[] | undefined {
  if (v === undefined) return undefined;
  const list = v.split(",").map((s) => Number(s.trim()));
  if (list.some((t) => !Number.isInteger(t) || t < 0)) {
    throw new Error(`--timesteps must be integers ≥ 0 separated by commas, got "${v}"`);
  }
  if (steps !== undefined && steps !== list.length) {
    throw new Error(`--timesteps has ${list.length} values but --steps is ${steps}`);
  }
  return list;
}

/**
 * `--fp32-layers a,b`: the conv/dense layers whose weights stay float32 under `--quant int8|fp16`,
 * each once (the network checks that each one exists).
 */
function layersArg(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  const layers = v.split(",").map((s) => s.trim());
  if (layers.some((s) => s === "")) {
    throw new Error(
      `--fp32-layers takes layer names separated by commas (e.g. in,out), got "${v}"`,
    );
  }
  return [...new Set(layers)];
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
      "fp32-layers": { type: "string" },
      opset: { type: "string" },
      steps: { type: "string" },
      eta: { type: "string" },
      guidance: { type: "string" },
      spacing: { type: "string" },
      unlabeled: { type: "string" },
      "null-class-steps": { type: "string" },
      sampler: { type: "string" },
      "null-class-sampler": { type: "string" },
      timesteps: { type: "string" },
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
  const floatLayers = layersArg(values["fp32-layers"]);
  const sampler = values.sampler === undefined
    ? undefined
    : oneOf(SAMPLER_NAMES, values.sampler, "--sampler");
  const nullClassSampler = values["null-class-sampler"] === undefined
    ? undefined
    : oneOf(SAMPLER_NAMES, values["null-class-sampler"], "--null-class-sampler");
  const timesteps = timestepsArg(values.timesteps, numberArg(values.steps, "steps"));
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
    floatLayers,
    prediction: m.prediction ?? "epsilon",
    opset: numberArg(values.opset, "opset") ?? DEFAULT_OPSET,
    card: {
      name: values.name ?? basename(resolve(values.out)),
      schedule: { kind: m.schedule.kind, T: m.schedule.T },
      labels: m.labels,
      dataset: m.dataset,
      ...(datasetCredits(m.dataset) ? { credits: datasetCredits(m.dataset) } : {}),
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
        steps: numberArg(values.steps, "steps") ?? timesteps?.length ?? dist?.sampling.steps,
        ...(timesteps ? { timesteps } : {}),
        eta: numberArg(values.eta, "eta") ?? dist?.sampling.eta,
        spacing: values.spacing === undefined
          ? dist?.sampling.spacing
          : oneOf(SPACINGS, values.spacing, "--spacing"),
        unlabeled: values.unlabeled === undefined
          ? undefined
          : oneOf(UNLABELED_MODES, values.unlabeled, "--unlabeled"),
        nullClassSteps: numberArg(values["null-class-steps"], "null-class-steps"),
        sampler: sampler ?? dist?.sampling.sampler,
        nullClassSampler,
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
