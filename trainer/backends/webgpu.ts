/**
 * The trainer's WebGPU route: Deno's `navigator.gpu` + `@tensorflow/tfjs-backend-webgpu` (loaded
 * only when asked for, so other backends never touch the GPU), with this project's WebGPU kernel
 * fixes registered (`kernels/webgpu/register.ts`). Needs a Vulkan (Linux), Metal (macOS) or D3D12
 * (Windows) driver and nothing else.
 *
 * A software adapter (Mesa's lavapipe/llvmpipe, SwiftShader, WARP) is far slower than the wasm
 * backend: `probeAdapter` says so, `--backend auto` skips it, `--backend webgpu` still uses it
 * (that is how the tests run on CPU-only machines).
 */
import * as tf from "@tensorflow/tfjs";
import { registerWebgpuKernels } from "./kernels/webgpu/register.ts";
import { isSoftwareAdapter } from "../../shared/gpu_adapter.ts";
export { isSoftwareAdapter };

/** What `navigator.gpu` offers here. */
export type AdapterProbe =
  | { ok: true; description: string; software: boolean }
  | { ok: false; reason: string };

/**
 * Vulkan loaders (and Mesa's WSI) complain and may fail without a private runtime directory; a
 * fresh temporary one is used when the environment has none (e.g. under sudo, cron or CI).
 */
export function ensureRuntimeDir(): void {
  if (!Deno.env.get("XDG_RUNTIME_DIR") && Deno.build.os === "linux") {
    Deno.env.set("XDG_RUNTIME_DIR", Deno.makeTempDirSync({ prefix: "xdg-" }));
  }
}

const POWER: GPURequestAdapterOptions = { powerPreference: "high-performance" };

/** Asks `navigator.gpu` for the adapter tfjs would get, and describes it (or why there is none). */
export async function probeAdapter(): Promise<AdapterProbe> {
  if (!("gpu" in navigator) || !navigator.gpu) return { ok: false, reason: "no navigator.gpu" };
  ensureRuntimeDir();
  let adapter: GPUAdapter | null;
  try {
    adapter = await navigator.gpu.requestAdapter(POWER);
  } catch (e) {
    return { ok: false, reason: `requestAdapter failed: ${(e as Error).message}` };
  }
  if (!adapter) {
    return {
      ok: false,
      reason: "navigator.gpu.requestAdapter() gave no adapter (no Vulkan/Metal/D3D12 driver)",
    };
  }
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const description = info.description || `vendor ${info.vendor} device ${info.device}`;
  return { ok: true, description, software: isSoftwareAdapter(info) };
}

/** The first WebGPU validation/out-of-memory error: results after it are garbage, so stop. */
export class WebGpuError extends Error {
  override name = "WebGpuError";
}

let listening = false;

/**
 * Loads tfjs-backend-webgpu, makes it the active backend and registers our kernels. A device
 * error (which WebGPU reports asynchronously, leaving the affected results zero or stale) is
 * thrown as an uncaught WebGpuError, ending the process rather than training on wrong numbers.
 */
export async function initWebgpu(): Promise<void> {
  ensureRuntimeDir();
  await import("@tensorflow/tfjs-backend-webgpu");
  if (!(await tf.setBackend("webgpu"))) {
    throw new Error("could not initialise the tfjs webgpu backend");
  }
  await tf.ready();
  registerWebgpuKernels();
  if (!listening) {
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    device.addEventListener("uncapturederror", (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      throw new WebGpuError(
        `WebGPU device error (a kernel bug; results are invalid): ${err.message}`,
      );
    });
    listening = true;
  }
}
