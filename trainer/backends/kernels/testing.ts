/**
 * Test helpers for the wasm kernels: run the same computation on the pure-JS "cpu" backend
 * (the oracle) and on "wasm" with our kernels, and compare values and input gradients.
 */
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../../shared/rng.ts";

/** Input of a compared function: seeded N(0,1) data of a shape. */
export interface Input {
  shape: number[];
  data: Float32Array;
}

/** Seeded standard-normal input of `shape`. */
export function randomInput(shape: number[], seed: number): Input {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  new Rng(seed).fillNormal(data);
  return { shape, data };
}

/** Output and input gradients of f, as plain arrays. */
export interface Result {
  y: Float32Array;
  grads: Float32Array[];
}

/**
 * f's output and the gradients of Σ y·w (w a fixed pseudo-random weighting, so every output
 * element matters differently) with respect to every input, on backend `name`.
 */
export async function evaluate(
  name: "cpu" | "wasm",
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: Input[],
): Promise<Result> {
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} unavailable`);
  return tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.data, i.shape, "float32"));
    const y = f(...xs);
    const w = tf.sin(tf.mul(tf.reshape(tf.range(0, y.size), y.shape), 0.37));
    const g = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), w)));
    return {
      y: y.dataSync() as Float32Array,
      grads: g(xs).map((t) => t.dataSync() as Float32Array),
    };
  });
}

/** max |a − b| / max |b| (0 for equal arrays); throws on a length mismatch. */
export function relErr(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0, s = 1e-12;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return Number.isNaN(m) ? Infinity : m / s;
}

/** Worst relative error over output and gradients of f on wasm vs cpu. */
export async function wasmVsCpu(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: Input[],
): Promise<number> {
  const ref = await evaluate("cpu", f, inputs);
  const got = await evaluate("wasm", f, inputs);
  return Math.max(relErr(got.y, ref.y), ...got.grads.map((g, i) => relErr(g, ref.grads[i])));
}

/**
 * Replaces the cpu backend's ResizeNearestNeighborGrad, which is wrong at ×2 in tfjs 4.22 (it
 * loses gradient mass), by the exact adjoint of nearest resizing (alignCorners = false,
 * halfPixelCenters = false: source = min(floor(dst·in/out), in − 1)), so cpu can serve as the
 * oracle for graphs that upsample. Test processes only.
 */
export function installExactCpuResizeGrad(): void {
  const name = "ResizeNearestNeighborGrad";
  if (tf.getKernel(name, "cpu") !== undefined) tf.unregisterKernel(name, "cpu");
  tf.registerKernel({
    kernelName: name,
    backendName: "cpu",
    kernelFunc: ({ inputs, backend }) => {
      const { images, dy } = inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
      const cpu = backend as unknown as {
        data: { get(id: object): { values: Float32Array } };
        makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
      };
      const [B, H, W, C] = images.shape, [, oH, oW] = dy.shape;
      const d = cpu.data.get(dy.dataId).values, o = new Float32Array(B * H * W * C);
      for (let b = 0; b < B; b++) {
        for (let y = 0; y < oH; y++) {
          const sy = Math.min(Math.floor((y * H) / oH), H - 1);
          for (let x = 0; x < oW; x++) {
            const sx = Math.min(Math.floor((x * W) / oW), W - 1);
            for (let c = 0; c < C; c++) {
              o[((b * H + sy) * W + sx) * C + c] += d[((b * oH + y) * oW + x) * C + c];
            }
          }
        }
      }
      return cpu.makeTensorInfo(images.shape, "float32", o);
    },
  });
}
