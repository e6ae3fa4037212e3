/**
 * The ε-model on onnxruntime-web: one inference session per model (created lazily, once per
 * isolate), on WebGPU or wasm, and the ε̂(x, t) call the sampler drives — with classifier-free
 * guidance batched as [conditional; unconditional] in a single session run.
 */
import type * as Ort from "onnxruntime-web";
import type { EpsModel } from "../shared/sample.ts";
import { guide } from "../shared/step.ts";
import { display, type Model, ModelLoadError } from "./model.ts";
import { nextTask } from "./yield.ts";

export type Backend = "wasm" | "webgpu";
export type BackendChoice = Backend | "auto";

export interface EngineOptions {
  /** "auto" (default): WebGPU when navigator.gpu gives a hardware adapter, else wasm. */
  backend?: BackendChoice;
  /**
   * wasm threads (default 1: a second thread cut latency 30 % but cost 40 % more CPU per sample
   * in BENCHMARKS.md, and the edge budget is CPU); WebGPU always uses 1. onnxruntime's env
   * is per isolate, so the first engine created on a backend fixes its thread count.
   */
  threads?: number;
  /**
   * Most images per session run; a larger forward pass is split into runs of this size with a
   * macrotask yield between them. On wasm a run blocks the event loop for its whole duration
   * (about 6 ms per MNIST-sized image, so batch 128 — n = 64 with guidance — is ~0.8 s); the
   * default caps that near 50 ms for ~10–15 % throughput at n = 64. Default: WASM_RUN_BATCH on
   * wasm, unlimited on WebGPU (whose runs do not block). Part of what determines the output
   * bytes (batch composition changes float rounding), so keep it fixed for a deployment.
   */
  maxBatch?: number;
}

/** Default images per session run on wasm (see EngineOptions.maxBatch). */
export const WASM_RUN_BATCH = 8;

/** Accumulated model time, for Server-Timing. */
export interface Timing {
  modelMs: number;
  runs: number;
}

/** Labels for one generation: none (unconditional), one class for all, or one per image. */
export type LabelSpec = number | readonly number[] | undefined;

export interface Engine {
  readonly model: Model;
  readonly backend: Backend;
  /** Images per session run at most (a forward pass may take several runs). */
  readonly maxBatch: number;
  /** Forward passes so far (all requests; one per sampling step, however many runs each). */
  readonly runs: number;
  /** One batched forward pass: ε̂ for x [n,C,H,W] at timestep t with labels y (length n). */
  forward(x: Float32Array, n: number, t: number, y: Int32Array | null): Promise<Float32Array>;
  /**
   * The sampler's ε-model for n images: unconditional when label is undefined (null class on a
   * conditional model), else conditional with guidance w (w = 1: conditional only, w = 0:
   * unconditional only, otherwise ε_u + w·(ε_c − ε_u) from one run of batch 2n).
   */
  epsModel(n: number, label: LabelSpec, guidance: number, timing?: Timing): EpsModel;
}

/** How many forward passes per image per step a request costs (2 with real guidance). */
export function passes(label: LabelSpec, guidance: number): 1 | 2 {
  return label !== undefined && guidance !== 0 && guidance !== 1 ? 2 : 1;
}

