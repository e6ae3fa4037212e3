/**
 * The ε-model: one inference session per model on onnxruntime-web (WebGPU or wasm; the runtime
 * module is loaded once per isolate) or, where FFI is allowed, onnxruntime-node (`native`,
 * edge/engine_native.ts, imported only when chosen), and the ε̂(x, t) call the sampler drives —
 * with classifier-free guidance batched as [conditional; unconditional] in a single session run.
 */
import type * as Ort from "onnxruntime-web";
import type { EpsModel } from "../shared/sample.ts";
import { guide } from "../shared/step.ts";
import { hasHardwareAdapter } from "./gpu_probe.ts";
import { display, type Model, ModelLoadError } from "./model.ts";
import { nextTask } from "./yield.ts";

export type Backend = "wasm" | "webgpu" | "native";
export type BackendChoice = Backend | "auto";

export interface EngineOptions {
  /**
   * "auto" (default): WebGPU when navigator.gpu gives a hardware adapter, else wasm (never
   * native: that needs FFI, so it is only ever chosen explicitly).
   */
  backend?: BackendChoice;
  /**
   * wasm threads, or onnxruntime-node intra-op threads on native (default 1: a second thread
   * cut latency 30 % but cost 40 % more CPU per sample in BENCHMARKS.md, and the edge budget is
   * CPU); WebGPU always uses 1. onnxruntime-web's env is per isolate, so the first engine
   * created on a backend fixes its thread count.
   */
  threads?: number;
  /**
   * Drop the ONNX bytes once the session holds the model: `engine.model.onnx` is then empty
   * (the server keeps only the card). Default false.
   */
  release?: boolean;
  /**
   * Most images per session run; a larger forward pass is split into runs of this size with a
   * macrotask yield between them. On wasm a run blocks the event loop for its whole duration
   * (about 6 ms per MNIST-sized image, so batch 128 — n = 64 with guidance — is ~0.8 s); the
   * default caps that near 50 ms for ~10–15 % throughput at n = 64. Default: WASM_RUN_BATCH on
   * wasm and native (whose runs block too, ~6× shorter), unlimited on WebGPU (whose runs do not
   * block). Part of what determines the output
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
  /**
   * ∇ₓ log p(y | x_t) of the card's classifier (card `classifier`) for x [n,C,H,W] at original
   * timestep t, labels y (length n); absent when the card has none. Its session is created on
   * the first call (a server whose requests never ask for it never pays for it).
   */
  classifierGrad?(
    x: Float32Array,
    n: number,
    t: number,
    y: Int32Array,
    timing?: Timing,
  ): Promise<Float32Array>;
}

/** A request's label spec as one class per image (n of them), or null for the null class. */
export function labelsOf(n: number, label: LabelSpec): Int32Array | null {
  return label === undefined
    ? null
    : Int32Array.from(typeof label === "number" ? new Array(n).fill(label) : label);
}

/** Whether a request samples the null class: no label, or guidance 0 (the unguided null class). */
export function samplesNullClass(label: LabelSpec, guidance: number): boolean {
  return label === undefined || guidance === 0;
}

/** How many forward passes per image per step a request costs (2 with real guidance). */
export function passes(label: LabelSpec, guidance: number): 1 | 2 {
  return label !== undefined && guidance !== 0 && guidance !== 1 ? 2 : 1;
}

/**
 * The backend "auto" resolves to on this runtime: webgpu on a hardware adapter, else wasm
 * (native only when asked). `probed`: auto's answer found outside this process (deno task
 * serve's probe child, ORT_AUTO_BACKEND), taken instead of asking here; see edge/gpu_probe.ts.
 */
export async function resolveBackend(
  choice: BackendChoice = "auto",
  probed?: "wasm" | "webgpu",
): Promise<Backend> {
  if (choice !== "auto") return choice;
  if (probed) return probed;
  return await hasHardwareAdapter() ? "webgpu" : "wasm";
}

