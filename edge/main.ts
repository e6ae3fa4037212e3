/**
 * Entry point for `deno serve` (and Deno Deploy): `export default { fetch }`. Reads its settings
 * from the environment; needs only --allow-net --allow-read --allow-env (no writes, FFI or
 * native code). The model is loaded on the first request.
 *
 *   MODEL         path or URL of model.json (default: fixtures/models/mnist/model.json)
 *   ORT_BACKEND   wasm | webgpu | auto (default auto: WebGPU on a hardware adapter, else wasm)
 *   ORT_THREADS   wasm threads (default min(2, cores))
 *   MAX_WORK      cap on n × steps × passes per request (default 2048)
 *   MAX_INFLIGHT  generations running at once (default 1)
 *   MAX_QUEUE     generations waiting for a slot before 503 (default 8)
 */
import { createApp } from "./app.ts";
import { type BackendChoice, createEngine } from "./engine.ts";
import { DEFAULT_MODEL_CARD, loadModel } from "./model.ts";
import { DEFAULT_MAX_WORK } from "./params.ts";
import { Queue } from "./queue.ts";

export interface Settings {
  model: string | URL;
  backend: BackendChoice;
  threads?: number;
  maxWork: number;
  maxInFlight: number;
  maxQueue: number;
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
    backend: backend as BackendChoice,
    threads: intEnv(env, "ORT_THREADS", 1),
    maxWork: intEnv(env, "MAX_WORK", 1, DEFAULT_MAX_WORK)!,
    maxInFlight: intEnv(env, "MAX_INFLIGHT", 1, 1)!,
    maxQueue: intEnv(env, "MAX_QUEUE", 0, 8)!,
  };
}

const s = settingsFromEnv((k) => Deno.env.get(k));
const app = createApp({
  load: async () =>
    createEngine(await loadModel(s.model), { backend: s.backend, threads: s.threads }),
  queue: new Queue({ maxInFlight: s.maxInFlight, maxWaiting: s.maxQueue }),
  maxWork: s.maxWork,
});

export default { fetch: app.fetch } satisfies Deno.ServeDefaultExport;