async function hardwareAdapter(): Promise<boolean> {
  const gpu = (navigator as { gpu?: GPU }).gpu;
  if (!gpu) return false;
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return false;
    // A software adapter (Mesa lavapipe, SwiftShader) is 20–30× slower than wasm: skip it.
    const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
    const desc = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`;
    return !info.isFallbackAdapter && !/llvmpipe|lavapipe|swiftshader/i.test(desc);
  } catch {
    return false;
  }
}

/** The backend "auto" resolves to on this runtime. */
export async function resolveBackend(choice: BackendChoice = "auto"): Promise<Backend> {
  if (choice !== "auto") return choice;
  return await hardwareAdapter() ? "webgpu" : "wasm";
}

// One onnxruntime module per backend per isolate; its env is global, so set it once.
const runtimes = new Map<Backend, Promise<typeof Ort>>();

function runtime(backend: Backend, threads: number): Promise<typeof Ort> {
  let r = runtimes.get(backend);
  if (!r) {
    r = (backend === "webgpu" ? import("onnxruntime-web/webgpu") : import("onnxruntime-web")).then(
      (ort: typeof Ort) => {
        ort.env.wasm.numThreads = backend === "webgpu" ? 1 : threads;
        ort.env.logLevel = "error";
        return ort;
      },
    );
    runtimes.set(backend, r);
  }
  return r;
}

/**
 * Create a session for a verified model (about 0.1–0.5 s, mostly wasm compilation). Throws a
 * ModelLoadError naming the ONNX file when onnxruntime cannot load it.
 */
export async function createEngine(model: Model, opts: EngineOptions = {}): Promise<Engine> {
  const backend = await resolveBackend(opts.backend);
  const threads = opts.threads ?? 1;
  const ort = await runtime(backend, threads);
  let session: Ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(model.onnx, {
      executionProviders: [backend],
      graphOptimizationLevel: "all",
      extra: { session: { disable_quant_qdq: "1" } },
    });
  } catch (e) {
    // Bytes that match the card's hash but are no ONNX model ORT can run (e.g. a card
    // regenerated for a broken file): name the file, keep ORT's reason on one line.
    const reason = String((e as Error)?.message ?? e).replace(/\s*\n\s*/g, " ");
    throw new ModelLoadError(
      display(new URL(model.card.onnx.file, model.cardUrl)),
      `onnxruntime cannot create a session: ${reason}`,
    );
  }
  const { card } = model;
  const [C, S] = [card.image.channels, card.image.size];
  const size = C * S * S;
  const numClasses = card.architecture.numClasses;
  const int64T = card.onnx.timestepType === "int64";
  let runs = 0;

  const maxBatch = opts.maxBatch ?? (backend === "wasm" ? WASM_RUN_BATCH : Infinity);
  if (!(maxBatch >= 1)) throw new RangeError(`maxBatch must be ≥ 1, got ${maxBatch}`);

  async function forward(x: Float32Array, n: number, t: number, y: Int32Array | null) {
    if (x.length !== n * size) throw new RangeError(`x has ${x.length} values, want ${n * size}`);
    if (y && y.length !== n) throw new RangeError(`y has ${y.length} labels, want ${n}`);
    runs++;
    if (n <= maxBatch) return await run(x, n, t, y);
    const out = new Float32Array(n * size);
    for (let i = 0; i < n; i += maxBatch) {
      if (i > 0) await nextTask(); // let timers, I/O and other requests run between runs
      const m = Math.min(maxBatch, n - i);
      const part = await run(
        x.slice(i * size, (i + m) * size),
        m,
        t,
        y ? y.subarray(i, i + m) : null,
      );
      out.set(part, i * size);
    }
    return out;
  }

  /** One session run. */
  async function run(x: Float32Array, n: number, t: number, y: Int32Array | null) {
    const feeds: Record<string, Ort.Tensor> = {
      x: new ort.Tensor("float32", x, [n, C, S, S]),
      t: int64T
        ? new ort.Tensor("int64", new BigInt64Array(n).fill(BigInt(t)), [n])
        : new ort.Tensor("float32", new Float32Array(n).fill(t), [n]),
    };
    if (numClasses > 0) {
      const labels = new BigInt64Array(n).fill(BigInt(numClasses));
      if (y) y.forEach((v, i) => labels[i] = BigInt(v));
      feeds.y = new ort.Tensor("int64", labels, [n]);
    }
    const out = await session.run(feeds);
    const eps = out.eps ?? out[session.outputNames[0]];
    const data = await eps.getData(true);
    if (!(data instanceof Float32Array) || data.length !== n * size) {
      throw new Error(
        `model output ${session.outputNames[0]} is not float32 [${n},${C},${S},${S}]`,
      );
    }
    return data;
  }

  function epsModel(n: number, label: LabelSpec, guidance: number, timing?: Timing): EpsModel {
    const yc = label === undefined ? null : Int32Array.from(
      typeof label === "number" ? new Array(n).fill(label) : label,
    );
    if (yc && yc.length !== n) throw new RangeError(`need ${n} labels, got ${yc.length}`);
    if (yc && numClasses === 0) throw new RangeError("this model is unconditional: no labels");
    const timed = async (x: Float32Array, m: number, t: number, y: Int32Array | null) => {
      const t0 = performance.now();
      const r = await forward(x, m, t, y);
      if (timing) {
        timing.modelMs += performance.now() - t0;
        timing.runs++;
      }
      return r;
    };
    const w = guidance;
    if (!yc || w === 1) return (x, t) => timed(x, n, t, yc);
    if (w === 0) return (x, t) => timed(x, n, t, null);
    // Batch [x; x] with labels [y; null] and combine ε_u + w·(ε_c − ε_u).
    const x2 = new Float32Array(2 * n * size);
    const y2 = new Int32Array(2 * n).fill(numClasses);
    y2.set(yc);
    const out = new Float32Array(n * size);
    return async (x, t) => {
      x2.set(x);
      x2.set(x, x.length);
      const e = await timed(x2, 2 * n, t, y2);
      return guide(e.subarray(n * size), e.subarray(0, n * size), w, out);
    };
  }

  return {
    model,
    backend,
    maxBatch,
    get runs() {
      return runs;
    },
    forward,
    epsModel,
  };
}
