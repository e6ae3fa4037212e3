/**
 * Chooses and initialises the tfjs backend for training. "auto" tries, in order:
 *   1. tfjs-node-gpu — when the user has installed it (optional, not in deno.json:
 *      `deno add npm:@tensorflow/tfjs-node-gpu@4.22.0` then
 *      `deno install --allow-scripts=npm:@tensorflow/tfjs-node-gpu`; CUDA 11.2 + cuDNN 8.1);
 *   2. WebGPU — when `navigator.gpu` gives a hardware adapter (a Vulkan/Metal/D3D12 driver and
 *      nothing else; a software one such as lavapipe is skipped: slower than wasm);
 *   3. tfjs-node — when installed (as 1);
 *   4. wasm with this project's kernels (`kernels/register.ts`).
 * and says why it skipped each one before its choice. "webgpu" by name also takes a software
 * adapter. "cpu" (pure JS, very slow) only when asked.
 *
 * Every backend trains the same float32 model from the same host-side random draws, and
 * checkpoints hold plain float32 arrays, so a run can be resumed on any of them.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { registerWasmKernels } from "./kernels/register.ts";
import { initWasmThreads } from "./wasm_threads.ts";
import { initWebgpu, probeAdapter } from "./webgpu.ts";
import type { BackendChoice } from "./choice.ts";

/** Call before exiting when threads: 2 (live wasm worker threads keep Deno running). */
export { shutdownWasmThreads } from "./wasm_threads.ts";

export type { BackendChoice };

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
  /** What runs: "tfjs-node-gpu", "webgpu", "tfjs-node", "wasm" or "cpu". */
  name: string;
  /** wasm threads; 1 for cpu; 0 for the native bindings and WebGPU (no CPU threads of ours). */
  threads: number;
  /** WebGPU only: the adapter's description, e.g. "NVIDIA GeForce RTX 4090" or "llvmpipe …". */
  adapter?: string;
  /** "auto" only: each backend tried before the chosen one, with why it was not used. */
  skipped: string[];
}

/** The requested backend cannot run here; the message says why and what to use instead. */
export class BackendError extends Error {
  override name = "BackendError";
}

type NativeName = "tfjs-node-gpu" | "tfjs-node";

/** The first line of an error's message. */
function firstLine(e: unknown): string {
  return ((e as Error)?.message ?? String(e)).split("\n")[0];
}

/**
 * Loads a native binding: null when it runs, else why not. The bare specifier resolves only if
 * the user added it to the import map, so "auto" never downloads anything. Asking for it by name
 * also tries the `npm:` specifier, which makes Deno fetch the package (it then still needs its
 * install script).
 */
async function loadNative(name: NativeName, allowFetch: boolean): Promise<string | null> {
  const specs = [`@tensorflow/${name}`];
  if (allowFetch) specs.push(`npm:@tensorflow/${name}@4.22.0`);
  let reason = `not installed (no @tensorflow/${name} in deno.json)`;
  for (const [i, spec] of specs.entries()) {
    try {
      await import(spec);
      if (await tf.setBackend("tensorflow")) {
        await tf.ready();
        return null;
      }
      reason = "its tensorflow backend did not initialise";
    } catch (e) {
      // Not installed or its native library is missing: try the next option.
      if (i > 0 || !/import|resolve|not found/i.test(firstLine(e))) reason = firstLine(e);
    }
  }
  return reason;
}

async function initWasm(threads: 1 | 2): Promise<number> {
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
  return getThreadsCount();
}

/** Initialises the requested backend and returns what was chosen. */
export async function initBackend(opts: BackendOptions): Promise<BackendInfo> {
  switch (opts.backend) {
    case "auto": {
      const skipped: string[] = [];
      const gpuNative = await loadNative("tfjs-node-gpu", false);
      if (gpuNative === null) return { name: "tfjs-node-gpu", threads: 0, skipped };
      skipped.push(`tfjs-node-gpu: ${gpuNative}`);
      const probe = await probeAdapter();
      if (probe.ok && !probe.software) {
        await initWebgpu();
        return { name: "webgpu", threads: 0, adapter: probe.description, skipped };
      }
      skipped.push(
        probe.ok
          ? `webgpu: the adapter "${probe.description}" is a software renderer, slower than ` +
            `wasm (--backend webgpu uses it anyway)`
          : `webgpu: ${probe.reason}`,
      );
      const cpuNative = await loadNative("tfjs-node", false);
      if (cpuNative === null) return { name: "tfjs-node", threads: 0, skipped };
      skipped.push(`tfjs-node: ${cpuNative}`);
      return { name: "wasm", threads: await initWasm(opts.threads), skipped };
    }
    case "tfjs-node-gpu":
    case "tfjs-node": {
      const why = await loadNative(opts.backend, true);
      if (why === null) return { name: opts.backend, threads: 0, skipped: [] };
      throw new BackendError(
        `@tensorflow/${opts.backend} is not usable here (${why}); install it with ` +
          `--allow-scripts (README, "On a GPU box") or use --backend webgpu or wasm`,
      );
    }
    case "webgpu": {
      const probe = await probeAdapter();
      if (!probe.ok) {
        throw new BackendError(
          `--backend webgpu: ${probe.reason}; install the GPU's Vulkan driver (or Mesa's ` +
            `mesa-vulkan-drivers for a CPU one), or use --backend wasm`,
        );
      }
      await initWebgpu();
      return { name: "webgpu", threads: 0, adapter: probe.description, skipped: [] };
    }
    case "wasm":
      return { name: "wasm", threads: await initWasm(opts.threads), skipped: [] };
    case "cpu":
      if (!(await tf.setBackend("cpu"))) {
        throw new Error("could not initialise the tfjs cpu backend");
      }
      await tf.ready();
      return { name: "cpu", threads: 1, skipped: [] };
  }
}

/** The lines the trainer prints about its backend: the choice, then what auto skipped. */
export function describeBackend(be: BackendInfo): string[] {
  const what = be.adapter !== undefined
    ? `${be.name} (adapter ${be.adapter})`
    : be.threads > 0
    ? `${be.name} (${be.threads} thread${be.threads === 1 ? "" : "s"})`
    : be.name;
  return [`backend ${what}`, ...be.skipped.map((s) => `  skipped ${s}`)];
}
