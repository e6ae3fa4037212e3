/**
 * The maths of progressive distillation (Salimans & Ho 2022) on nested `power` grids, as pure
 * functions (no tfjs): the grids of a round, the teacher's two DDIM steps and the student's
 * target.
 *
 * Grids. `power` with S = 2M steps puts step k (counted from the noisiest, k = 0…S−1) at
 * t_k = T·(1 − (k/S)^ρ) − 1 before rounding; its even steps k = 2j sit at T·(1 − (2j/2M)^ρ) − 1,
 * the same real numbers as power(M)'s step j (2j/2M and j/M are one float), so power(M) ⊂ power(2M)
 * and the teacher's chain passes through every student timestep.
 *
 * Target. From x_t at a student timestep t the teacher takes its DDIM steps (η = 0, x̂₀ clipped:
 * exactly shared/samplers/ddim.ts) 2j and 2j+1 to x_s, s = the student's next timestep. The one
 * x̃₀ with which a single DDIM step t → s lands on x_s (x_s = α_s·x̃₀ + σ_s·(x_t − α_t·x̃₀)/σ_t) is
 *   x̃₀ = (x_s − (σ_s/σ_t)·x_t) / (α_s − (σ_s/σ_t)·α_t),    and x̃₀ = x_s when s is the data;
 * the student is trained on `target(prediction, x̃₀, ε̃, α_t, σ_t)` with ε̃ = (x_t − α_t·x̃₀)/σ_t.
 */
import { target as predictionTarget } from "../../shared/prediction.ts";
import type { Prediction } from "../../shared/prediction.ts";
import { POWER_SPACING_RHO, type Schedule, spacedTimesteps } from "../../shared/schedule.ts";
import { SAMPLERS } from "../../shared/samplers/mod.ts";
import type { Plan } from "../../shared/samplers/types.ts";

/** The teacher's and the student's chains of one round: DDIM η = 0 on power(2M) and power(M). */
export interface RoundGrid {
  /** Student UNet calls M (the teacher takes 2M). */
  steps: number;
  /** The student's original timesteps in call order (noisiest first), length M. */
  student: Int32Array;
  /**
   * The student's whole chain as a sampler takes it (ascending original timesteps): the M calls,
   * then T−1 where the prior step answers (afterPrior > 0).
   */
  chain: Int32Array;
  /** The prior step's landing timestep (0: no prior step). */
  afterPrior: number;
  /** The teacher's DDIM plan on power(2M) (call k = 2j is the student's call j). */
  teacher: Plan;
}

/**
 * The settings of the DDIM η = 0 sampler every round's teacher and student use (`timesteps`: an
 * explicit chain, ascending, `steps` of them).
 */
export function ddimSettings(steps: number, prediction: Prediction, timesteps?: Int32Array) {
  return {
    steps,
    timesteps,
    spacing: "power" as const,
    eta: 0,
    variance: "small" as const,
    clipDenoised: true,
    prediction,
  };
}

/** power(S)'s real-valued timesteps before rounding, in call order (k = 0 is T−1). */
export function powerRealTimesteps(T: number, S: number): number[] {
  return Array.from({ length: S }, (_, k) => T * (1 - (k / S) ** POWER_SPACING_RHO) - 1);
}

/** Original timesteps of power(S) in call order (noisiest first). */
export function powerCallOrder(T: number, S: number): Int32Array {
  return spacedTimesteps(T, S, "power").slice().reverse();
}

/**
 * The M calls after a prior step that lands on t₁, in call order: power(M) on t₁ + 1 timesteps,
 * t_j = (t₁ + 1)·(1 − (j/M)^ρ) − 1 rounded (j = 0 is t₁ itself). As with power(S), the 2M-call
 * grid's even calls are the same real numbers as the M-call grid's, so the two nest. Throws where
 * rounding merges calls (the spacing's fix-up would move them off the nested grid).
 */
export function afterPriorCalls(t1: number, M: number): Int32Array {
  const t = powerCallOrder(t1 + 1, M), real = powerRealTimesteps(t1 + 1, M);
  if (t.some((v, j) => v !== Math.round(real[j]))) {
    throw new RangeError(`${M} calls do not fit below t = ${t1} (timesteps ${t.join(", ")})`);
  }
  return t;
}

/** The ascending chain of calls in call order, with T−1 (the prior step) on top when `prior`. */
function chainOf(calls: Int32Array, T: number, prior: boolean): Int32Array {
  const up = calls.slice().reverse();
  return prior ? Int32Array.of(...up, T - 1) : up;
}

/**
 * The grids of a round with a student of M calls: power(M) in power(2M), or with `afterPrior`
 * = t₁ > 0 the M and 2M calls after a prior step to t₁ (afterPriorCalls). Throws if the student's
 * calls are not the teacher's even calls (power(S) only where the spacing's rounding fix-up
 * fires, S close to T) or t₁ is not below T−1.
 */
