/**
 * One training step of the UNet: draw a batch, noise it (x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, t and ε
 * from the seeded JS RNG), take the gradient of the loss (l2 or l1) between the network's output
 * and its target (ε, v or x₀: shared/prediction.ts `target`), clip its global norm, apply Adam at
 * the scheduled learning rate (trainer/training/lr_schedule.ts), then update the EMA of the
 * weights.
 *
 * Adam is written out on tensors (not tf.train.adam) so that its moments are plain variables that
 * checkpoints save and restore exactly. The loss and gradient norm are read before the update: a
 * non-finite value throws NonFiniteError and leaves the weights, moments and EMA untouched.
 */
import * as tf from "@tensorflow/tfjs";
import type { UNetConfig } from "../../shared/model_card.ts";
import { qSample, type Schedule } from "../../shared/schedule.ts";
import { Rng, type RngState } from "../../shared/rng.ts";
import { type ParamSpec, paramSpecs, specsSize } from "../network/unet.ts";
import { forward, initParams } from "../network/tfjs_ops.ts";
import {
  BatchSampler,
  DataError,
  type Dataset,
  imageValues,
  type SamplerState,
} from "../data/datasets.ts";
import { type Prediction, target } from "../../shared/prediction.ts";
import { type LrScheduleKind, scheduledLr } from "./lr_schedule.ts";

export interface OptimConfig {
  lr: number;
  warmup: number;
  /** EMA decay (the effective decay ramps up as min(ema, (1+n)/(10+n)) over the first steps). */
  ema: number;
  /** Global grad-norm clip (0 = none). */
  gradClip: number;
  /** Fraction of labels replaced by the null class (conditional models). */
  condDrop: number;
  /** After the warm-up (default constant); decaying ones reach lrMin at lrDecaySteps. */
  lrSchedule?: LrScheduleKind;
  lrMin?: number;
  lrDecaySteps?: number;
  /** Per-pixel loss (default l2). */
  loss?: "l2" | "l1";
  /** Training target (default epsilon). */
  prediction?: Prediction;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}

export const ADAM_DEFAULTS = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };

/** Learning rate of update number n (1-based): linear warm-up to `lr` over `warmup` updates. */
export function lrAt(n: number, lr: number, warmup: number): number {
  return warmup > 0 ? lr * Math.min(1, n / warmup) : lr;
}

/** The learning rate of update n under `opt`'s schedule. */
export function optimLr(n: number, opt: OptimConfig): number {
  return scheduledLr(n, {
    kind: opt.lrSchedule ?? "constant",
    lr: opt.lr,
    warmup: opt.warmup,
    min: opt.lrMin ?? 0,
    decaySteps: opt.lrDecaySteps ?? 0,
  });
}

/** EMA decay used at update n (1-based): short-run friendly ramp, capped at `decay`. */
export function emaDecayAt(n: number, decay: number): number {
  return Math.min(decay, (1 + n) / (10 + n));
}

export class NonFiniteError extends Error {
  override name = "NonFiniteError";
  constructor(readonly step: number, readonly loss: number, readonly gradNorm: number) {
    super(`loss became non-finite at step ${step} (loss ${loss}, grad norm ${gradNorm})`);
  }
}

type Vars = Record<string, tf.Variable>;

/** Everything that changes during training and is saved in a checkpoint. */
export interface TrainState {
  /** Updates applied so far. */
  step: number;
  params: Vars;
  ema: Vars;
  m: Vars;
  v: Vars;
  sampler: BatchSampler;
  /** Source of t, ε and label dropout. */
  noise: Rng;
}

/** Seeds of the independent random streams of a run. */
export function streamSeeds(seed: number): { init: number; data: number; noise: number } {
  return { init: seed >>> 0, data: (seed + 0x51ed27) >>> 0, noise: (seed + 0xa3c59ac3) >>> 0 };
}

/** A variable per parameter of `specs`: its value in `values`, zeros when none is given. */
function specVariables(
  specs: readonly ParamSpec[],
  values: Map<string, Float32Array> | null,
  trainable: boolean,
): Vars {
  const out: Vars = {};
  for (const s of specs) {
    const v = values?.get(s.name);
    out[s.name] = tf.tidy(() =>
      tf.variable(v ? tf.tensor(v, s.shape) : tf.zeros(s.shape), trainable)
    );
  }
  return out;
}

/** A fresh run's state: initParams(unet, seed), EMA = params, zero moments. */
export function freshState(unet: UNetConfig, seed: number, trainCount: number): TrainState {
  return freshStateOf(paramSpecs(unet), (s) => initParams(unet, s), seed, trainCount);
}

/**
 * A fresh run's state for any network: `init(seed of the init stream)` as the parameters, EMA =
 * parameters, zero moments, the data and noise streams of `seed`.
 */
