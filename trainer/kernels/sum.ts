/**
 * Sum for the tfjs wasm backend when the reduced axes are contiguous (bias gradients reduce
 * [N, H, W] of [N, H, W, C]): one JS pass with float64 accumulators instead of the stock
 * kernel's transpose-then-reduce. Other cases go to the stock kernel.
 */
import { heap, type KernelArgs, original, sizeOf, type TI } from "./wasm_util.ts";

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
