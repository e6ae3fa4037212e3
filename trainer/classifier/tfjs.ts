/**
 * The classifier in tfjs (NHWC): the UNet's tfjs ops (`tfjs_ops.ts`) plus a mean pool, seeded
 * parameter initialisation, logits and the reference gradient ∇ₓ log softmax(f(x, t))[y] by
 * `tf.grad` (what the exported gradient graph is tested against).
 */
import * as tf from "@tensorflow/tfjs";
import { initSpecParams, tfjsOps } from "../network/tfjs_ops.ts";
import {
  type ClassifierConfig,
  classifierForward,
  type ClassifierOps,
  classifierParamSpecs,
} from "./net.ts";

export function classifierTfjsOps(params: Record<string, tf.Tensor>): ClassifierOps<tf.Tensor> {
  return { ...tfjsOps(params), meanPool: (x) => tf.mean(x, [1, 2]) };
}

/** Logits [N, K] of images x [N,H,W,C] at timesteps t [N] (floats). */
export function classifierLogits(
  params: Record<string, tf.Tensor>,
  cfg: ClassifierConfig,
  x: tf.Tensor4D,
  t: tf.Tensor1D,
): tf.Tensor2D {
  return classifierForward(classifierTfjsOps(params), cfg, x, t) as tf.Tensor2D;
}

/**
 * Fresh parameters, the same on every backend for a seed (drawn in JS in spec order by the UNet's
 * `initSpecParams`): "he" ~ N(0, 2/fanIn), "zero", "one".
 */
export function initClassifierParams(
  cfg: ClassifierConfig,
  seed: number,
): Record<string, tf.Variable> {
  return initSpecParams(classifierParamSpecs(cfg), seed);
}

/** Tensors from host arrays by parameter name (frozen weights: export, tests). */
export function paramTensors(
  cfg: ClassifierConfig,
  weights: Map<string, Float32Array>,
): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const s of classifierParamSpecs(cfg)) {
    const v = weights.get(s.name);
    if (!v) throw new Error(`missing classifier parameter "${s.name}"`);
    out[s.name] = tf.tensor(v, s.shape);
  }
  return out;
}

/**
 * ∇ₓ log softmax(f(x, t))[y] per row (each row's log-probability depends on its own image
 * only, so the gradient of their sum is every row's own gradient), and the logits.
 */
export function classifierGrad(
  params: Record<string, tf.Tensor>,
  cfg: ClassifierConfig,
  x: tf.Tensor4D,
  t: tf.Tensor1D,
  y: tf.Tensor1D,
): { grad: tf.Tensor4D; logits: tf.Tensor2D } {
  return tf.tidy(() => {
    const onehot = tf.oneHot(tf.cast(y, "int32") as tf.Tensor1D, cfg.numClasses);
    const f = (xx: tf.Tensor) =>
      tf.sum(tf.mul(tf.logSoftmax(classifierLogits(params, cfg, xx as tf.Tensor4D, t)), onehot));
    const grad = tf.grad(f)(x) as tf.Tensor4D;
    return { grad, logits: classifierLogits(params, cfg, x, t) };
  });
}