export function freshStateOf(
  specs: readonly ParamSpec[],
  init: (seed: number) => Vars,
  seed: number,
  trainCount: number,
): TrainState {
  const seeds = streamSeeds(seed);
  const params = init(seeds.init);
  const ema: Vars = {};
  for (const [k, p] of Object.entries(params)) ema[k] = tf.variable(p.clone(), false);
  return {
    step: 0,
    params,
    ema,
    m: specVariables(specs, null, false),
    v: specVariables(specs, null, false),
    sampler: new BatchSampler(trainCount, seeds.data),
    noise: new Rng(seeds.noise),
  };
}

export interface SavedState {
  step: number;
  params: Map<string, Float32Array>;
  ema: Map<string, Float32Array>;
  adamM: Map<string, Float32Array>;
  adamV: Map<string, Float32Array>;
  sampler: SamplerState;
  noise: RngState;
}

/** Rebuild a state from saved tensors and RNG states (exact float32 values). */
export function restoreState(unet: UNetConfig, s: SavedState, trainCount: number): TrainState {
  return restoreStateOf(paramSpecs(unet), s, trainCount);
}

/** `restoreState` for any network's parameter specs. */
export function restoreStateOf(
  specs: readonly ParamSpec[],
  s: SavedState,
  trainCount: number,
): TrainState {
  return {
    step: s.step,
    params: specVariables(specs, s.params, true),
    ema: specVariables(specs, s.ema, false),
    m: specVariables(specs, s.adamM, false),
    v: specVariables(specs, s.adamV, false),
    sampler: new BatchSampler(trainCount, s.sampler),
    noise: Rng.fromState(s.noise),
  };
}

/** Download a state's tensors and RNG states (for a checkpoint). */
export async function saveState(st: TrainState): Promise<SavedState> {
  const dl = async (vars: Vars) => {
    const out = new Map<string, Float32Array>();
    for (const [k, v] of Object.entries(vars)) out.set(k, (await v.data()) as Float32Array);
    return out;
  };
  return {
    step: st.step,
    params: await dl(st.params),
    ema: await dl(st.ema),
    adamM: await dl(st.m),
    adamV: await dl(st.v),
    sampler: st.sampler.state(),
    noise: st.noise.state(),
  };
}

export function disposeState(st: TrainState) {
  for (const set of [st.params, st.ema, st.m, st.v]) Object.values(set).forEach((v) => v.dispose());
}

export interface StepResult {
  /** The step just completed (1-based = state.step after it). */
  step: number;
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  lr: number;
}

/** The host-side inputs of one step, drawn from the state's RNGs in a fixed order. */
export interface Batch {
  xt: Float32Array;
  eps: Float32Array;
  /** What the network is trained to output (`eps` itself for ε-prediction). */
  target: Float32Array;
  t: Float32Array;
  y: Int32Array | null;
  /** The drawn images' own labels, before label dropout (null: unconditional). */
  labels: Int32Array | null;
}

/**
 * Draw batch indices, then t for every image, then ε for the whole batch, then (conditional) the
 * label-dropout coins — this order is part of the resume contract.
 */
export function drawBatch(
  st: TrainState,
  data: Dataset,
  sched: Schedule,
  batch: number,
  unet: UNetConfig,
  condDrop: number,
  prediction: Prediction = "epsilon",
): Batch {
  const px = imageValues(data);
  const { idx, t, eps, xt } = drawNoised(st, data, sched, batch);
  let tgt = eps;
  if (prediction !== "epsilon") {
    tgt = new Float32Array(batch * px);
    for (let i = 0; i < batch; i++) {
      const j = idx[i],
        a = sched.sqrtAlphasCumprod[t[i]],
        s = sched.sqrtOneMinusAlphasCumprod[t[i]];
      for (let p = 0; p < px; p++) {
        tgt[i * px + p] = target(prediction, data.images[j * px + p], eps[i * px + p], a, s);
      }
    }
  }
  const y = droppedLabels(st.noise, data, idx, unet, condDrop);
  const labels = y && data.labels ? Int32Array.from(idx, (j) => data.labels![j]) : null;
  return { xt, eps, target: tgt, t, y, labels };
}

/**
 * The first draws of every batch, in the resume contract's order: the images' indices from the
 * epoch sampler, t uniform over 0…T−1 for each, then ε for the whole batch; and x_t from them.
 */
export function drawNoised(
  st: TrainState,
  data: Dataset,
  sched: Schedule,
  batch: number,
): { idx: Int32Array; t: Float32Array; eps: Float32Array; xt: Float32Array } {
  const idx = st.sampler.next(batch);
  const t = new Float32Array(batch);
  for (let i = 0; i < batch; i++) t[i] = st.noise.int(sched.T);
  const eps = st.noise.fillNormal(new Float32Array(batch * imageValues(data)));
  return { idx, t, eps, xt: noisedImages(sched, data, idx, t, eps) };
}

/** x_t = q(x_t | x₀) of the drawn images `idx` at their timesteps `t`, with noise `eps`. */
export function noisedImages(
  sched: Schedule,
  data: Dataset,
  idx: ArrayLike<number>,
  t: ArrayLike<number>,
  eps: Float32Array,
): Float32Array {
  const px = imageValues(data);
  const xt = new Float32Array(idx.length * px);
  for (let i = 0; i < idx.length; i++) {
    const j = idx[i];
    qSample(
      sched,
      t[i],
      data.images.subarray(j * px, (j + 1) * px),
      eps.subarray(i * px, (i + 1) * px),
      xt.subarray(i * px, (i + 1) * px),
    );
  }
  return xt;
}