// One onnxruntime-web module per backend per isolate; its env is global, so set it once. Deno
// resolves "onnxruntime-web" with the node condition (dist/ort.node.min.mjs), which runs the
// plain ort-wasm-simd-threaded.wasm (no JSEP/WebGPU code) already; the "onnxruntime-web/wasm"
// entry loads the same binary but starts its threads from blob: URLs, which Deno's module
// loader rejects (ORT_THREADS=2 fails), for ≈ 6 MB less JS (BENCHMARKS.md).
const runtimes = new Map<Backend, Promise<typeof Ort>>();

function runtime(backend: "wasm" | "webgpu", threads: number): Promise<typeof Ort> {
  let r = runtimes.get(backend);
  if (!r) {
    r = (backend === "webgpu" ? import("onnxruntime-web/webgpu") : import("onnxruntime-web"))
      .then(
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

/** A session for ONNX bytes on the chosen backend and the Tensor class that feeds it. */
async function openSession(
  onnx: Uint8Array,
  backend: Backend,
  threads: number,
): Promise<{ Tensor: typeof Ort.Tensor; session: Ort.InferenceSession }> {
  if (backend === "native") {
    const { createNativeSession } = await import("./engine_native.ts");
    return await createNativeSession(onnx, threads);
  }
  const ort = await runtime(backend, threads);
  const session = await ort.InferenceSession.create(onnx, {
    executionProviders: [backend],
    graphOptimizationLevel: "all",
    extra: { session: { disable_quant_qdq: "1" } },
  });
  return { Tensor: ort.Tensor, session };
}

/** openSession, failing with a ModelLoadError that names the file ORT could not load. */
async function openNamed(
  onnx: Uint8Array,
  file: () => URL,
  backend: Backend,
  threads: number,
): Promise<{ Tensor: typeof Ort.Tensor; session: Ort.InferenceSession }> {
  try {
    return await openSession(onnx, backend, threads);
  } catch (e) {
    // Bytes that match the card's hash but are no ONNX model ORT can run (e.g. a card
    // regenerated for a broken file): name the file, keep ORT's reason on one line.
    const reason = String((e as Error)?.message ?? e).replace(/\s*\n\s*/g, " ");
    throw new ModelLoadError(display(file()), `onnxruntime cannot create a session: ${reason}`);
  }
}

/**
 * Create a session for a verified model (about 0.1–0.5 s, mostly wasm compilation). Throws a
 * ModelLoadError naming the ONNX file when onnxruntime cannot load it.
 */
export async function createEngine(model: Model, opts: EngineOptions = {}): Promise<Engine> {
  const backend = await resolveBackend(opts.backend);
  const threads = opts.threads ?? 1;
  const { Tensor, session } = await openNamed(
    model.onnx,
    () => new URL(model.card.onnx.file, model.cardUrl),
    backend,
    threads,
  );
  const { card } = model;
  const [C, S] = [card.image.channels, card.image.size];
  const size = C * S * S;
  const numClasses = card.architecture.numClasses;
  const int64T = card.onnx.timestepType === "int64";
  let runs = 0;

  if (opts.release) model = { ...model, onnx: new Uint8Array(0) };

  const maxBatch = opts.maxBatch ?? (backend === "webgpu" ? Infinity : WASM_RUN_BATCH);
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
      x: new Tensor("float32", x, [n, C, S, S]),
      t: int64T
        ? new Tensor("int64", new BigInt64Array(n).fill(BigInt(t)), [n])
        : new Tensor("float32", new Float32Array(n).fill(t), [n]),
    };
    if (numClasses > 0) {
      const labels = new BigInt64Array(n).fill(BigInt(numClasses));
      if (y) y.forEach((v, i) => labels[i] = BigInt(v));
      feeds.y = new Tensor("int64", labels, [n]);
    }
    const out = await session.run(feeds);
    const eps = out.eps ?? out[session.outputNames[0]];
    // ORT-web may hold the output on the GPU (getData downloads it); onnxruntime-node's
    // tensors are CPU tensors with no getData.
    const data = typeof eps.getData === "function" ? await eps.getData(true) : eps.data;
    if (!(data instanceof Float32Array) || data.length !== n * size) {
      throw new Error(
        `model output ${session.outputNames[0]} is not float32 [${n},${C},${S},${S}]`,
      );
    }
    return data;
  }

  function epsModel(n: number, label: LabelSpec, guidance: number, timing?: Timing): EpsModel {
    const yc = labelsOf(n, label);
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

  const classifierBytes = model.classifier;
  const classifierGrad = classifierBytes && card.classifier
    ? gradientOf(
      () =>
        openNamed(
          classifierBytes,
          () => new URL(card.classifier!.file, model.cardUrl),
          backend,
          threads,
        ),
      [C, S],
      maxBatch,
    )
    : undefined;

  return {
    model,
    backend,
    maxBatch,
    get runs() {
      return runs;
    },
    forward,
    epsModel,
    ...(classifierGrad ? { classifierGrad } : {}),
  };
}

/**
 * The classifier's gradient call on a session opened by `open` on first use (shared by
 * concurrent first calls), in runs of at most `maxBatch` images like the UNet's.
 */
function gradientOf(
  open: () => Promise<{ Tensor: typeof Ort.Tensor; session: Ort.InferenceSession }>,
  [C, S]: [number, number],
  maxBatch: number,
): NonNullable<Engine["classifierGrad"]> {
  let opened: ReturnType<typeof open> | null = null;
  const size = C * S * S;
  async function run(x: Float32Array, n: number, t: number, y: Int32Array) {
    opened ??= open().catch((e) => {
      opened = null; // a failed start is retried by the next request
      throw e;
    });
    const { Tensor, session } = await opened;
    const out = await session.run({
      x: new Tensor("float32", x, [n, C, S, S]),
      t: new Tensor("int64", new BigInt64Array(n).fill(BigInt(t)), [n]),
      y: new Tensor("int64", BigInt64Array.from(y, BigInt), [n]),
    });
    const grad = out.grad;
    const data = typeof grad?.getData === "function" ? await grad.getData(true) : grad?.data;
    if (!(data instanceof Float32Array) || data.length !== n * size) {
      throw new Error(`classifier output grad is not float32 [${n},${C},${S},${S}]`);
    }
    return data;
  }
  return async (x, n, t, y, timing) => {
    if (x.length !== n * size) throw new RangeError(`x has ${x.length} values, want ${n * size}`);
    if (y.length !== n) throw new RangeError(`y has ${y.length} labels, want ${n}`);
    const t0 = performance.now();
    let g: Float32Array;
    if (n <= maxBatch) g = await run(x, n, t, y);
    else {
      g = new Float32Array(n * size);
      for (let i = 0; i < n; i += maxBatch) {
        if (i > 0) await nextTask();
        const m = Math.min(maxBatch, n - i);
        g.set(await run(x.slice(i * size, (i + m) * size), m, t, y.subarray(i, i + m)), i * size);
      }
    }
    if (timing) {
      timing.modelMs += performance.now() - t0;
      timing.runs++;
    }
    return g;
  };
}

/** UNet calls WARMUP=1 runs at start-up: past V8's tier-up of ORT-web's hot wasm (BENCHMARKS.md). */
export const WARMUP_CALLS = 60;

/**
 * Opt-in warm-up: `calls` batch-1 forward passes on a fixed input (null class, mid-chain
 * timestep), yielding between them. On wasm it moves V8's baseline-to-optimised tier-up of
 * ORT-web's hot functions before the first request; the CPU is spent either way (and billed
 * on every cold isolate), so it is off by default. Leaves no state behind: outputs depend only
 * on inputs.
 */
export async function warmUp(engine: Engine, calls = WARMUP_CALLS): Promise<void> {
  const { card } = engine.model;
  const x = new Float32Array(card.image.channels * card.image.size ** 2);
  const t = Math.floor(card.schedule.T / 2);
  for (let i = 0; i < calls; i++) {
    await engine.forward(x, 1, t, null);
    await nextTask();
  }
}
