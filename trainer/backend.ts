/**
 * Chooses and initialises the tfjs backend for training. "auto" prefers the native
 * tfjs-node-gpu / tfjs-node bindings when the user has installed them (they are optional and
 * not in deno.json: `deno add npm:@tensorflow/tfjs-node-gpu@4.22.0` then
 * `deno install --allow-scripts=npm:@tensorflow/tfjs-node-gpu`), otherwise the wasm backend
 * with this project's kernels (`kernels/register.ts`). "cpu" (pure JS, very slow) only when asked.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { registerWasmKernels } from "./kernels/register.ts";
import { initWasmThreads } from "./wasm_threads.ts";

/** Call before exiting when threads: 2 (live wasm worker threads keep Deno running). */
export { shutdownWasmThreads } from "./wasm_threads.ts";

export type BackendChoice = "auto" | "tfjs-node-gpu" | "tfjs-node" | "wasm" | "cpu";

export interface BackendOptions {
  backend: BackendChoice;
  /**
   * wasm worker threads; 2 uses the patched threaded build (`wasm_threads.ts`). Our SIMD kernels
   * (~95 % of a step) run on the calling thread only, so 2 threads measured slower than 1 even on
   * an idle machine (177 vs 192 img/s, c = 16, BENCHMARKS.md); kept for the stock ops' sake.
   */
  threads: 1 | 2;
}

export interface BackendInfo {
  /** What runs: "tfjs-node-gpu", "tfjs-node", "wasm" or "cpu". */
  name: string;
  /** wasm threads; 1 for cpu; 0 for the native bindings (they run their own thread pool). */
  threads: number;
}

type NativeName = "tfjs-node-gpu" | "tfjs-node";

/**
 * Loads a native binding. The bare specifier resolves only if the user added it to the import
 * map, so "auto" never downloads anything. Asking for it by name also tries the `npm:`
 * specifier, which makes Deno fetch the package (it then still needs its install script).
 */
async function loadNative(name: NativeName, allowFetch: boolean): Promise<boolean> {
  const specs = [`@tensorflow/${name}`];
  if (allowFetch) specs.push(`npm:@tensorflow/${name}@4.22.0`);
  for (const spec of specs) {
    try {
      await import(spec);
      if (await tf.setBackend("tensorflow")) {
        await tf.ready();
        return true;
      }
    } catch {
      // Not installed or its native library is missing: try the next option.
    }
  }
  return false;
}

async function initWasm(threads: 1 | 2): Promise<BackendInfo> {
  if (threads === 2) {
    await initWasmThreads(2);
  } else {
    if (!(await tf.setBackend("wasm"))) {
      throw new Error("could not initialise the tfjs wasm backend");
    }
    await tf.ready();
  }
  registerWasmKernels();
  const { getThreadsCount } = await import("@tensorflow/tfjs-backend-wasm");
  return { name: "wasm", threads: getThreadsCount() };
}

/** Initialises the requested backend and returns what was chosen. */
export async function initBackend(opts: BackendOptions): Promise<BackendInfo> {
  switch (opts.backend) {
    case "auto":
      for (const name of ["tfjs-node-gpu", "tfjs-node"] as const) {
        if (await loadNative(name, false)) return { name, threads: 0 };
      }
      return await initWasm(opts.threads);
    case "tfjs-node-gpu":
    case "tfjs-node":
      if (await loadNative(opts.backend, true)) return { name: opts.backend, threads: 0 };
      throw new Error(
        `@tensorflow/${opts.backend} is not usable here (not installed or its native library is ` +
          `missing); install it with --allow-scripts or use --backend wasm`,
      );
    case "wasm":
      return await initWasm(opts.threads);
    case "cpu":
      if (!(await tf.setBackend("cpu"))) {
        throw new Error("could not initialise the tfjs cpu backend");
      }
      await tf.ready();
      return { name: "cpu", threads: 1 };
  }
}
