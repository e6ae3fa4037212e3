/**
 * AddN for tfjs-backend-webgpu 4.22. The stock kernel binds every input plus the output as
 * storage buffers of one shader; with more inputs than `maxStorageBuffersPerShaderStage − 1`
 * (7 on the default limits) the pipeline is invalid, WebGPU reports that asynchronously and the
 * result — and everything else in the same submission, such as the step's loss — silently reads
 * as zeros or stale values. The trainer's global gradient norm adds one scalar per parameter
 * tensor (86 for the smallest UNet). This kernel sums in chunks the stock kernel can bind.
 */
import type * as tf from "@tensorflow/tfjs";

type AddNArgs = {
  inputs: tf.TensorInfo[];
  backend: { device: GPUDevice; disposeData(id: object): boolean };
  attrs: tf.NamedAttrMap;
};
type AddNFunc = (args: AddNArgs) => tf.TensorInfo;

/** Most inputs one stock AddN dispatch may take on `device`. */
export function maxAddNInputs(device: GPUDevice): number {
  return Math.max(2, device.limits.maxStorageBuffersPerShaderStage - 1);
}

/** Wraps the stock AddN so that it never binds more inputs than the device allows. */
export function chunkedAddN(stock: AddNFunc): AddNFunc {
  return ({ inputs, backend, attrs }) => {
    const max = maxAddNInputs(backend.device);
    let level = inputs;
    const temps: tf.TensorInfo[] = [];
    while (level.length > max) {
      const next: tf.TensorInfo[] = [];
      for (let i = 0; i < level.length; i += max) {
        const chunk = level.slice(i, i + max);
        if (chunk.length === 1) {
          next.push(chunk[0]);
        } else {
          const r = stock({ inputs: chunk, backend, attrs });
          temps.push(r);
          next.push(r);
        }
      }
      level = next;
    }
    const out = stock({ inputs: level, backend, attrs });
    // The backend keeps buffers alive until the queued commands that use them are submitted.
    for (const t of temps) backend.disposeData(t.dataId);
    return out;
  };
}
