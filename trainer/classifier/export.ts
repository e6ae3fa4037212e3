/**
 * Export a trained classifier run beside a diffusion model: its EMA weights → the gradient graph
 * (./onnx_grad.ts, int8 by default), checked in onnxruntime-web (wasm, as the edge runs it)
 * against the fp32 graph, written as `<card dir>/classifier.onnx`, and the card's `classifier`
 * field added or replaced (./card.ts) — every other field of the card byte-identical.
 *
 * CLI: deno task export-classifier --run <run dir> --card <model.json> [--quant int8|fp16|fp32]
 *        [--scale S] [--steps N] [--sampler NAME] [--high-noise ABOVE:FACTOR]
 *        [--file classifier.onnx]
 */
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-web";
import { oneOf } from "../../shared/choice.ts";
import { Rng } from "../../shared/rng.ts";
import { SAMPLER_NAMES, type SamplerName } from "../../shared/samplers/mod.ts";
import { type Quantization, QUANTIZATIONS } from "../export/quantize.ts";
import {
  CardEditError,
  type ClassifierCardField,
  DEFAULT_CLASSIFIER_SCALE,
  installClassifier,
  parseHighNoise,
} from "./card.ts";
import { type ClassifierMeta, readClassifierCheckpoint } from "./checkpoint.ts";
import type { ClassifierConfig } from "./net.ts";
import { buildClassifierGradOnnx } from "./onnx_grad.ts";
import { ConfigError } from "./config.ts";
import { shellQuote } from "../training/run_files.ts";

export interface GradRun {
  grad: Float32Array;
  logits: Float32Array;
}

/** Run a gradient graph in onnxruntime-web (wasm) on x [n,C,H,W] (NCHW), t and y [n]. */
export async function runClassifierOnnx(
  bytes: Uint8Array,
  cfg: ClassifierConfig,
  x: Float32Array,
  t: ArrayLike<number>,
  y: ArrayLike<number>,
): Promise<GradRun> {
  const n = t.length, shape = [n, cfg.inChannels, cfg.imageSize, cfg.imageSize];
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  try {
    const out = await session.run({
      x: new ort.Tensor("float32", x, shape),
      t: new ort.Tensor("int64", BigInt64Array.from(Array.from(t), (v) => BigInt(v)), [n]),
      y: new ort.Tensor("int64", BigInt64Array.from(Array.from(y), (v) => BigInt(v)), [n]),
    });
    if (
      out.grad?.dims.join() !== shape.join() || out.logits?.dims.join() !== `${n},${cfg.numClasses}`
    ) {
      throw new Error(`classifier graph: outputs [${out.grad?.dims}] and [${out.logits?.dims}]`);
    }
    return { grad: out.grad.data as Float32Array, logits: out.logits.data as Float32Array };
  } finally {
    await session.release();
  }
}

export interface ClassifierVerify {
  /** max |∇| of the exported graph on the probe. */
  maxAbsGrad: number;
  /** max |∇ − ∇ fp32| / max |∇ fp32| on the probe (0 for an fp32 export). */
  relDiffVsFp32: number;
}

/**
 * Run `bytes` on a seeded probe (x ~ N(0, 1) clipped to [−1, 1], t = 0.1·T and 0.5·T, labels 0
 * and K−1) and compare with the fp32 graph of the same weights. Throws on a graph that does not
 * run, has the wrong shapes or gives non-finite values.
 */
export async function verifyClassifier(
  bytes: Uint8Array,
  cfg: ClassifierConfig,
  weights: Map<string, Float32Array>,
  quant: Quantization,
  T: number,
): Promise<ClassifierVerify> {
  const x = new Rng(1234).fillNormal(new Float32Array(2 * cfg.inChannels * cfg.imageSize ** 2))
    .map((v) => Math.max(-1, Math.min(1, v)));
  const t = [Math.floor(0.1 * T), Math.floor(0.5 * T)], y = [0, cfg.numClasses - 1];
  const got = await runClassifierOnnx(bytes, cfg, x, t, y);
  if (!got.grad.every(Number.isFinite) || !got.logits.every(Number.isFinite)) {
    throw new Error("the exported classifier gives non-finite values");
  }
  const ref = quant === "fp32" ? got : await runClassifierOnnx(
    buildClassifierGradOnnx(cfg, weights, { quant: "fp32" }),
    cfg,
    x,
    t,
    y,
  );
  let maxAbsGrad = 0, maxRef = 0, maxDiff = 0;
  for (let i = 0; i < got.grad.length; i++) {
    maxAbsGrad = Math.max(maxAbsGrad, Math.abs(got.grad[i]));
    maxRef = Math.max(maxRef, Math.abs(ref.grad[i]));
    maxDiff = Math.max(maxDiff, Math.abs(got.grad[i] - ref.grad[i]));
  }
  return { maxAbsGrad, relDiffVsFp32: maxRef > 0 ? maxDiff / maxRef : 0 };
}

