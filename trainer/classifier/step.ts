/**
 * One training step of the noise-aware classifier: draw a batch as the diffusion trainer does
 * (`drawNoised`, trainer/training/loop.ts: indices from the epoch sampler, then t uniform over
 * 0…T−1 for every image, then ε for the batch, all from the run's seeded JS RNGs, so a resumed run
 * draws the same batches, and x_t = q_sample(x₀, t)), take the gradient of the cross-entropy of
 * the logits against the images' labels, then the diffusion loop's update (`adamUpdate`: clip the
 * global norm, Adam at the scheduled learning rate, the EMA of the weights). The state and its
 * fresh and restored forms, the stream seeds, the lr schedule, the EMA ramp and Adam's constants
 * are the diffusion loop's too.
 */
import * as tf from "@tensorflow/tfjs";
import { type Schedule } from "../../shared/schedule.ts";
import { DataError, type Dataset } from "../data/datasets.ts";
import {
  ADAM_DEFAULTS,
  adamUpdate,
  drawNoised,
  freshStateOf,
  lossGradients,
  type OptimConfig,
  optimLr,
  restoreStateOf,
  type SavedState,
  type TrainState,
} from "../training/loop.ts";
import { type ClassifierConfig, classifierParamSpecs } from "./net.ts";
import { classifierLogits, initClassifierParams } from "./tfjs.ts";

/** A fresh run: seeded parameters, EMA = parameters, zero moments, fresh data and noise streams. */
export function freshClassifierState(
  cfg: ClassifierConfig,
  seed: number,
  trainCount: number,
): TrainState {
  return freshStateOf(
    classifierParamSpecs(cfg),
    (s) => initClassifierParams(cfg, s),
    seed,
    trainCount,
  );
}

/** Rebuild a state from a checkpoint's exact float32 tensors and RNG states. */
export function restoreClassifierState(
  cfg: ClassifierConfig,
  s: SavedState,
  trainCount: number,
): TrainState {
  return restoreStateOf(classifierParamSpecs(cfg), s, trainCount);
}

export interface ClassifierBatch {
  xt: Float32Array;
  t: Float32Array;
  y: Int32Array;
}

/** Draw indices, then t per image, then ε for the batch (the resume contract's order). */
export function drawClassifierBatch(
  st: TrainState,
  data: Dataset,
  sched: Schedule,
  batch: number,
): ClassifierBatch {
  if (!data.labels) {
    throw new DataError("the classifier needs labelled data (one subfolder per class)");
  }
  const { idx, t, xt } = drawNoised(st, data, sched, batch);
  return { xt, t, y: Int32Array.from(idx, (j) => data.labels![j]) };
}

/** Mean cross-entropy of logits [N, K] against labels y [N]. */
export function crossEntropy(logits: tf.Tensor2D, y: tf.Tensor1D, k: number): tf.Scalar {
  return tf.tidy(() =>
    tf.neg(
      tf.mean(
        tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(tf.cast(y, "int32") as tf.Tensor1D, k)), 1),
      ),
    )
  );
}

export interface ClassifierStepResult {
  step: number;
  loss: number;
  /** Accuracy of the batch's own logits (before the update). */
  accuracy: number;
  gradNorm: number;
  lr: number;
}

/** One optimisation step (mutates `st`); throws NonFiniteError without updating anything. */
export async function classifierStep(
  st: TrainState,
  data: Dataset,
  sched: Schedule,
  cfg: ClassifierConfig,
  batch: number,
  opt: Pick<
    OptimConfig,
    "lr" | "warmup" | "ema" | "gradClip" | "lrSchedule" | "lrMin" | "lrDecaySteps"
  >,
): Promise<ClassifierStepResult> {
  const b = drawClassifierBatch(st, data, sched, batch);
  const n = st.step + 1;
  const lr = optimLr(n, { ...opt, condDrop: 0 });
  const names = Object.keys(st.params);
  const S = cfg.imageSize, C = cfg.inChannels;
  const side: { correct?: tf.Tensor } = {};
  const g = tf.tidy(() => {
    const xt = tf.tensor4d(b.xt, [batch, S, S, C]);
    const t = tf.tensor1d(b.t);
    const y = tf.tensor1d(b.y, "int32");
    return lossGradients(st.params, names, () => {
      const logits = classifierLogits(st.params, cfg, xt, t);
      side.correct = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), "float32")));
      return crossEntropy(logits, y, cfg.numClasses);
    });
  });
  const [correctV] = await side.correct!.data();
  side.correct!.dispose();
  const r = await adamUpdate(st, names, g, lr, opt, ADAM_DEFAULTS);
  return { step: n, loss: r.loss, accuracy: correctV / batch, gradNorm: r.gradNorm, lr };
}