/**
 * The drawn images' labels for a conditional model, each replaced by the null class with
 * probability `condDrop` (one uniform per image from `noise`); null for an unconditional one.
 */
export function droppedLabels(
  noise: Rng,
  data: Dataset,
  idx: ArrayLike<number>,
  unet: UNetConfig,
  condDrop: number,
): Int32Array | null {
  if (unet.numClasses === 0) return null;
  if (!data.labels) throw new DataError("a conditional model needs labelled data");
  const y = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    y[i] = noise.uniform() < condDrop ? unet.numClasses : data.labels[idx[i]];
  }
  return y;
}

/** Run one optimisation step on `st` (mutates it). Throws NonFiniteError without updating. */
export async function trainStep(
  st: TrainState,
  data: Dataset,
  sched: Schedule,
  unet: UNetConfig,
  batch: number,
  opt: OptimConfig,
  /** Guidance distillation (trainer/guidance/guide_teacher.ts): the batch's targets. */
  teacher?: (b: Batch) => Promise<Float32Array>,
): Promise<StepResult> {
  const b = drawBatch(st, data, sched, batch, unet, opt.condDrop, opt.prediction);
  if (teacher) b.target = await teacher(b);
  return await applyStep(st, b, unet, batch, opt);
}

/**
 * The gradient half of `trainStep`: loss between the network's output at (b.xt, b.t, b.y) and
 * b.target, clip, Adam, EMA (mutates `st`; throws NonFiniteError without updating). Also used by
 * the distiller (trainer/distill.ts), whose batches carry a teacher's targets.
 */
export async function applyStep(
  st: TrainState,
  b: Pick<Batch, "xt" | "target" | "t" | "y">,
  unet: UNetConfig,
  batch: number,
  opt: OptimConfig,
  /** Maps the network's output (and x_t) to what is compared with b.target (default: itself). */
  transform?: (out: tf.Tensor4D, xt: tf.Tensor4D) => tf.Tensor,
): Promise<StepResult> {
  const adam = { ...ADAM_DEFAULTS, ...opt };
  const n = st.step + 1;
  const lr = optimLr(n, opt);
  const l1 = opt.loss === "l1";
  const names = Object.keys(st.params);
  const S = unet.imageSize, C = unet.inChannels;

  const g = tf.tidy(() => {
    const xt = tf.tensor4d(b.xt, [batch, S, S, C]);
    const tgt = tf.tensor4d(b.target, [batch, S, S, C]);
    const t = tf.tensor1d(b.t);
    const y = b.y ? tf.tensor1d(b.y, "int32") : undefined;
    return lossGradients(st.params, names, () => {
      const out = forward(st.params, unet, xt, t, y);
      const d = tf.sub(transform ? transform(out, xt) : out, tgt);
      return tf.mean(l1 ? tf.abs(d) : tf.square(d)) as tf.Scalar;
    });
  });
  const r = await adamUpdate(st, names, g, lr, opt, adam);
  return { step: n, loss: r.loss, gradNorm: r.gradNorm, lr };
}

/** A loss, the gradients of the parameters `names` and their global norm (kept by tf.tidy). */
export type LossGradients = {
  loss: tf.Scalar;
  norm: tf.Tensor;
  grads: tf.Tensor[];
};

/** Inside a tf.tidy: the loss `f()` and its gradients with respect to `params[names]`. */
export function lossGradients(params: Vars, names: string[], f: () => tf.Scalar): LossGradients {
  const vars = names.map((k) => params[k]);
  const { value, grads } = tf.variableGrads(f, vars);
  const gs = vars.map((v) => grads[v.name]);
  const norm = tf.sqrt(tf.addN(gs.map((g) => tf.sum(tf.square(g)))));
  return { loss: value, norm, grads: gs };
}

/**
 * The update half of a step: read the loss and the gradient norm (a non-finite one throws
 * NonFiniteError and changes nothing), clip the gradients' global norm, Adam at `lr`, the EMA of
 * the weights; disposes `g` and counts the step (mutates `st`).
 */
export async function adamUpdate(
  st: TrainState,
  names: string[],
  g: LossGradients,
  lr: number,
  opt: { gradClip: number; ema: number },
  adam: { beta1: number; beta2: number; epsilon: number } = ADAM_DEFAULTS,
): Promise<{ loss: number; gradNorm: number }> {
  const { beta1, beta2, epsilon } = adam;
  const n = st.step + 1;
  const { loss, norm, grads } = g;
  const [lossV] = await loss.data();
  const [normV] = await norm.data();
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
  return { loss: lossV, gradNorm: normV };
}

/** Parameter count of a UNet. */
export function paramCount(unet: UNetConfig): number {
  return specsSize(paramSpecs(unet));
}