/** What the card says about a classifier's training (the field's free-form `training`). */
export function trainingSummary(
  m: ClassifierMeta,
  quant: Quantization,
  exported?: { run: string; command: string },
): Record<string, unknown> {
  return {
    ...(exported ? { run: exported.run, exportCommand: exported.command } : {}),
    command: m.command,
    commands: m.commands,
    steps: m.step,
    batch: m.batch,
    dataset: m.dataset,
    schedule: m.schedule,
    wallTimeSeconds: Math.round(m.wallTimeSeconds),
    backend: m.backend,
    finalLoss: m.lastLoss,
    architecture: m.classifier,
    paramCount: m.paramCount,
    quantization: quant,
    ...(m.accuracy !== undefined ? { heldOutAccuracyByT: m.accuracy } : {}),
  };
}

/** Check that a diffusion card and a classifier run agree on the image and the noise schedule. */
export function checkCompatible(card: Record<string, unknown>, m: ClassifierMeta): void {
  const sched = card.schedule as { kind?: string; T?: number } | undefined;
  const image = card.image as { size?: number; channels?: number } | undefined;
  if (sched?.kind !== m.schedule.kind || sched?.T !== m.schedule.T) {
    throw new CardEditError(
      `the card's schedule (${sched?.kind}, T = ${sched?.T}) is not the classifier's ` +
        `(${m.schedule.kind}, T = ${m.schedule.T})`,
    );
  }
  if (image?.size !== m.classifier.imageSize || image?.channels !== m.classifier.inChannels) {
    throw new CardEditError(
      `the card's images (${image?.size}×${image?.size}×${image?.channels}) are not the ` +
        `classifier's (${m.classifier.imageSize}×${m.classifier.imageSize}×${m.classifier.inChannels})`,
    );
  }
}

export interface ExportClassifierResult {
  field: ClassifierCardField;
  bytes: number;
  verify: ClassifierVerify;
}

/** The `export` CLI: read the run, build, verify, install beside the card. */
export async function exportClassifierMain(argv: string[]): Promise<ExportClassifierResult> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        run: { type: "string" },
        card: { type: "string" },
        quant: { type: "string", default: "int8" },
        scale: { type: "string", default: String(DEFAULT_CLASSIFIER_SCALE) },
        steps: { type: "string" },
        sampler: { type: "string" },
        "high-noise": { type: "string" },
        file: { type: "string", default: "classifier.onnx" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new ConfigError(`${(e as Error).message.split("\n")[0]} (see --help)`);
  }
  if (!values.run) throw new ConfigError("--run <classifier run dir> is required");
  if (!values.card) throw new ConfigError("--card <model.json> is required");
  const quant = (() => {
    try {
      return oneOf(QUANTIZATIONS, values.quant!, "--quant");
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  })();
  const scale = Number(values.scale);
  if (values.scale!.trim() === "" || !Number.isFinite(scale) || scale < 0) {
    throw new ConfigError(`--scale: expected a number ≥ 0, got "${values.scale}"`);
  }
  const steps = values.steps === undefined ? undefined : Number(values.steps);
  if (steps !== undefined && (!Number.isInteger(steps) || steps < 1)) {
    throw new ConfigError(`--steps: expected an integer ≥ 1, got "${values.steps}"`);
  }
  const sampler = values.sampler as SamplerName | undefined;
  if (sampler !== undefined && !SAMPLER_NAMES.includes(sampler)) {
    throw new ConfigError(
      `--sampler: expected one of ${SAMPLER_NAMES.join(", ")}, got "${sampler}"`,
    );
  }
  let highNoise;
  try {
    highNoise = values["high-noise"] === undefined
      ? undefined
      : parseHighNoise(values["high-noise"]);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (!/^[\w.-]+\.onnx$/.test(values.file!)) {
    throw new ConfigError(`--file: expected a plain name ending in .onnx, got "${values.file}"`);
  }
  const ck = await readClassifierCheckpoint(values.run);
  let card: Record<string, unknown>;
  try {
    card = JSON.parse(await Deno.readTextFile(values.card));
  } catch (e) {
    throw new CardEditError(`--card ${values.card}: ${(e as Error).message}`);
  }
  checkCompatible(card, ck.meta);
  const cfg = ck.meta.classifier;
  const bytes = buildClassifierGradOnnx(cfg, ck.ema, {
    quant,
    name: `${card.name ?? "model"}-classifier`,
  });
  const verify = await verifyClassifier(bytes, cfg, ck.ema, quant, ck.meta.schedule.T);
  const field = await installClassifier(values.card, bytes, {
    file: values.file!,
    labels: ck.meta.labels,
    scale,
    ...(steps !== undefined ? { steps } : {}),
    ...(sampler !== undefined ? { sampler } : {}),
    ...(highNoise !== undefined ? { highNoise } : {}),
    training: trainingSummary(ck.meta, quant, {
      run: values.run,
      command: ["deno", "task", "export-classifier", ...argv].map(shellQuote).join(" "),
    }),
  });
  return { field, bytes: bytes.length, verify };
}
