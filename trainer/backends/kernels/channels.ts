/**
 * Channel-axis data movement for the tfjs wasm backend on the SIMD helpers of `simd.ts`:
 * SplitV and Concat along the last axis (the UNet's skip concatenations and their gradients,
 * and the q/k/v split), and the gradient of nearest ×2 upsampling. The stock kernels go
 * through generic strided slices / copies (2–5× slower here). Cases outside what these handle
 * (another axis, channel counts not a multiple of 4, other resize factors) use the stock ones.
 */
import * as tf from "@tensorflow/tfjs";
import { type KernelArgs, original, sizeOf, type TI } from "./wasm_util.ts";
import { addr, simdKernels } from "./simd.ts";

function lastAxis(axis: unknown, rank: number): boolean {
  const a = Array.isArray(axis) ? axis[0] : axis;
  return typeof a === "number" && (a === rank - 1 || a === -1);
}

/** SplitV along the last axis into parts of 4k channels. */
export function splitVKernel(args: unknown): TI[] {
  const { inputs, backend, attrs } = args as KernelArgs;
  const { x } = inputs;
  const rank = x.shape.length;
  if (x.dtype === "float32" && rank >= 2 && lastAxis(attrs.axis, rank) && sizeOf(x.shape) > 0) {
    const sizes = tf.backend_util.prepareSplitSize(
      x,
      attrs.numOrSizeSplits as number | number[],
      rank - 1,
    );
    if (sizes.every((s) => s > 0 && s % 4 === 0)) {
      const C = x.shape[rank - 1], rows = sizeOf(x.shape) / C;
      const outs = sizes.map((s) => backend.makeOutput([...x.shape.slice(0, -1), s], "float32"));
      const k = simdKernels(backend);
      const xa = addr(backend, x);
      let c0 = 0;
      for (const [i, s] of sizes.entries()) {
        k.copyRows(xa + 4 * c0, addr(backend, outs[i]), rows, 4 * s, 4 * C, 4 * s);
        c0 += s;
      }
      return outs;
    }
  }
  return original("SplitV")(args as never) as unknown as TI[];
}

/** Concat along the last axis of parts with 4k channels each. */
export function concatKernel(args: unknown): TI {
  const { inputs, backend, attrs } = args as KernelArgs;
  const parts = Object.values(inputs) as TI[];
  const first = parts[0];
  const rank = first?.shape.length ?? 0;
  const ok = parts.length > 1 && rank >= 2 && lastAxis(attrs.axis, rank) &&
    parts.every((p) =>
      p.dtype === "float32" && p.shape.length === rank && p.shape[rank - 1] % 4 === 0 &&
      p.shape[rank - 1] > 0 && p.shape.slice(0, -1).join() === first.shape.slice(0, -1).join()
    );
  if (ok) {
    const C = parts.reduce((a, p) => a + p.shape[rank - 1], 0);
    const rows = sizeOf(first.shape.slice(0, -1));
    if (rows > 0) {
      const out = backend.makeOutput([...first.shape.slice(0, -1), C], "float32");
      const k = simdKernels(backend);
      const oa = addr(backend, out);
      let c0 = 0;
      for (const p of parts) {
        const s = p.shape[rank - 1];
        k.copyRows(addr(backend, p), oa + 4 * c0, rows, 4 * s, 4 * s, 4 * C);
        c0 += s;
      }
      return out;
    }
  }
  return original("Concat")(args as never) as TI;
}

/** ResizeNearestNeighborGrad for an exact ×2 upsampling (alignCorners false). */
export function resizeNearestGradKernel(args: unknown): TI {
  const { inputs, backend, attrs } = args as KernelArgs;
  const { images, dy } = inputs;
  const [B, H, W, C] = images.shape;
  if (
    dy.dtype === "float32" && attrs.alignCorners !== true && C % 4 === 0 && C > 0 &&
    dy.shape[0] === B && dy.shape[1] === 2 * H && dy.shape[2] === 2 * W && dy.shape[3] === C &&
    B * H * W > 0
  ) {
    const dx = backend.makeOutput([B, H, W, C], "float32");
    simdKernels(backend).pool2(addr(backend, dy), addr(backend, dx), B * H, W, C);
    return dx;
  }
  return original("ResizeNearestNeighborGrad")(args as never) as TI;
}
