/**
 * Sum for the tfjs wasm backend when the reduced axes are contiguous (bias gradients reduce
 * [N, H, W] of [N, H, W, C]): instead of the stock kernel's transpose-then-reduce, leading-axes
 * sums with C % 4 == 0 run on the SIMD channel-sum kernel (float32 over chunks of rows, float64
 * across chunks), others in one JS pass with float64 accumulators. Other cases go to the stock
 * kernel.
 */
import { free, heap, type KernelArgs, original, sizeOf, type TI } from "./wasm_util.ts";
import { addr, simdKernels } from "./simd.ts";

/** Rows per SIMD partial sum (float32 inside, partials added in float64). */
export const SUM_CHUNK_ROWS = 1024;

/** The registered kernel. */
export function sumKernel(args: unknown): TI {
  const { inputs, backend, attrs } = args as KernelArgs;
  const { x } = inputs;
  const r = x.shape.length;
  const axisAttr = attrs.axis as number | number[] | null | undefined;
  const raw = axisAttr == null
    ? [...Array(r).keys()]
    : Array.isArray(axisAttr)
    ? axisAttr
    : [axisAttr];
  const axes = [...new Set(raw.map((a) => (a < 0 ? a + r : a)))].sort((p, q) => p - q);
  const contiguous = axes.length > 0 && axes[axes.length - 1] - axes[0] === axes.length - 1;
  if (x.dtype !== "float32" || !contiguous) return original("Sum")(args as never) as TI;
  const outer = sizeOf(x.shape.slice(0, axes[0]));
  const reduced = sizeOf(axes.map((a) => x.shape[a]));
  const inner = sizeOf(x.shape.slice(axes[axes.length - 1] + 1));
  const outShape = attrs.keepDims === true
    ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : x.shape.filter((_, i) => !axes.includes(i));
  const out = backend.makeOutput(outShape, "float32");
  if (inner % 4 === 0 && reduced > 0) {
    // Per-channel sums (bias and per-sample-vector gradients): SIMD over channels in chunks
    // of rows.
    const scratch = backend.makeOutput([3 * inner], "float32"); // zero shift | Σ | Σ²
    const k = simdKernels(backend);
    const xa = addr(backend, x), ta = addr(backend, scratch);
    const t = heap(backend, scratch), acc = new Float64Array(inner);
    const res = new Float32Array(outer * inner);
    t.fill(0, 0, inner);
    for (let a = 0; a < outer; a++) {
      acc.fill(0);
      for (let r0 = 0; r0 < reduced; r0 += SUM_CHUNK_ROWS) {
        const n = Math.min(SUM_CHUNK_ROWS, reduced - r0);
        k.gnStats(xa + 4 * (a * reduced + r0) * inner, n, inner, ta, ta + 4 * inner);
        for (let c = 0; c < inner; c++) acc[c] += t[inner + c];
      }
      res.set(acc, a * inner);
    }
    heap(backend, out).set(res);
    free(backend, scratch);
    return out;
  }
  const xs = heap(backend, x), o = heap(backend, out);
  const acc = new Float64Array(inner);
  for (let a = 0; a < outer; a++) {
    acc.fill(0);
    const base = a * reduced * inner;
    for (let i = 0; i < reduced; i++) {
      const off = base + i * inner;
      for (let c = 0; c < inner; c++) acc[c] += xs[off + c];
    }
    for (let c = 0; c < inner; c++) o[a * inner + c] = acc[c];
  }
  return out;
}
