/**
 * Conv2DBackpropInput for the tfjs wasm backend: the stock kernel is a naive loop
 * (~2 GFLOP/s). Default: the SIMD phase-class correlation of `conv2d.ts` (any stride, Ci a
 * multiple of 4). Fallback (`viaXnnpackConv`): an XNNPACK conv of dy with the rotated,
 * in/out-swapped filter, 10–12× faster than stock; strides > 1 zero-dilate dy first. NHWC.
 */
import * as tf from "@tensorflow/tfjs";
import { free, type KernelArgs, reshape, run, type TI } from "./wasm_util.ts";
import { convBackpropInput } from "./conv2d.ts";

/** When false, always use the XNNPACK formulation (benchmarks, experiments). */
export let useSimdBackpropInput = true;

/** Chooses the formulation (see `useSimdBackpropInput`). */
export function setSimdBackpropInput(on: boolean): void {
  useSimdBackpropInput = on;
}

/** dx = conv2d(dilate(dy), rot180(W) with in/out swapped, stride 1, explicit padding). */
export function conv2dBackpropInputKernel(args: unknown): TI {
  const { inputs, backend, attrs } = args as KernelArgs;
  const { dy, filter } = inputs;
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as {
    strides: number | [number, number];
    pad: "same" | "valid" | number | tf.backend_util.ExplicitPadding;
    dataFormat?: string;
    dimRoundingMode?: "floor" | "round" | "ceil";
    inputShape: [number, number, number, number];
  };
  if (dataFormat !== undefined && dataFormat !== "NHWC") {
    throw new Error(`Conv2DBackpropInput: only NHWC, got ${dataFormat}`);
  }
  const c = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    "channelsLast",
  );
  if (useSimdBackpropInput && dy.dtype === "float32" && filter.dtype === "float32") {
    const dx = convBackpropInput(backend, dy, filter, c);
    if (dx !== null) return dx;
  }
  const [B, Ho, Wo, Co] = dy.shape;
  const fh = c.filterHeight, fw = c.filterWidth, Ci = c.inChannels;
  const sh = c.strideHeight, sw = c.strideWidth, H = c.inHeight, W = c.inWidth;
  const rev = run("Reverse", backend, { x: filter }, { dims: [0, 1] });
  const wT = run("Transpose", backend, { x: rev }, { perm: [0, 1, 3, 2] }); // [fh, fw, Co, Ci]
  free(backend, rev);
  const tmp: TI[] = [];
  let d = dy, Hd = Ho, Wd = Wo;
  if (sh > 1 || sw > 1) {
    // Insert stride−1 zeros after every dy row/column: [B, Ho·sh, Wo·sw, Co].
    const d6 = reshape(backend, dy, [B, Ho, 1, Wo, 1, Co]);
    const p6 = run("PadV2", backend, { x: d6 }, {
      paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]],
      constantValue: 0,
    });
    Hd = Ho * sh;
    Wd = Wo * sw;
    d = reshape(backend, p6, [B, Hd, Wd, Co]);
    tmp.push(d6, p6, d);
  }
  const pt = fh - 1 - c.padInfo.top, pl = fw - 1 - c.padInfo.left;
  let pb = H + c.padInfo.top - Hd, pr = W + c.padInfo.left - Wd;
  if (pb < 0 || pr < 0) {
    const s = run("Slice", backend, { x: d }, {
      begin: [0, 0, 0, 0],
      size: [B, Hd + Math.min(pb, 0), Wd + Math.min(pr, 0), Co],
    });
    tmp.push(s);
    d = s;
    pb = Math.max(pb, 0);
    pr = Math.max(pr, 0);
  }
  if (pt < 0 || pl < 0) throw new Error("Conv2DBackpropInput: padding larger than the filter");
  const out = run("Conv2D", backend, { x: d, filter: wT }, {
    strides: [1, 1],
    pad: [[0, 0], [pt, pb], [pl, pr], [0, 0]],
    dataFormat: "NHWC",
    dilations: [1, 1],
    dimRoundingMode: undefined,
  });
  free(backend, wT, ...tmp);
  if (out.shape[1] !== H || out.shape[2] !== W || out.shape[3] !== Ci) {
    throw new Error(`Conv2DBackpropInput: got ${out.shape}, expected ${inputShape}`);
  }
  return out;
}
