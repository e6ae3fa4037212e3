/**
 * Conv2D / FusedConv2D (bias only) and Conv2DBackpropInput for the tfjs wasm backend through
 * the direct SIMD convolution of `simd.ts` (fused multiply-add; no im2col). NHWC, any stride,
 * dilation 1, output channels (Co forward, Ci for the input gradient) a multiple of 4; other
 * cases return null and the caller uses the stock kernels.
 *
 * The input is copied once into a zero-padded buffer so every tap is in range. The input
 * gradient of a stride-s conv is split into s² phase classes (the dx pixels with the same
 * (ih mod s, iw mod s)): each is a stride-1 correlation of the padded dy with the sub-filter of
 * the taps that reach it (rotated, in/out channels swapped), written to every s-th dx pixel. So
 * no zero-dilated dy and no multiplications by zeros.
 */
import * as tf from "@tensorflow/tfjs";
import { free, heap, type KernelArgs, original, type TI, type WasmBackend } from "./wasm_util.ts";
import { addr, simdKernels } from "./simd.ts";

/** x [B, H, W, C] with zero rows/columns added; x itself when nothing is added. */
export function padNHWC(
  backend: WasmBackend,
  x: TI,
  top: number,
  bottom: number,
  left: number,
  right: number,
): TI {
  if (top === 0 && bottom === 0 && left === 0 && right === 0) return x;
  const [B, H, W, C] = x.shape;
  const Hp = H + top + bottom, Wp = W + left + right;
  const out = backend.makeOutput([B, Hp, Wp, C], "float32");
  const o = heap(backend, out), s = heap(backend, x);
  const rowIn = W * C, rowOut = Wp * C;
  for (let b = 0; b < B; b++) {
    const ob = b * Hp * rowOut;
    o.fill(0, ob, ob + top * rowOut);
    for (let i = 0; i < H; i++) {
      const d = ob + (top + i) * rowOut, src = (b * H + i) * rowIn;
      if (left > 0) o.fill(0, d, d + left * C);
      o.set(s.subarray(src, src + rowIn), d + left * C);
      if (right > 0) o.fill(0, d + (left + W) * C, d + rowOut);
    }
    o.fill(0, ob + (top + H) * rowOut, ob + Hp * rowOut);
  }
  return out;
}

/** y = conv(x, filter) (+ bias): [B, Ho, Wo, Co], or null if unsupported. */
export function convForward(
  backend: WasmBackend,
  x: TI,
  filter: TI,
  bias: TI | null,
  c: tf.backend_util.Conv2DInfo,
): TI | null {
  const [B, H, W, Ci] = x.shape;
  const { outHeight: Ho, outWidth: Wo, outChannels: Co } = c;
  const fh = c.filterHeight, fw = c.filterWidth, sh = c.strideHeight, sw = c.strideWidth;
  if (c.dilationHeight !== 1 || c.dilationWidth !== 1 || Co % 4 !== 0) return null;
  if (bias !== null && bias.shape.reduce((a, b) => a * b, 1) !== Co) return null;
  const top = c.padInfo.top, left = c.padInfo.left;
  const bottom = Math.max(0, (Ho - 1) * sh + fh - H - top);
  const right = Math.max(0, (Wo - 1) * sw + fw - W - left);
  const xp = padNHWC(backend, x, top, bottom, left, right);
  const Hp = xp.shape[1], Wp = xp.shape[2];
  const y = backend.makeOutput([B, Ho, Wo, Co], "float32");
  const k = simdKernels(backend);
  const xa = addr(backend, xp), wa = addr(backend, filter), ya = addr(backend, y);
  const ba = bias === null ? 0 : addr(backend, bias);
  const xRowB = Wp * Ci * 4;
  for (let b = 0; b < B; b++) {
    k.conv(
      xa + b * Hp * xRowB,
      wa,
      ba,
      ya + b * Ho * Wo * Co * 4,
      Ho,
      Wo,
      sh * xRowB,
      sw * Ci * 4,
      Wo * Co * 4,
      Co * 4,
      fh,
      fw,
      xRowB,
      Ci * 4,
      Ci,
      Co,
    );
  }
  if (xp !== x) free(backend, xp);
  return y;
}

/** One phase class of the input gradient along one axis. */
interface Phase {
  /** First dx index of the class (= its phase), number of dx indices in it. */
  start: number;
  count: number;
  /** Filter taps reaching it, in the order the correlation walks them (descending). */
  taps: number[];
  /** dy index of the first tap for the class's first dx index. */
  offset: number;
}

/** Phase classes along an axis: dx size n, dy size no, filter size f, stride s, padding pad. */
function phases(n: number, f: number, s: number, pad: number): Phase[] {
  const out: Phase[] = [];
  for (let ph = 0; ph < Math.min(s, n); ph++) {
    const taps: number[] = [];
    for (let k = f - 1; k >= 0; k--) if ((((ph + pad - k) % s) + s) % s === 0) taps.push(k);
    const count = Math.ceil((n - ph) / s);
    const offset = taps.length > 0 ? (ph + pad - taps[0]) / s : 0;
    out.push({ start: ph, count, taps, offset });
  }
  return out;
}