export function roundGrid(
  base: Schedule,
  M: number,
  teacherPrediction: Prediction,
  afterPrior = 0,
): RoundGrid {
  if (afterPrior >= base.T - 1) {
    throw new RangeError(`the prior step must land below T − 1 = ${base.T - 1}, got ${afterPrior}`);
  }
  const prior = afterPrior > 0;
  const student = prior ? afterPriorCalls(afterPrior, M) : powerCallOrder(base.T, M);
  const teacherT = prior ? afterPriorCalls(afterPrior, 2 * M) : powerCallOrder(base.T, 2 * M);
  for (let j = 0; j < M; j++) {
    if (teacherT[2 * j] !== student[j]) {
      throw new RangeError(`the ${M}-call grid is not nested in the ${2 * M}-call grid`);
    }
  }
  // The teacher's plan covers its calls only (no prior step: the targets start at t₁ or below).
  const teacher = SAMPLERS.ddim.plan(
    base,
    ddimSettings(2 * M, teacherPrediction, prior ? chainOf(teacherT, base.T, false) : undefined),
  );
  if (teacher.timesteps.join() !== teacherT.join()) throw new Error("unexpected DDIM timesteps");
  return { steps: M, student, chain: chainOf(student, base.T, prior), afterPrior, teacher };
}

/** α = √ᾱ and σ = √(1−ᾱ) of an original timestep (the data: α = 1, σ = 0). */
function ab(base: Schedule, t: number | null): [number, number] {
  return t === null ? [1, 0] : [base.sqrtAlphasCumprod[t], base.sqrtOneMinusAlphasCumprod[t]];
}

/**
 * x̃₀ from x_t at t and the teacher's x_s at s (s = null: the data), written into `out`: the x₀
 * of the single DDIM step t → s that lands on x_s (module comment).
 */
export function impliedX0(
  base: Schedule,
  xt: ArrayLike<number>,
  t: number,
  xs: ArrayLike<number>,
  s: number | null,
  out: Float64Array = new Float64Array(xt.length),
): Float64Array {
  const [at, st] = ab(base, t), [as, ss] = ab(base, s);
  if (s === null) {
    for (let j = 0; j < xt.length; j++) out[j] = xs[j];
    return out;
  }
  const r = ss / st, den = as - r * at;
  for (let j = 0; j < xt.length; j++) out[j] = (xs[j] - r * xt[j]) / den;
  return out;
}

/** The student's target at x_t (timestep t) for an implied x̃₀, written into `out`. */
export function studentTarget(
  base: Schedule,
  prediction: Prediction,
  xt: ArrayLike<number>,
  t: number,
  x0: ArrayLike<number>,
  out: Float32Array,
): Float32Array {
  const [a, s] = ab(base, t);
  for (let j = 0; j < xt.length; j++) {
    out[j] = predictionTarget(prediction, x0[j], (xt[j] - a * x0[j]) / s, a, s);
  }
  return out;
}

/**
 * A batched model: the output for n images x (n·px values) at per-image original timesteps `t`
 * and labels `y` (null: unconditional).
 */
export type BatchModel = (
  x: Float32Array,
  t: Float32Array,
  y: Int32Array | null,
) => Promise<ArrayLike<number>>;

/**
 * The distillation targets of a batch: image i is at the student's call `k[i]` (timestep
 * grid.student[k[i]]); the teacher takes its two DDIM steps 2k, 2k+1 from there (two batched
 * calls), and each image's target is its student target for the implied x̃₀. Returns the targets
 * and the teacher's x_s (n·px values each).
 */
export async function distillTargets(
  base: Schedule,
  grid: RoundGrid,
  teacher: BatchModel,
  xt: Float32Array,
  k: Int32Array,
  y: Int32Array | null,
  prediction: Prediction,
): Promise<{ target: Float32Array; xs: Float32Array }> {
  const n = k.length, px = xt.length / n, M = grid.steps;
  const x = xt.slice();
  const states = Array.from({ length: n }, () => grid.teacher.init(px));
  for (const half of [0, 1]) {
    const t = Float32Array.from(k, (kk) => grid.teacher.timesteps[2 * kk + half]);
    const got = await teacher(x, t, y);
    const out = got instanceof Float32Array ? got : Float32Array.from(got);
    for (let i = 0; i < n; i++) {
      const a = i * px, b = a + px;
      grid.teacher.step(states[i], x.subarray(a, b), out.subarray(a, b), 2 * k[i] + half, null);
    }
  }
  const target = new Float32Array(xt.length), x0 = new Float64Array(px);
  for (let i = 0; i < n; i++) {
    const tt = grid.student[k[i]], s = k[i] + 1 < M ? grid.student[k[i] + 1] : null;
    const xi = xt.subarray(i * px, (i + 1) * px);
    impliedX0(base, xi, tt, x.subarray(i * px, (i + 1) * px), s, x0);
    studentTarget(base, prediction, xi, tt, x0, target.subarray(i * px, (i + 1) * px));
  }
  return { target, xs: x };
}
