/**
 * Is there a hardware WebGPU adapter? What `ORT_BACKEND=auto` needs to know, asked without
 * keeping the WebGPU runtime in the server when the answer is no. Requesting an adapter loads
 * the Vulkan loader and every installed driver (with Mesa: lavapipe and LLVM), ≈ 60–75 MB of
 * RSS that stays even when only a software adapter turns up (BENCHMARKS.md). So, cheapest first:
 *
 *   1. no `navigator.gpu` → no;
 *   2. where /dev can be listed (Linux; Deno grants that only with --allow-all): no DRM render
 *      node, /dev/nvidia<N> or /dev/dxg → no, without loading anything;
 *   3. otherwise the adapter is requested in a Worker that is terminated afterwards (its WebGPU
 *      instance goes with it; the drivers' shared libraries stay mapped), or in this isolate
 *      where Workers are unavailable;
 *   4. best of all, outside the process: `deno run edge/gpu_probe.ts` prints `webgpu` or `wasm`
 *      (nothing when ORT_BACKEND is set to something other than auto), and `deno task serve`
 *      hands that to the server as ORT_AUTO_BACKEND, so the server never loads a driver.
 *
 * As a Worker this module posts one boolean: whether a hardware adapter exists.
 */
import { isSoftwareAdapter } from "../shared/gpu_adapter.ts";
export { isSoftwareAdapter };

/**
 * Whether this machine can have a hardware GPU, from its device nodes (see 2. above): true
 * ("maybe") off Linux and wherever /dev cannot be listed.
 */
export function mayHaveGpu(
  os: string = Deno.build.os,
  list: (dir: string) => string[] | null = listDir,
): boolean {
  if (os !== "linux") return true;
  const dev = list("/dev");
  if (dev === null) return true;
  if (dev.some((n) => /^nvidia\d+$|^dxg$/.test(n))) return true;
  return (list("/dev/dri") ?? []).some((n) => /^(renderD|card)\d+$/.test(n));
}

function listDir(dir: string): string[] | null {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name);
  } catch (e) {
    // Absent (no /dev/dri without a GPU driver): nothing there. Not permitted: cannot tell.
    return e instanceof Deno.errors.NotFound ? [] : null;
  }
}

/** Request an adapter in this isolate: true for a hardware one. */
export async function requestHardwareAdapter(): Promise<boolean> {
  const gpu = (navigator as { gpu?: GPU }).gpu;
  if (!gpu) return false;
  try {
    const adapter = await gpu.requestAdapter();
    return adapter !== null && !isSoftwareAdapter(adapter.info);
  } catch {
    return false;
  }
}

/** Request an adapter in a short-lived Worker (falls back to this isolate without Workers). */
export async function requestInWorker(timeoutMs = 10_000): Promise<boolean> {
  let worker: Worker;
  try {
    worker = new Worker(import.meta.url, { type: "module" });
  } catch {
    return await requestHardwareAdapter();
  }
  try {
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      worker.onmessage = (e) => (clearTimeout(timer), resolve(e.data === true));
      worker.onerror = (e) => (e.preventDefault(), clearTimeout(timer), resolve(false));
    });
  } finally {
    worker.terminate();
  }
}

/** Whether a hardware adapter exists, loading as little as possible into this process. */
export async function hasHardwareAdapter(): Promise<boolean> {
  if (!("gpu" in navigator) || !mayHaveGpu()) return false;
  return await requestInWorker();
}

const scope = (globalThis as { WorkerGlobalScope?: new () => unknown }).WorkerGlobalScope;

if (scope !== undefined && globalThis instanceof scope) {
  requestHardwareAdapter().then((ok) => (self as unknown as Worker).postMessage(ok));
} else if (import.meta.main) {
  // CLI, for `deno task serve`: print auto's answer for ORT_AUTO_BACKEND.
  const choice = Deno.permissions.querySync({ name: "env", variable: "ORT_BACKEND" }).state ===
      "granted"
    ? Deno.env.get("ORT_BACKEND") || "auto"
    : "auto";
  if (choice === "auto") {
    const found = "gpu" in navigator && mayHaveGpu() && await requestHardwareAdapter();
    console.log(found ? "webgpu" : "wasm");
  }
}