/** dx of conv(x, filter) for dy: [B, H, W, Ci] (inputShape), or null if unsupported. */
export function convBackpropInput(
  backend: WasmBackend,
  dy: TI,
  filter: TI,
  c: tf.backend_util.Conv2DInfo,
): TI | null {
  const [B, Ho, Wo, Co] = dy.shape;
  const { inHeight: H, inWidth: W, inChannels: Ci } = c;
  const fh = c.filterHeight, fw = c.filterWidth, sh = c.strideHeight, sw = c.strideWidth;
  if (c.dilationHeight !== 1 || c.dilationWidth !== 1 || Ci % 4 !== 0) return null;
  const rows = phases(H, fh, sh, c.padInfo.top), cols = phases(W, fw, sw, c.padInfo.left);
  // Padding of dy so that every tap of every class reads inside the buffer.
  let pt = 0, pb = 0, pl = 0, pr = 0;
  for (const r of rows) {
    if (r.taps.length === 0) continue;
    pt = Math.max(pt, -r.offset);
    pb = Math.max(pb, r.offset + r.count - 1 + r.taps.length - 1 - (Ho - 1));
  }
  for (const q of cols) {
    if (q.taps.length === 0) continue;
    pl = Math.max(pl, -q.offset);
    pr = Math.max(pr, q.offset + q.count - 1 + q.taps.length - 1 - (Wo - 1));
  }
  const dp = padNHWC(backend, dy, pt, pb, pl, pr);
  const Hp = dp.shape[1], Wp = dp.shape[2];
  const dx = backend.makeOutput([B, H, W, Ci], "float32");
  const empty = rows.some((r) => r.taps.length === 0) || cols.some((q) => q.taps.length === 0);
  if (empty) heap(backend, dx).fill(0);
  const k = simdKernels(backend);
  for (const r of rows) {
    for (const q of cols) {
      const na = r.taps.length, nb = q.taps.length;
      if (na === 0 || nb === 0 || r.count <= 0 || q.count <= 0) continue;
      // Sub-filter [na, nb, Co, Ci]: tap (a, b) = W[r.taps[a], q.taps[b]] with ci/co swapped.
      const sub = backend.makeOutput([na, nb, Co, Ci], "float32");
      {
        const sf = heap(backend, sub), wf = heap(backend, filter);
        for (let a = 0; a < na; a++) {
          for (let bb = 0; bb < nb; bb++) {
            const src = (r.taps[a] * fw + q.taps[bb]) * Ci * Co, dst = (a * nb + bb) * Co * Ci;
            for (let ci = 0; ci < Ci; ci++) {
              for (let co = 0; co < Co; co++) sf[dst + co * Ci + ci] = wf[src + ci * Co + co];
            }
          }
        }
      }
      const da = addr(backend, dp), xa = addr(backend, dx), sa = addr(backend, sub);
      const dRowB = Wp * Co * 4;
      for (let b = 0; b < B; b++) {
        k.conv(
          da + (b * Hp + r.offset + pt) * dRowB + (q.offset + pl) * Co * 4,
          sa,
          0,
          xa + ((b * H + r.start) * W + q.start) * Ci * 4,
          r.count,
          q.count,
          dRowB,
          Co * 4,
          sh * W * Ci * 4,
          sw * Ci * 4,
          na,
          nb,
          dRowB,
          Co * 4,
          Co,
          Ci,
        );
      }
      free(backend, sub);
    }
  }
  if (dp !== dy) free(backend, dp);
  return dx;
}

function info(
  x: TI,
  filter: TI,
  attrs: Record<string, unknown>,
): tf.backend_util.Conv2DInfo | null {
  const { strides, pad, dataFormat, dilations, dimRoundingMode } = attrs as {
    strides: number | [number, number];
    pad: "same" | "valid" | number | tf.backend_util.ExplicitPadding;
    dataFormat?: string;
    dilations?: number | [number, number];
    dimRoundingMode?: "floor" | "round" | "ceil";
  };
  if (dataFormat !== undefined && dataFormat !== "NHWC") return null;
  if (x.dtype !== "float32" || filter.dtype !== "float32") return null;
  return tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    strides,
    dilations ?? 1,
    pad,
    dimRoundingMode,
    false,
    "channelsLast",
  );
}

/** Conv2D kernel: the SIMD convolution, else the stock one. */
export function conv2dKernel(args: unknown): TI {
  const { inputs, backend, attrs } = args as KernelArgs;
  const { x, filter } = inputs;
  const c = info(x, filter, attrs);
  const y = c === null ? null : convForward(backend, x, filter, null, c);
  return y ?? original("Conv2D")(args as never) as TI;
}

/** FusedConv2D kernel: the SIMD convolution with bias and no activation, else the stock one. */
export function fusedConv2dKernel(args: unknown): TI {
  const { inputs, backend, attrs } = args as KernelArgs;
  const { x, filter, bias } = inputs;
  const activation = attrs.activation as string | undefined;
  const linear = activation === undefined || activation === "linear";
  const c = linear && inputs.preluActivationWeights === undefined ? info(x, filter, attrs) : null;
  const y = c === null || (bias !== undefined && bias.dtype !== "float32")
    ? null
    : convForward(backend, x, filter, bias ?? null, c);
  return y ?? original("FusedConv2D")(args as never) as TI;
}
