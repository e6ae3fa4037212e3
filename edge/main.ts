/**
 * Entry point for `deno serve` (and Deno Deploy): `export default { fetch }`. Reads its settings
 * from the environment; needs only --allow-net --allow-read --allow-env (no writes, FFI or
 * native code).
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
 *   ORT_BACKEND   wasm | webgpu | auto (default auto: WebGPU on a hardware adapter, else wasm)
 *   ORT_THREADS   wasm threads (default 1: least CPU per sample; 2 lowers latency on a free core)
 *   MAX_WORK      cap on n × steps × passes per request (default 2048)
 *   MAX_INFLIGHT  generations running at once (default 1)
 *   MAX_QUEUE     generations waiting for a slot before 503 (default 8)
 *   REQUEST_TIMEOUT_MS  a generation not done this long after the request arrived is aborted
 *                 and answered 504 (default 120000)
 */
import { createApp, DEFAULT_TIMEOUT_MS } from "./app.ts";
import { type BackendChoice, createEngine, resolveBackend } from "./engine.ts";
import { DEFAULT_FETCH_TIMEOUT_MS, DEFAULT_MODEL_CARD, loadModel } from "./model.ts";
import { DEFAULT_MAX_WORK } from "./params.ts";
import { Queue } from "./queue.ts";

export interface Settings {
  model: string | URL;
  /** Time limit per model file fetched over http(s). */
  fetchTimeoutMs: number;
  backend: BackendChoice;
  threads?: number;
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
  if (!["wasm", "webgpu", "auto"].includes(backend)) {
    throw new Error(`ORT_BACKEND must be wasm, webgpu or auto, got "${backend}"`);
  }
  return {
    model: env("MODEL") || DEFAULT_MODEL_CARD,
    fetchTimeoutMs: intEnv(env, "MODEL_FETCH_TIMEOUT_MS", 1, DEFAULT_FETCH_TIMEOUT_MS)!,
    backend: backend as BackendChoice,
    threads: intEnv(env, "ORT_THREADS", 1),
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
const model = await loadModel(s.model, { fetchTimeoutMs: s.fetchTimeoutMs }).catch(refuse);
const backend = await resolveBackend(s.backend);
const app = createApp({
  model,
  backend,
  load: () =>
    createEngine(model, { backend, threads: s.threads }).catch((err) => {
      console.error(oneLine((err as Error)?.message ?? String(err)));
      throw err;
    }),
  queue: new Queue({ maxInFlight: s.maxInFlight, maxWaiting: s.maxQueue }),
  maxWork: s.maxWork,
  timeoutMs: s.timeoutMs,
});

export default { fetch: app.fetch } satisfies Deno.ServeDefaultExport;
