/**
 * The exporter's library: `exportModel` builds the ONNX bytes and the validated model card from a
 * config and weights in memory (the CLI `trainer/export.ts`, tests, scripts); `verifyExport` runs
 * the bytes in onnxruntime-web (wasm) and measures the weight-storage error against the fp32
 * graph; `writeModel` writes them (temp file then rename, the ONNX file first); `randomWeights`
 * gives random non-zero parameters for tests and benchmarks.
 */
import * as ort from "onnxruntime-web";
import { join } from "node:path";
import { type ModelCard, ModelCardSchema, type UNetConfig } from "../../shared/model_card.ts";
import type { Prediction } from "../../shared/prediction.ts";
import { Rng } from "../../shared/rng.ts";
import { checkedTimesteps } from "../../shared/schedule.ts";
import { buildOnnxModel, DEFAULT_OPSET } from "./onnx_ops.ts";
import type { Quantization } from "./quantize.ts";
import { paramSpecs } from "../network/unet.ts";

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
  /** The training images' sources and licences (absent: none declared). */
  credits?: ModelCard["credits"];
  training: ModelCard["training"];
  sampling?: Partial<ModelCard["sampling"]>;
}

export interface ExportOptions {
  cfg: UNetConfig;
  /** Parameters by paramSpecs name, trainer layouts (conv HWIO, dense [nin, nout]). */
  weights: Map<string, Float32Array>;
  quant: Quantization;
  /** Conv/dense layers kept float32 whatever `quant` (the card's `onnx.fp32Layers`). */
  floatLayers?: string[];
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
    floatLayers: o.floatLayers,
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
      ...(o.card.sampling?.nullClassSampler
        ? { nullClassSampler: o.card.sampling.nullClassSampler }
        : {}),
      ...(o.card.sampling?.timesteps && o.card.sampling.timesteps.length === steps
        ? { timesteps: Array.from(checkedTimesteps(T, steps, o.card.sampling.timesteps)) }
        : {}),
      ...(o.card.sampling?.analytic ? { analytic: o.card.sampling.analytic } : {}),
    },
    onnx: {
      file: o.file ?? "model.onnx",
      sha256: await sha256Hex(onnx),
      bytes: onnx.length,
      opset,
      quantization: o.quant,
      ...(o.floatLayers?.length && o.quant !== "fp32" ? { fp32Layers: o.floatLayers } : {}),
      timestepType: "float32",
    },
    dataset: o.card.dataset,
    ...(o.card.credits ? { credits: o.card.credits } : {}),
    training: o.card.training,
    createdAt: (o.createdAt ?? new Date()).toISOString(),
  });
  return { onnx, card };
}

/** Write `data` to `path` through a temp file beside it and a rename (a reader sees old or new). */
export async function writeAtomic(path: string, data: Uint8Array): Promise<void> {
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
