/**
 * Registers the project's fixes on the tfjs "webgpu" backend (idempotent; call after
 * `tf.setBackend("webgpu")`). Each is tested against the `cpu` backend beside it.
 *
 * - AddN: chunked so it never exceeds the device's storage-buffer limit (`add_n.ts`).
 *
 * Everything else our UNet's training step uses (the convolutions and both their gradients,
 * GroupNorm from moments, attention matmuls, softmax, resize and its gradient, concat/split,
 * one-hot) matches the wasm backend to float32 rounding (`trainer/backends/webgpu_test.ts`).
 */
import * as tf from "@tensorflow/tfjs";
import { chunkedAddN } from "./add_n.ts";

const BACKEND = "webgpu";

/** Kernel names this module replaces on the webgpu backend. */
export const WEBGPU_KERNELS = ["AddN"] as const;

let registered = false;

export function registerWebgpuKernels(): void {
  if (registered) return;
  const stock = tf.getKernel("AddN", BACKEND);
  if (stock === undefined) throw new Error("tfjs-backend-webgpu is not loaded (no AddN kernel)");
  tf.unregisterKernel("AddN", BACKEND);
  tf.registerKernel({
    kernelName: "AddN",
    backendName: BACKEND,
    kernelFunc: chunkedAddN(stock.kernelFunc as never) as unknown as tf.KernelFunc,
  });
  registered = true;
}
