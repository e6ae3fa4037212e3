/**
 * One training step of the noise-aware classifier: draw a batch as the diffusion trainer does
 * (indices from the epoch sampler, then t uniform over 0…T−1 for every image, then ε for the
 * batch, all from the run's seeded JS RNGs, so a resumed run draws the same batches), noise it
 * to x_t = q_sample(x₀, t) (`noisedImages`, trainer/loop.ts), take the gradient of the
 * cross-entropy of the logits against the images' labels, clip its global norm, Adam at the
 * scheduled learning rate, then the EMA of the weights. The state type, the stream seeds, the lr
 * schedule, the EMA ramp and Adam's constants are the diffusion loop's.
 */
import * as tf from "@tensorflow/tfjs";
import { type Schedule } from "../../shared/schedule.ts";
import { Rng } from "../../shared/rng.ts";
import { BatchSampler, DataError, type Dataset, imageValues } from "../data/datasets.ts";
import {
  ADAM_DEFAULTS,
  emaDecayAt,
  noisedImages,
  NonFiniteError,
  type OptimConfig,
  optimLr,
  type SavedState,
  streamSeeds,
  type TrainState,
} from "../training/loop.ts";
import { type ClassifierConfig, classifierParamSpecs } from "./net.ts";
import { classifierLogits, initClassifierParams } from "./tfjs.ts";

type Vars = Record<string, tf.Variable>;

function variablesFrom(
  cfg: ClassifierConfig,
  values: Map<string, Float32Array> | null,
  trainable: boolean,
): Vars {
  const out: Vars = {};
  for (const s of classifierParamSpecs(cfg)) {
    const v = values?.get(s.name);
    out[s.name] = tf.tidy(() =>
      tf.variable(v ? tf.tensor(v, s.shape) : tf.zeros(s.shape), trainable)
    );
  }
  return out;
}

/** A fresh run: seeded parameters, EMA = parameters, zero moments, fresh data and noise streams. */
export function freshClassifierState(
  cfg: ClassifierConfig,
  seed: number,
  trainCount: number,
): TrainState {
  const seeds = streamSeeds(seed);
  const params = initClassifierParams(cfg, seeds.init);
  const ema: Vars = {};
  for (const [k, p] of Object.entries(params)) ema[k] = tf.variable(p.clone(), false);
  return {
    step: 0,
    params,
    ema,
    m: variablesFrom(cfg, null, false),
    v: variablesFrom(cfg, null, false),
    sampler: new BatchSampler(trainCount, seeds.data),
    noise: new Rng(seeds.noise),
  };
}

/** Rebuild a state from a checkpoint's exact float32 tensors and RNG states. */
export function restoreClassifierState(
  cfg: ClassifierConfig,
  s: SavedState,
  trainCount: number,
): TrainState {
  return {
    step: s.step,
    params: variablesFrom(cfg, s.params, true),
    ema: variablesFrom(cfg, s.ema, false),
    m: variablesFrom(cfg, s.adamM, false),
    v: variablesFrom(cfg, s.adamV, false),
    sampler: new BatchSampler(trainCount, s.sampler),
    noise: Rng.fromState(s.noise),
  };
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
  const idx = st.sampler.next(batch);
  const t = new Float32Array(batch);
  for (let i = 0; i < batch; i++) t[i] = st.noise.int(sched.T);
  const eps = st.noise.fillNormal(new Float32Array(batch * imageValues(data)));
  const xt = noisedImages(sched, data, idx, t, eps);
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
  const { beta1, beta2, epsilon } = ADAM_DEFAULTS;
  const n = st.step + 1;
  const lr = optimLr(n, { ...opt, condDrop: 0 });
  const names = Object.keys(st.params);
  const S = cfg.imageSize, C = cfg.inChannels;
  const side: { correct?: tf.Tensor } = {};
  const { loss, norm, grads } = tf.tidy(() => {
    const xt = tf.tensor4d(b.xt, [batch, S, S, C]);
    const t = tf.tensor1d(b.t);
    const y = tf.tensor1d(b.y, "int32");
    const vars = names.map((k) => st.params[k]);
    const { value, grads } = tf.variableGrads(() => {
      const logits = classifierLogits(st.params, cfg, xt, t);
      side.correct = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), "float32")));
      return crossEntropy(logits, y, cfg.numClasses);
    }, vars);
    const gs = vars.map((v) => grads[v.name]);
    const norm = tf.sqrt(tf.addN(gs.map((g) => tf.sum(tf.square(g)))));
    return { loss: value, norm, grads: gs };
  });
  const [lossV] = await loss.data();
  const [normV] = await norm.data();
  const [correctV] = await side.correct!.data();
  side.correct!.dispose();
  if (!Number.isFinite(lossV) || !Number.isFinite(normV)) {
    tf.dispose([loss, norm, ...grads]);
    throw new NonFiniteError(n, lossV, normV);
  }
  const scale = opt.gradClip > 0 && normV > opt.gradClip ? opt.gradClip / normV : 1;
  const bc1 = 1 - beta1 ** n, bc2 = 1 - beta2 ** n;
  const decay = emaDecayAt(n, opt.ema);
  tf.tidy(() => {
    names.forEach((k, i) => {
      const g = scale === 1 ? grads[i] : tf.mul(grads[i], scale);
      const m = tf.add(tf.mul(st.m[k], beta1), tf.mul(g, 1 - beta1));
      const v = tf.add(tf.mul(st.v[k], beta2), tf.mul(tf.square(g), 1 - beta2));
      const upd = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), epsilon));
      const p = tf.sub(st.params[k], tf.mul(upd, lr));
      st.m[k].assign(m);
      st.v[k].assign(v);
      st.params[k].assign(p);
      st.ema[k].assign(tf.add(tf.mul(st.ema[k], decay), tf.mul(p, 1 - decay)));
    });
  });
  tf.dispose([loss, norm, ...grads]);
  st.step = n;
  return { step: n, loss: lossV, accuracy: correctV / batch, gradNorm: normV, lr };
}
