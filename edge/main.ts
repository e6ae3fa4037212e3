/**
 * Entry point for `deno serve` (and Deno Deploy): `export default { fetch }`. Reads its settings
 * from the environment; needs only --allow-net --allow-read --allow-env (no writes, FFI or
 * native code) — except ORT_BACKEND=native, which loads onnxruntime-node and needs --allow-ffi
 * too (`deno task serve:native`); without it start-up fails with that reason.
 *
 * Start-up, before anything is served (top-level await): the settings, then the model card and
 * its ONNX file are read and verified (schema, byte count, SHA-256). Any fault there — a bad
 * variable, a missing or unreadable file (a MODEL URL that does not answer within
 * MODEL_FETCH_TIMEOUT_MS included), a card that fails the schema, a size or hash mismatch —
 * prints one line `ddpm-edge: <file>: <reason>` to stderr and exits with status 1 (where
 * Deno.exit is not permitted, the same message is thrown). The onnxruntime session is then
 * created in the background: /healthz answers 503 not-ready until it is, then ready; if it fails
 * (bytes that match the card but are no model ORT can run) the reason is logged on one line,
 * /healthz reports 503 error and /generate answers 503 with it, and the process stays up.
 *
 *   MODEL         path or URL of model.json (default: fixtures/models/mnist/model.json)
 *   MODEL_FETCH_TIMEOUT_MS  time limit per file when MODEL is an http(s) URL, request to last
 *                 byte; past it start-up fails like any other unreadable file (default 30000)
 *   ORT_BACKEND   wasm | webgpu | native | auto (default auto: WebGPU on a hardware adapter,
 *                 else wasm; native = onnxruntime-node, self-hosted only, needs --allow-ffi)
 *   ORT_AUTO_BACKEND  wasm | webgpu: auto's answer from a probe outside this process (set by
 *                 deno task serve from `deno run edge/gpu_probe.ts`); unset: auto probes here
 *   ORT_THREADS   wasm / native threads (default 1: least CPU per sample; 2 lowers latency on a
 *                 free core)
 *   WARMUP        1: run WARMUP_CALLS forward passes before /healthz says ready (default 0)
 *   MAX_WORK      cap on n × steps × passes per request (default 2048)
 *   MAX_INFLIGHT  generations running at once (default 1)
 *   MAX_QUEUE     generations waiting for a slot before 503 (default 8)
 *   REQUEST_TIMEOUT_MS  a generation not done this long after the request arrived is aborted
 *                 and answered 504 (default 120000)
 */
import { createApp, DEFAULT_TIMEOUT_MS } from "./app.ts";
import { type BackendChoice, createEngine, resolveBackend, warmUp } from "./engine.ts";
import { DEFAULT_FETCH_TIMEOUT_MS, DEFAULT_MODEL_CARD, loadModel, type Model } from "./model.ts";
import { DEFAULT_MAX_WORK } from "./params.ts";
import { Queue } from "./queue.ts";

export interface Settings {
  model: string | URL;
  /** Time limit per model file fetched over http(s). */
  fetchTimeoutMs: number;
  backend: BackendChoice;
  /** Auto's answer found by a probe outside this process (ORT_AUTO_BACKEND). */
  probed?: "wasm" | "webgpu";
  threads?: number;
  /** Warm the engine up before reporting ready. */
  warmup: boolean;
  maxWork: number;
  maxInFlight: number;
  maxQueue: number;
  timeoutMs: number;
}

function intEnv(env: (k: string) => string | undefined, key: string, min: number, def?: number) {
  const v = env(key);
  if (v === undefined || v === "") return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`${key} must be an integer ≥ ${min}, got "${v}"`);
  }
  return n;
}

/** Settings from environment variables (throws naming the variable on a bad value). */
export function settingsFromEnv(env: (k: string) => string | undefined = Deno.env.get): Settings {
  const backend = env("ORT_BACKEND") || "auto";
  if (!["wasm", "webgpu", "native", "auto"].includes(backend)) {
    throw new Error(`ORT_BACKEND must be wasm, webgpu, native or auto, got "${backend}"`);
  }
  const probed = env("ORT_AUTO_BACKEND") || undefined;
  if (probed !== undefined && probed !== "wasm" && probed !== "webgpu") {
    throw new Error(`ORT_AUTO_BACKEND must be wasm or webgpu, got "${probed}"`);
  }
  const warmup = env("WARMUP") || "0";
  if (warmup !== "0" && warmup !== "1") {
    throw new Error(`WARMUP must be 0 or 1, got "${warmup}"`);
  }
  return {
    model: env("MODEL") || DEFAULT_MODEL_CARD,
    fetchTimeoutMs: intEnv(env, "MODEL_FETCH_TIMEOUT_MS", 1, DEFAULT_FETCH_TIMEOUT_MS)!,
    backend: backend as BackendChoice,
    probed,
    threads: intEnv(env, "ORT_THREADS", 1),
    warmup: warmup === "1",
    maxWork: intEnv(env, "MAX_WORK", 1, DEFAULT_MAX_WORK)!,
    maxInFlight: intEnv(env, "MAX_INFLIGHT", 1, 1)!,
    maxQueue: intEnv(env, "MAX_QUEUE", 0, 8)!,
    timeoutMs: intEnv(env, "REQUEST_TIMEOUT_MS", 1, DEFAULT_TIMEOUT_MS)!,
  };
}

/** One line on stderr (newlines in the reason folded), as `ddpm-edge: <message>`. */
function oneLine(message: string): string {
  return `ddpm-edge: ${message.replace(/\s*\n\s*/g, " ")}`;
}

/** Refuse to start: one line, then exit 1 (or throw where Deno.exit is not permitted). */
function refuse(err: unknown): never {
  const line = oneLine((err as Error)?.message ?? String(err));
  console.error(line);
  try {
    Deno.exit(1);
  } catch { /* not permitted here (e.g. Deno Deploy) */ }
  throw new Error(line);
}

const s = await Promise.resolve().then(() => settingsFromEnv((k) => Deno.env.get(k))).catch(
  refuse,
);
if (s.backend === "native") {
  // Before anything is read: the FFI-free default path never imports the native module.
  const { nativeUnavailable } = await import("./engine_native.ts");
  const why = nativeUnavailable();
  if (why) refuse(new Error(why));
}
let loaded: Model | null = await loadModel(s.model, { fetchTimeoutMs: s.fetchTimeoutMs }).catch(
  refuse,
);
// The app keeps the card only; the ONNX bytes live until the session has them.
const model: Model = { cardUrl: loaded.cardUrl, card: loaded.card, onnx: new Uint8Array(0) };
const backend = await resolveBackend(s.backend, s.probed);
const app = createApp({
  model,
  backend,
  load: () =>
    createEngine(loaded!, { backend, threads: s.threads, release: true })
      .then(async (e) => (s.warmup && await warmUp(e), e))
      .catch((err) => {
        console.error(oneLine((err as Error)?.message ?? String(err)));
        throw err;
      })
      .finally(() => loaded = null),
  queue: new Queue({ maxInFlight: s.maxInFlight, maxWaiting: s.maxQueue }),
  maxWork: s.maxWork,
  timeoutMs: s.timeoutMs,
});

export default { fetch: app.fetch } satisfies Deno.ServeDefaultExport;
