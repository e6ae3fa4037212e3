/**
 * The UNet's operations (`UNetOps` from `unet.ts`) implemented with tfjs tensors, NHWC, plus
 * deterministic parameter initialisation from `paramSpecs`. The architecture itself lives only
 * in `unetForward`; this module supplies the maths of each op.
 */
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../shared/rng.ts";
import type { UNetConfig } from "../../shared/model_card.ts";
import {
  GROUP_NORM_EPS,
  type ParamSpec,
  paramSpecs,
  timestepFrequencies,
  unetForward,
  type UNetOps,
} from "./unet.ts";
import { groupNormSilu } from "../backends/kernels/group_norm_silu.ts";

/**
 * Standard deviation of "normal"-initialised parameters (label embeddings). 1, not the usual
 * 0.02: the label vector is added to the time embedding's MLP output, whose entries are O(1);
 * at 0.02 the labels were nearly invisible for the first few thousand steps (an A/B at c = 8 gave a
 * 5× larger label effect at std 1 after the same steps).
 */
export const NORMAL_INIT_STD = 1;

/**
 * UNetOps over tfjs tensors. `params` maps the names documented by `paramSpecs` to tensors
 * (usually `tf.Variable`s from `initParams`); a missing name throws.
 */
export function tfjsOps(params: Record<string, tf.Tensor>): UNetOps<tf.Tensor> {
  const p = (name: string): tf.Tensor => {
    const v = params[name];
    if (v === undefined) throw new Error(`missing UNet parameter "${name}"`);
    return v;
  };
  return {
    conv: (x, name, _cin, _cout, _k, stride) =>
      tf.fused.conv2d({
        x: x as tf.Tensor4D,
        filter: p(`${name}.w`) as tf.Tensor4D,
        bias: p(`${name}.b`),
        strides: stride,
        pad: "same",
      }),
    dense: (x, name) =>
      tf.fused.matMul({
        a: x as tf.Tensor2D,
        b: p(`${name}.w`) as tf.Tensor2D,
        bias: p(`${name}.b`),
      }),
    groupNorm: (x, name, c, groups, silu) => {
      if (x.shape[x.shape.length - 1] !== c) throw new Error(`groupNorm ${name}: expected ${c} ch`);
      return groupNormSilu(x, p(`${name}.g`), p(`${name}.b`), groups, silu, GROUP_NORM_EPS);
    },
    silu: (x) => tf.mul(x, tf.sigmoid(x)),
    add: (a, b) => tf.add(a, b),
    addPerChannel: (x, v) => tf.add(x, tf.reshape(v, [v.shape[0], 1, 1, -1])),
    concatChannels: (a, b) => tf.concat([a, b], 3),
    upsample2x: (x) => {
      const [, h, w] = x.shape;
      return tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [2 * h, 2 * w]);
    },
    // Both as reshape → 4-D transpose → reshape (rank ≤ 4 everywhere, gradients included).
    spaceToDepth: (x, b, c) => {
      const [n, h, w] = x.shape;
      const r = tf.reshape(x, [n * h / b, b, w / b, b * c]);
      return tf.reshape(tf.transpose(r, [0, 2, 1, 3]), [n, h / b, w / b, b * b * c]);
    },
    depthToSpace: (x, b, c) => {
      const [n, h, w] = x.shape;
      const r = tf.reshape(x, [n * h, w, b, b * c]);
      return tf.reshape(tf.transpose(r, [0, 2, 1, 3]), [n, h * b, w * b, c]);
    },
    attention: (q, k, v, c) => {
      const [n, h, w] = q.shape;
      const flat = (t: tf.Tensor) => tf.reshape(t, [n, h * w, c]) as tf.Tensor3D;
      const scores = tf.mul(tf.matMul(flat(q), flat(k), false, true), 1 / Math.sqrt(c));
      const out = tf.matMul(tf.softmax(scores), flat(v));
      return tf.reshape(out, [n, h, w, c]);
    },
    splitChannels: (x, parts) => tf.split(x, parts, 3),
    timestepEmbedding: (t, dim) => {
      const freqs = timestepFrequencies(dim);
      const args = tf.mul(tf.reshape(t, [-1, 1]), tf.tensor2d(freqs, [1, freqs.length]));
      return tf.concat([tf.sin(args), tf.cos(args)], 1);
    },
    // One-hot × table instead of gather: gather's gradient needs UnsortedSegmentSum, which the
    // wasm backend lacks; the matmul is tiny (rows ≤ 1001).
    embedding: (y, name, rows) =>
      tf.matMul(tf.oneHot(tf.cast(y, "int32") as tf.Tensor1D, rows), p(`${name}.w`) as tf.Tensor2D),
  };
}

/**
 * Fresh trainable parameters for `cfg`, deterministic for `seed` on every backend (values are
 * drawn in JS from the shared seeded Rng, in `paramSpecs` order): "he" ~ N(0, 2/fanIn),
 * "normal" ~ N(0, NORMAL_INIT_STD²), "zero", "one".
 */
export function initParams(cfg: UNetConfig, seed: number): Record<string, tf.Variable> {
  return initSpecParams(paramSpecs(cfg), seed);
}

/** `initParams` for any network's parameter specs (the classifier's too). */
export function initSpecParams(
  specs: readonly ParamSpec[],
  seed: number,
): Record<string, tf.Variable> {
  const rng = new Rng(seed >>> 0);
  const out: Record<string, tf.Variable> = {};
  for (const spec of specs) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (spec.init === "he" || spec.init === "normal") {
      rng.fillNormal(data);
      const std = spec.init === "he" ? Math.sqrt(2 / spec.fanIn) : NORMAL_INIT_STD;
      for (let i = 0; i < size; i++) data[i] *= std;
    } else if (spec.init === "one") {
      data.fill(1);
    }
    const t = tf.tensor(data, spec.shape, "float32");
    out[spec.name] = tf.variable(t, true);
    t.dispose();
  }
  return out;
}

/** ε̂(x, t, y) with tfjs: `unetForward(tfjsOps(params), cfg, x, t, y)`. x is [N,H,W,C]. */
export function forward(
  params: Record<string, tf.Tensor>,
  cfg: UNetConfig,
  x: tf.Tensor4D,
  t: tf.Tensor1D,
  y?: tf.Tensor1D,
): tf.Tensor4D {
  return unetForward(tfjsOps(params), cfg, x, t, y) as tf.Tensor4D;
}
