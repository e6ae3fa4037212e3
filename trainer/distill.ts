/**
 * `deno task distill`: progressive distillation (Salimans & Ho 2022) of a trained run into a
 * student that samples in half the DDIM steps per round, on nested `power` grids
 * (trainer/distill_math.ts):
 *
 *   deno task distill --teacher <run dir> --out <run dir> [--start-steps 8] [--rounds 2]
 *     [--steps-per-round 2000] [--batch 64] [--lr 1e-4] [--warmup 50] [--lr-schedule linear]
 *     [--ema 0.999] [--grad-clip 1] [--seed 0] [--threads 1] [--backend wasm]
 *     [--checkpoint-every 200] [--log-every 20] [--sample-every 0] [--sample-count 64]
 *     [--data SPEC] [--limit N] [--resume]
 *
 * Round r (0-based) distils a teacher DDIM chain (η = 0, clipped x̂₀) of S_r = start/2^r steps on
 * power(S_r) into a student of M_r = S_r/2 steps on power(M_r). Round 0's teacher is the
 * `--teacher` run's EMA weights; the student starts from them exactly (same parameterisation),
 * Adam from zero. Round r+1's teacher is round r's final student EMA, which is also the next
 * student's start (Adam reset, its own warm-up and lr schedule). Loss: MSE in the student's
 * prediction space against the distilled target — for an ε-student that is ε-space MSE, i.e.
 * x₀-space MSE weighted by SNR (Salimans & Ho's "SNR" weighting; stable for ≥ 2 student steps,
 * but it does not train the x̂₀ of a 1-step student at t = T−1, where SNR ≈ 0).
 *
 * Writes, like the trainer (trainer/train.ts):
 *   <out>/checkpoint/            the latest checkpoint (trainer/checkpoint.ts; `meta.distill`
 *                                records the teacher's sha256, the round, the grids, the record)
 *   <out>/round-R/checkpoint/    round R's final student (export it: `deno task export --run`)
 *   <out>/metrics.jsonl          one line per logged step (with round and student steps)
 *   <out>/samples/round-R-Msteps-step-NNNNNN.png   EMA grids at the start and end of every round
 *
 * Exit codes as the trainer's: 0 done, 2 bad flags / teacher / data, 3 non-finite loss, 4 the run
 * directory cannot be written, 130 / 143 after SIGINT / SIGTERM (checkpointed first).
 */
import * as tf from "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { probeWritable, truncateMetrics } from "./run_files.ts";
import { z } from "zod";
import type { UNetConfig } from "../shared/model_card.ts";
import { makeSchedule, qSample, type Schedule } from "../shared/schedule.ts";
import { type Prediction, PREDICTIONS } from "../shared/prediction.ts";
import { sample } from "../shared/sample.ts";
import { encodePng, tileImages } from "../shared/image.ts";
import { oneOf } from "../shared/choice.ts";
import { Rng } from "../shared/rng.ts";
import {
  CheckpointError,
  type CheckpointMeta,
  hasCheckpoint,
  osReason,
  packTensors,
  readCheckpoint,
  RunWriteError,
  writeCheckpoint,
} from "./checkpoint.ts";
import {
  applyStep,
  disposeState,
  emaDecayAt,
  NonFiniteError,
  type OptimConfig,
  paramCount,
  restoreState,
  saveState,
  type StepResult,
  streamSeeds,
  type TrainState,
} from "./loop.ts";
import { BatchSampler, DataError, type Dataset, imageValues, loadDataset, subset } from "./data.ts";
import { forward } from "./tfjs_ops.ts";
import { tfjsEpsModel } from "./sample_grid.ts";
import { createProgress, formatDuration, Throughput } from "./progress.ts";
import { BackendError, describeBackend, initBackend } from "./backend.ts";
import { BACKENDS } from "./config.ts";
import { LR_SCHEDULES } from "./lr_schedule.ts";
import {
  type BatchModel,
  ddimSettings,
  distillTargets,
  type RoundGrid,
  roundGrid,
} from "./distill_math.ts";
import { shellQuote } from "./train.ts";

export const DistillConfigSchema = z.object({
  teacher: z.string(),
  out: z.string(),
  startSteps: z.number().int().min(2),
  rounds: z.number().int().min(1),
  stepsPerRound: z.number().int().min(1),
  batch: z.number().int().min(1),
  lr: z.number().positive(),
  warmup: z.number().int().min(0),
  lrSchedule: z.enum(LR_SCHEDULES),
  ema: z.number().min(0).max(1),
  gradClip: z.number().min(0),
  /** Label dropout to the null class (conditional teachers; default the teacher's). */
  condDrop: z.number().min(0).max(1),
  /** The student's prediction type (default the teacher's: initialised from it exactly). */
  prediction: z.enum(PREDICTIONS),
  /**
   * `clipped` (default): the output as the student's clipped DDIM step uses it (clippedOutput)
   * against the target; `plain`: the raw output (for an ε-student, plain ε-space MSE).
   */
  loss: z.enum(["clipped", "plain"]).default("clipped"),
  seed: z.number().int().min(0),
  backend: z.enum(BACKENDS),
  threads: z.union([z.literal(1), z.literal(2)]),
  checkpointEvery: z.number().int().min(1),
  logEvery: z.number().int().min(1),
  /** Extra EMA grids every N steps (0: only at the start and end of each round). */
  sampleEvery: z.number().int().min(0),
  sampleCount: z.number().int().min(1),
  /** The data (default the teacher's) and a limit on it (0 = all). */
  data: z.string(),
  limit: z.number().int().min(0),
});
export type DistillConfig = z.infer<typeof DistillConfigSchema>;

/** What `meta.distill` of a distillation checkpoint holds. */
export const DistillMetaSchema = z.object({
  method: z.literal("progressive"),
  teacher: z.object({
    run: z.string(),
    step: z.number().int(),
    /** sha256 of the teacher checkpoint's ema.bin (the weights distilled in round 0). */
    sha256: z.string(),
    /** sha256 of its meta.json. */
    metaSha256: z.string(),
    prediction: z.enum(PREDICTIONS),
    command: z.string(),
    commands: z.array(z.string()),
    wallTimeSeconds: z.number(),
  }),
  startSteps: z.number().int(),
  rounds: z.number().int(),
  stepsPerRound: z.number().int(),
  /** The round these weights are in (0-based) and the updates done in it. */
  round: z.number().int(),
  roundStep: z.number().int(),
  teacherSteps: z.number().int(),
  studentSteps: z.number().int(),
  /** The chains of this round: DDIM η = 0 with clipped x̂₀ on `power`, call order. */
  grid: z.object({
    sampler: z.literal("ddim"),
    eta: z.literal(0),
    spacing: z.literal("power"),
    teacher: z.array(z.number().int()),
    student: z.array(z.number().int()),
  }),
  /** sha256 of this round's teacher weights (round 0: teacher.sha256). */
  roundTeacherSha256: z.string(),
  loss: z.string(),
  /** The losses of this round's latest updates (≤ 50), so a resumed run reports the same means. */
  recentLosses: z.array(z.number()).optional(),
  /** One entry per finished round. */
  record: z.array(z.object({
    round: z.number().int(),
    teacherSteps: z.number().int(),
    studentSteps: z.number().int(),
    steps: z.number().int(),
    finalLoss: z.number().nullable(),
    /** sha256 of the round's final student EMA (round-R/checkpoint/ema.bin). */
    sha256: z.string(),
  })),
});
export type DistillMeta = z.infer<typeof DistillMetaSchema>;

export const DEFAULTS = {
  startSteps: 8,
  rounds: 2,
  stepsPerRound: 2000,
  batch: 64,
  lr: 1e-4,
  warmup: 50,
  lrSchedule: "linear" as const,
  ema: 0.999,
  gradClip: 1,
  seed: 0,
  backend: "wasm" as const,
  threads: 1,
  checkpointEvery: 200,
  logEvery: 20,
  sampleEvery: 0,
  sampleCount: 64,
  limit: 0,
};

/** Student steps of round r. */
export const studentSteps = (startSteps: number, r: number) => startSteps / 2 ** (r + 1);

export class DistillError extends Error {
  override name = "DistillError";
}

/** Lower-case hex SHA-256. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A model of `params` on per-image timesteps and labels (NHWC = the data's layout). */
export function tfjsBatchModel(params: Record<string, tf.Tensor>, unet: UNetConfig): BatchModel {
  const S = unet.imageSize, C = unet.inChannels;
  return async (x, t, y) => {
    const out = tf.tidy(() =>
      forward(
        params,
        unet,
        tf.tensor4d(x, [t.length, S, S, C]),
        tf.tensor1d(t),
        y ? tf.tensor1d(y, "int32") : undefined,
      )
    );
    const v = (await out.data()) as Float32Array;
    out.dispose();
    return v;
  };
}

/** The host inputs of a distillation step before the teacher runs. */
export interface DistillBatch {
  xt: Float32Array;
  /** Student call index of each image. */
  k: Int32Array;
  /** Its original timestep. */
  t: Float32Array;
  y: Int32Array | null;
}

/**
 * Draw batch indices, then each image's student step, then ε for the whole batch, then
 * (conditional) the label-dropout coins: this order is part of the resume contract.
 */
export function drawDistillBatch(
  st: TrainState,
  data: Dataset,
  base: Schedule,
  grid: RoundGrid,
  batch: number,
  unet: UNetConfig,
  condDrop: number,
): DistillBatch {
  const px = imageValues(data);
  const idx = st.sampler.next(batch);
  const k = new Int32Array(batch);
  for (let i = 0; i < batch; i++) k[i] = st.noise.int(grid.steps);
  const t = Float32Array.from(k, (kk) => grid.student[kk]);
  const eps = st.noise.fillNormal(new Float32Array(batch * px));
  const xt = new Float32Array(batch * px);
  for (let i = 0; i < batch; i++) {
    const j = idx[i];
    qSample(
      base,
      t[i],
      data.images.subarray(j * px, (j + 1) * px),
      eps.subarray(i * px, (i + 1) * px),
      xt.subarray(i * px, (i + 1) * px),
    );
  }
  let y: Int32Array | null = null;
  if (unet.numClasses > 0) {
    if (!data.labels) throw new DataError("a conditional model needs labelled data");
    y = new Int32Array(batch);
    for (let i = 0; i < batch; i++) {
      y[i] = st.noise.uniform() < condDrop ? unet.numClasses : data.labels[idx[i]];
    }
  }
  return { xt, k, t, y };
}

/**
 * The network output as the student's DDIM step uses it: x̂₀ from the output (per prediction
 * type), clipped to [−1, 1], and re-expressed in the prediction's own terms with ε' consistent
 * with the clipped x̂₀ (shared/prediction.ts `denoise`). Comparing this with the distilled target
 * is the loss: for an ε-student, ‖ε' − ε̃‖² = SNR_t·‖clip(x̂₀) − x̃₀‖², i.e. ε-space MSE wherever
 * x̂₀ is inside [−1, 1] and no gradient where the sampler clips it (at t = T−1, α = 4.9e-5, that
 * is nearly every value: there an ε-model cannot be steered). α, σ: per image, shape [n,1,1,1].
 */
export function clippedOutput(
  prediction: Prediction,
  out: tf.Tensor4D,
  xt: tf.Tensor4D,
  alpha: tf.Tensor4D,
  sigma: tf.Tensor4D,
): tf.Tensor {
  const x0raw = prediction === "epsilon"
    ? tf.div(tf.sub(xt, tf.mul(sigma, out)), alpha)
    : prediction === "x0"
    ? out
    : tf.sub(tf.mul(alpha, xt), tf.mul(sigma, out));
  const x0 = tf.clipByValue(x0raw, -1, 1);
  if (prediction === "x0") return x0;
  const eps = tf.div(tf.sub(xt, tf.mul(alpha, x0)), sigma);
  return prediction === "epsilon" ? eps : tf.sub(tf.mul(alpha, eps), tf.mul(sigma, x0));
}

/** One distillation update of `st` (mutates it): draw, run the teacher twice, apply Adam. */
export async function distillStep(
  st: TrainState,
  data: Dataset,
  base: Schedule,
  grid: RoundGrid,
  teacher: BatchModel,
  unet: UNetConfig,
  batch: number,
  opt: OptimConfig & { prediction: Prediction; clipLoss?: boolean },
): Promise<StepResult> {
  const b = drawDistillBatch(st, data, base, grid, batch, unet, opt.condDrop);
  const { target } = await distillTargets(base, grid, teacher, b.xt, b.k, b.y, opt.prediction);
  const n = b.k.length;
  const a = Float32Array.from(b.t, (t) => base.sqrtAlphasCumprod[t]);
  const s = Float32Array.from(b.t, (t) => base.sqrtOneMinusAlphasCumprod[t]);
  const alpha = tf.tensor4d(a, [n, 1, 1, 1]), sigma = tf.tensor4d(s, [n, 1, 1, 1]);
  try {
    return await applyStep(
      st,
      { xt: b.xt, t: b.t, y: b.y, target },
      unet,
      batch,
      opt,
      opt.clipLoss === false
        ? undefined
        : (out, xt) => clippedOutput(opt.prediction, out, xt, alpha, sigma),
    );
  } finally {
    alpha.dispose();
    sigma.dispose();
  }
}

/** The optimiser settings of a round of K updates. */
export function roundOptim(
  cfg: DistillConfig,
): OptimConfig & { prediction: Prediction; clipLoss: boolean } {
  return {
    lr: cfg.lr,
    warmup: cfg.warmup,
    ema: cfg.ema,
    gradClip: cfg.gradClip,
    condDrop: cfg.condDrop,
    lrSchedule: cfg.lrSchedule,
    lrMin: 0,
    lrDecaySteps: cfg.stepsPerRound,
    loss: "l2",
    prediction: cfg.prediction,
    clipLoss: cfg.loss === "clipped",
  };
}

/** A student state starting from `weights` (params = EMA = weights, zero Adam moments). */
export function studentFrom(
  unet: UNetConfig,
  weights: Map<string, Float32Array>,
  sampler: BatchSampler,
  noise: Rng,
): TrainState {
  const zeros = new Map([...weights].map(([k, v]) => [k, new Float32Array(v.length)]));
  const st = restoreState(unet, {
    step: 0,
    params: weights,
    ema: weights,
    adamM: zeros,
    adamV: zeros,
    sampler: sampler.state(),
    noise: noise.state(),
  }, sampler.count);
  st.sampler = sampler;
  st.noise = noise;
  return st;
}

/** A grid of the EMA student: DDIM η = 0, power, M steps, through shared/sample.ts. */
export async function studentGrid(
  ema: Record<string, tf.Tensor>,
  unet: UNetConfig,
  base: Schedule,
  M: number,
  prediction: Prediction,
  count: number,
  seed: number,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  let n = count, cols: number | undefined, labels: Int32Array | null = null;
  if (unet.numClasses > 0) {
    const rows = Math.min(unet.numClasses, 10);
    cols = 10;
    n = rows * cols;
    labels = Int32Array.from({ length: n }, (_, k) => Math.floor(k / cols!));
  }
  const images = await sample(base, tfjsEpsModel(ema, unet, n, labels, 1), {
    n,
    size: unet.inChannels * unet.imageSize ** 2,
    seed,
    sampler: "ddim",
    ...ddimSettings(M, prediction),
    signal,
  });
  return encodePng(tileImages(images, n, unet.inChannels, unet.imageSize, 2, cols));
}

function helpText(): string {
  return `usage: deno task distill --teacher <run dir> --out <run dir> [options]
       deno task distill --resume --out <run dir> [--threads N] [--backend B]

Progressive distillation: round r distils the teacher's DDIM (eta 0, power spacing) chain of
start/2^r steps into a student of half as many steps.

  --start-steps S       the first teacher's DDIM steps (default ${DEFAULTS.startSteps}; divisible by 2^rounds)
  --rounds R            halvings (default ${DEFAULTS.rounds}: 8 → 4 → 2)
  --steps-per-round K   updates per round (default ${DEFAULTS.stepsPerRound})
  --batch B             (default ${DEFAULTS.batch})
  --lr LR               peak learning rate (default ${DEFAULTS.lr}); --warmup N (${DEFAULTS.warmup})
  --lr-schedule K       ${
    LR_SCHEDULES.join("|")
  } within each round (default ${DEFAULTS.lrSchedule}, to 0)
  --ema D               EMA decay (default ${DEFAULTS.ema}); --grad-clip G (${DEFAULTS.gradClip})
  --cond-drop P         label dropout (default: the teacher's)
  --prediction P        the student's: ${PREDICTIONS.join("|")} (default: the teacher's)
  --loss clipped|plain  compare the output as the clipped DDIM step uses it (default) or raw
  --data SPEC --limit N the images (default: the teacher's data, all of it)
  --seed N --backend B --threads N (default wasm, 1 thread)
  --checkpoint-every N  (default ${DEFAULTS.checkpointEvery}); --log-every N (${DEFAULTS.logEvery})
  --sample-every N      extra EMA grids (default 0: at the start and end of every round)
  --sample-count N      images in an unconditional grid (default ${DEFAULTS.sampleCount})
  --resume              continue --out exactly where its checkpoint left off
  --stop-at N           stop after global step N (checkpointed; not part of the configuration)`;
}

const FLAG_OPTIONS = {
  teacher: { type: "string" },
  out: { type: "string" },
  "start-steps": { type: "string" },
  rounds: { type: "string" },
  "steps-per-round": { type: "string" },
  batch: { type: "string" },
  lr: { type: "string" },
  warmup: { type: "string" },
  "lr-schedule": { type: "string" },
  ema: { type: "string" },
  "grad-clip": { type: "string" },
  "cond-drop": { type: "string" },
  loss: { type: "string" },
  prediction: { type: "string" },
  seed: { type: "string" },
  backend: { type: "string" },
  threads: { type: "string" },
  "checkpoint-every": { type: "string" },
  "log-every": { type: "string" },
  "sample-every": { type: "string" },
  "sample-count": { type: "string" },
  data: { type: "string" },
  limit: { type: "string" },
  resume: { type: "boolean" },
  "stop-at": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Flags a --resume may change (they do not change the result). */
const RESUME_FLAGS = new Set([
  "out",
  "resume",
  "threads",
  "backend",
  "log-every",
  "stop-at",
  "help",
]);

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) {
    throw new DistillError(`--${name} must be a number, got "${v}"`);
  }
  return n;
}

function threadsOf(n: number): 1 | 2 {
  if (n !== 1 && n !== 2) throw new DistillError(`--threads must be 1 or 2, got ${n}`);
  return n;
}

type Values = Record<string, string | boolean | undefined>;

/** Run the distiller with these arguments; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const command = ["deno", "run", "-A", "trainer/distill.ts", ...argv].map(shellQuote).join(" ");
  let values: Values;
  try {
    values = parseArgs({ args: argv, options: FLAG_OPTIONS, strict: true }).values as Values;
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n${helpText()}`);
    return 2;
  }
  if (values.help) {
    console.log(helpText());
    return 0;
  }
  const s = (k: string) => values[k] as string | undefined;

  // --- configuration, teacher, resume state -------------------------------------------------
  let cfg: DistillConfig;
  let resumed: Awaited<ReturnType<typeof readCheckpoint>> | null = null;
  let teacherCk: Awaited<ReturnType<typeof readCheckpoint>>;
  let teacherMetaSha: string;
  try {
    const out = s("out");
    if (!out) throw new DistillError("--out <run dir> is required");
    if (values.resume) {
      const extra = Object.keys(values).filter((k) =>
        values[k] !== undefined && !RESUME_FLAGS.has(k)
      );
      if (extra.length > 0) {
        throw new DistillError(
          `--resume continues the stored configuration; it takes only --out, --threads, ` +
            `--backend, --log-every and --stop-at (got --${extra.join(", --")})`,
        );
      }
      if (!(await hasCheckpoint(out))) {
        throw new DistillError(`--resume: ${out} has no checkpoint to resume from`);
      }
      resumed = await readCheckpoint(out);
      const stored = DistillConfigSchema.safeParse(resumed.meta.config);
      if (!stored.success || !resumed.meta.distill) {
        throw new DistillError(`${out}: not a distillation checkpoint (or its config is invalid)`);
      }
      cfg = {
        ...stored.data,
        out,
        threads: threadsOf(num(s("threads"), "threads") ?? stored.data.threads),
        backend: s("backend") === undefined
          ? stored.data.backend
          : oneOf(BACKENDS, s("backend")!, "--backend"),
        logEvery: num(s("log-every"), "log-every") ?? stored.data.logEvery,
      };
    } else {
      const teacher = s("teacher");
      if (!teacher) throw new DistillError("--teacher <run dir> is required");
      const exists = await Deno.stat(out).then(() => true, () => false);
      if (exists) {
        let empty = true;
        for await (const _ of Deno.readDir(out)) empty = false;
        if (!empty) {
          throw new DistillError(
            `--out ${out} already exists and is not empty: add --resume to continue it, or ` +
              `choose a new run directory`,
          );
        }
      }
      if (!(await hasCheckpoint(teacher))) {
        throw new DistillError(`--teacher ${teacher} has no checkpoint`);
      }
      const tm = (await readCheckpoint(teacher)).meta;
      const tconf = tm.config as { data?: string; limit?: number; condDrop?: number };
      cfg = DistillConfigSchema.parse({
        teacher,
        out,
        startSteps: num(s("start-steps"), "start-steps") ?? DEFAULTS.startSteps,
        rounds: num(s("rounds"), "rounds") ?? DEFAULTS.rounds,
        stepsPerRound: num(s("steps-per-round"), "steps-per-round") ?? DEFAULTS.stepsPerRound,
        batch: num(s("batch"), "batch") ?? DEFAULTS.batch,
        lr: num(s("lr"), "lr") ?? DEFAULTS.lr,
        warmup: num(s("warmup"), "warmup") ?? DEFAULTS.warmup,
        lrSchedule: s("lr-schedule") === undefined
          ? DEFAULTS.lrSchedule
          : oneOf(LR_SCHEDULES, s("lr-schedule")!, "--lr-schedule"),
        ema: num(s("ema"), "ema") ?? DEFAULTS.ema,
        gradClip: num(s("grad-clip"), "grad-clip") ?? DEFAULTS.gradClip,
        condDrop: num(s("cond-drop"), "cond-drop") ?? tm.condDrop ?? tconf.condDrop ?? 0,
        prediction: s("prediction") === undefined
          ? tm.prediction ?? "epsilon"
          : oneOf(PREDICTIONS, s("prediction")!, "--prediction"),
        loss: s("loss") === undefined
          ? "clipped"
          : oneOf(["clipped", "plain"] as const, s("loss")!, "--loss"),
        seed: num(s("seed"), "seed") ?? DEFAULTS.seed,
        backend: s("backend") === undefined
          ? DEFAULTS.backend
          : oneOf(BACKENDS, s("backend")!, "--backend"),
        threads: num(s("threads"), "threads") ?? DEFAULTS.threads,
        checkpointEvery: num(s("checkpoint-every"), "checkpoint-every") ?? DEFAULTS.checkpointEvery,
        logEvery: num(s("log-every"), "log-every") ?? DEFAULTS.logEvery,
        sampleEvery: num(s("sample-every"), "sample-every") ?? DEFAULTS.sampleEvery,
        sampleCount: num(s("sample-count"), "sample-count") ?? DEFAULTS.sampleCount,
        data: s("data") ?? tconf.data ?? tm.dataset,
        limit: num(s("limit"), "limit") ?? tconf.limit ?? DEFAULTS.limit,
      });
      const last = studentSteps(cfg.startSteps, cfg.rounds - 1);
      if (!Number.isInteger(last) || last < 1) {
        throw new DistillError(
          `--start-steps ${cfg.startSteps} cannot be halved ${cfg.rounds} times`,
        );
      }
    }
    teacherCk = await readCheckpoint(cfg.teacher);
    teacherMetaSha = await sha256Hex(
      await Deno.readFile(join(await Deno.realPath(join(cfg.teacher, "checkpoint")), "meta.json")),
    );
  } catch (e) {
    if (e instanceof DistillError || e instanceof CheckpointError || e instanceof z.ZodError) {
      console.error(`error: ${e instanceof z.ZodError ? z.prettifyError(e) : e.message}`);
      return 2;
    }
    if (e instanceof Error && e.message.startsWith("--")) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const unet = teacherCk.meta.unet;
  const teacherSha = await sha256Hex(packTensors(unet, teacherCk.ema));
  const dm0 = resumed?.meta.distill as DistillMeta | undefined;
  if (dm0 && dm0.teacher.sha256 !== teacherSha) {
    console.error(
      `error: the teacher ${cfg.teacher} has changed since this run started ` +
        `(ema sha256 ${teacherSha}, the run recorded ${dm0.teacher.sha256})`,
    );
    return 2;
  }

  // --- data ----------------------------------------------------------------------------------
  let train: Dataset;
  try {
    const split = await loadDataset(cfg.data, {
      imageSize: unet.imageSize,
      channels: unet.inChannels,
    });
    train = cfg.limit > 0 ? subset(split.train, cfg.limit) : split.train;
  } catch (e) {
    if (e instanceof DataError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (unet.numClasses > 0 && !train.labels) {
    console.error(`error: the teacher is conditional; ${cfg.data} has no labels`);
    return 2;
  }

  try {
    await probeWritable(cfg.out);
  } catch (e) {
    console.error(`error: cannot write to ${cfg.out}: ${osReason(e)}`);
    return 4;
  }
  let be;
  try {
    be = await initBackend({ backend: cfg.backend, threads: cfg.threads });
  } catch (e) {
    if (!(e instanceof BackendError)) throw e;
    console.error(`error: ${e.message}`);
    return 2;
  }
  for (const line of describeBackend(be)) console.log(line);
  const backend = be.threads > 1 ? `${be.name} ×${be.threads} threads` : be.name;

  const base = makeSchedule(teacherCk.meta.schedule.kind, teacherCk.meta.schedule.T);
  const total = cfg.rounds * cfg.stepsPerRound;
  const teacherPrediction: Prediction = teacherCk.meta.prediction ?? "epsilon";
  const teacherInfo: DistillMeta["teacher"] = {
    run: cfg.teacher,
    step: teacherCk.meta.step,
    sha256: teacherSha,
    metaSha256: teacherMetaSha,
    prediction: teacherPrediction,
    command: teacherCk.meta.command,
    commands: teacherCk.meta.commands,
    wallTimeSeconds: teacherCk.meta.wallTimeSeconds,
  };

  // --- state: round, teacher weights, student ------------------------------------------------
  let round: number, st: TrainState, record: DistillMeta["record"], roundTeacherSha: string;
  let teacherWeights: Map<string, Float32Array>;
  const seeds = streamSeeds(cfg.seed);
  if (resumed) {
    const dm = resumed.meta.distill as DistillMeta;
    round = dm.round;
    record = dm.record;
    if (round === 0) teacherWeights = teacherCk.ema;
    else teacherWeights = (await readCheckpoint(join(cfg.out, `round-${round - 1}`))).ema;
    roundTeacherSha = await sha256Hex(packTensors(unet, teacherWeights));
    if (roundTeacherSha !== dm.roundTeacherSha256) {
      console.error(`error: round ${round}'s teacher weights do not match the checkpoint's sha256`);
      return 2;
    }
    st = restoreState(unet, {
      step: dm.roundStep,
      params: resumed.params,
      ema: resumed.ema,
      adamM: resumed.adamM,
      adamV: resumed.adamV,
      sampler: resumed.meta.rng.sampler,
      noise: resumed.meta.rng.noise,
    }, train.count);
  } else {
    round = 0;
    record = [];
    teacherWeights = teacherCk.ema;
    roundTeacherSha = teacherSha;
    st = studentFrom(
      unet,
      teacherCk.ema,
      new BatchSampler(train.count, seeds.data),
      new Rng(seeds.noise),
    );
  }
  const globalStep = () => round * cfg.stepsPerRound + st.step;
  const commands = [...(resumed?.meta.commands ?? []), command];
  const wallBefore = resumed?.meta.wallTimeSeconds ?? 0;
  const t0 = performance.now();
  const wall = () => wallBefore + (performance.now() - t0) / 1000;
  const recentBefore = (resumed?.meta.distill as DistillMeta | undefined)?.recentLosses ?? [];
  resumed = null;

  let teacherVars: Record<string, tf.Tensor> = {};
  const setTeacher = (w: Map<string, Float32Array>) => {
    Object.values(teacherVars).forEach((v) => v.dispose());
    teacherVars = {};
    for (const [k, v] of w) teacherVars[k] = tf.tensor(v, st.params[k].shape);
  };
  setTeacher(teacherWeights);
  let grid = roundGrid(
    base,
    studentSteps(cfg.startSteps, round),
    round === 0 ? teacherPrediction : cfg.prediction,
  );
  let teacher = tfjsBatchModel(teacherVars, unet);

  console.log(
    `distilling ${cfg.teacher} (step ${teacherCk.meta.step}, ema sha256 ${
      teacherSha.slice(0, 12)
    }…): ` +
      `${cfg.rounds} rounds × ${cfg.stepsPerRound} updates, DDIM η=0 power ` +
      `${cfg.startSteps} → ${
        studentSteps(cfg.startSteps, cfg.rounds - 1)
      } steps; batch ${cfg.batch}, ` +
      `lr ${cfg.lr} (${cfg.lrSchedule}, warm-up ${cfg.warmup}) per round; l2 on ${cfg.prediction}`,
  );
  console.log(
    `model ${
      paramCount(unet).toLocaleString("en")
    } params; data ${cfg.data}: ${train.count} images`,
  );
  const schedule = { ...teacherCk.meta.schedule }, labels = teacherCk.meta.labels;
  teacherCk = null as unknown as typeof teacherCk;

  const recent: number[] = [...recentBefore];
  const lastLoss = () => recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : null;
  const meta = (lastLoss: number | null): CheckpointMeta => ({
    format: "ddpm-edge/checkpoint@1",
    step: globalStep(),
    unet,
    schedule,
    labels,
    dataset: cfg.limit > 0 ? `${train.name} (first ${train.count})` : train.name,
    batch: cfg.batch,
    wallTimeSeconds: wall(),
    lastLoss,
    backend,
    command,
    commands,
    config: cfg as unknown as Record<string, unknown>,
    adamStep: st.step,
    emaDecay: cfg.ema,
    epochs: st.sampler.epochs,
    rng: { sampler: st.sampler.state(), noise: st.noise.state() },
    paramCount: paramCount(unet),
    savedAt: new Date().toISOString(),
    prediction: cfg.prediction,
    loss: "l2",
    condDrop: cfg.condDrop,
    lrSchedule: {
      kind: cfg.lrSchedule,
      lr: cfg.lr,
      warmup: cfg.warmup,
      min: 0,
      decaySteps: cfg.stepsPerRound,
    },
    distill: {
      method: "progressive",
      teacher: teacherInfo,
      startSteps: cfg.startSteps,
      rounds: cfg.rounds,
      stepsPerRound: cfg.stepsPerRound,
      round,
      roundStep: st.step,
      teacherSteps: 2 * grid.steps,
      studentSteps: grid.steps,
      grid: {
        sampler: "ddim",
        eta: 0,
        spacing: "power",
        teacher: [...grid.teacher.timesteps],
        student: [...grid.student],
      },
      roundTeacherSha256: roundTeacherSha,
      loss: cfg.loss === "clipped"
        ? `l2 on ${cfg.prediction} of the clipped x0 (${
          cfg.prediction === "epsilon" ? "= SNR-weighted MSE of clip(x0)" : "prediction space"
        })`
        : `l2 on ${cfg.prediction}`,
      recentLosses: [...recent],
      record,
    } satisfies DistillMeta,
  });

  let saved: number | null = null;
  const checkpointTo = async (dir: string, lastLoss: number | null) => {
    const s = await saveState(st);
    await writeCheckpoint(dir, {
      meta: meta(lastLoss),
      params: s.params,
      ema: s.ema,
      adamM: s.adamM,
      adamV: s.adamV,
    });
    return s;
  };
  const checkpoint = async (lastLoss: number | null) => {
    await checkpointTo(cfg.out, lastLoss);
    saved = globalStep();
  };
  const kept = () =>
    saved === null
      ? `no checkpoint was written to ${cfg.out}`
      : `the last good checkpoint (step ${saved}) in ${cfg.out}/checkpoint is kept`;

  const metricsFile = join(cfg.out, "metrics.jsonl");
  let metrics: Deno.FsFile;
  const abort = new AbortController();
  const progress = createProgress({
    total,
    start: globalStep(),
    batch: cfg.batch,
    logEvery: cfg.logEvery,
  });
  const writeGrid = async (label: string) => {
    const t = performance.now();
    try {
      const png = await studentGrid(
        st.ema,
        unet,
        base,
        grid.steps,
        cfg.prediction,
        cfg.sampleCount,
        cfg.seed,
        abort.signal,
      );
      const dir = join(cfg.out, "samples");
      await Deno.mkdir(dir, { recursive: true });
      const file = join(
        dir,
        `round-${round}-${grid.steps}steps-step-${
          String(globalStep()).padStart(6, "0")
        }${label}.png`,
      );
      await Deno.writeFile(`${file}.tmp`, png);
      await Deno.rename(`${file}.tmp`, file);
      progress.log(`samples → ${file} (${formatDuration((performance.now() - t) / 1000)})`);
    } catch (e) {
      if (!abort.signal.aborted) throw e;
    }
  };

  try {
    if (globalStep() > 0) await truncateMetrics(metricsFile, globalStep());
    if (globalStep() === 0) await checkpoint(null);
    metrics = await Deno.open(metricsFile, { append: true, create: true });
  } catch (e) {
    progress.stop();
    disposeState(st);
    if (e instanceof Error && "code" in e) {
      console.error(`error: cannot write to ${cfg.out}: ${osReason(e)}; ${kept()}.`);
      return 4;
    }
    throw e;
  }
  if (globalStep() > 0) console.log(`resuming at step ${globalStep()} (round ${round}) → ${total}`);
  else if (cfg.sampleEvery >= 0) await writeGrid("-start");

  let stopSignal: "SIGINT" | "SIGTERM" | null = null;
  const handlers = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const h = () => {
      if (stopSignal !== null) {
        console.error(`${sig} again: exiting without a new checkpoint`);
        Deno.exit(sig === "SIGINT" ? 130 : 143);
      }
      stopSignal = sig;
      abort.abort();
      progress.log(`${sig}: finishing the current step, then checkpointing…`);
    };
    Deno.addSignalListener(sig, h);
    return { sig, h };
  });
  const enc = new TextEncoder();
  const speed = new Throughput();
  let iLoss = 0, iNorm = 0, iSteps = 0, iSec = 0;
  let exitCode = 0;
  const opt = roundOptim(cfg);
  const stopAt = Math.min(total, num(s("stop-at"), "stop-at") ?? total);

  try {
    while (globalStep() < stopAt && stopSignal === null) {
      if (st.step === cfg.stepsPerRound) {
        // Next round: the finished student's EMA is the teacher and the new student's start.
        const ema = (await saveState(st)).ema;
        const sampler = st.sampler, noise = st.noise;
        disposeState(st);
        round++;
        roundTeacherSha = await sha256Hex(packTensors(unet, ema));
        setTeacher(ema);
        teacher = tfjsBatchModel(teacherVars, unet);
        grid = roundGrid(base, studentSteps(cfg.startSteps, round), cfg.prediction);
        st = studentFrom(unet, ema, sampler, noise);
        recent.length = 0;
        progress.log(
          `round ${round}: teacher = round ${round - 1}'s student (${2 * grid.steps} steps, ` +
            `sha256 ${roundTeacherSha.slice(0, 12)}…) → ${grid.steps} steps`,
        );
        await writeGrid("-start");
      }
      const t = performance.now();
      const r = await distillStep(st, train, base, grid, teacher, unet, cfg.batch, opt);
      const sec = (performance.now() - t) / 1000;
      recent.push(r.loss);
      if (recent.length > 50) recent.shift();
      iLoss += r.loss;
      iNorm += r.gradNorm;
      iSteps++;
      iSec += sec;
      const g = globalStep();
      progress.update({
        step: g,
        loss: lastLoss() ?? r.loss,
        imgPerS: speed.add(cfg.batch, sec),
        lr: r.lr,
      });
      if (g % cfg.logEvery === 0 || st.step === cfg.stepsPerRound) {
        const line = {
          step: g,
          round,
          round_step: st.step,
          student_steps: grid.steps,
          loss: iLoss / iSteps,
          img_per_s: (iSteps * cfg.batch) / iSec,
          lr: r.lr,
          grad_norm: iNorm / iSteps,
          ema_decay: emaDecayAt(st.step, cfg.ema),
          epoch: st.sampler.epochs,
          elapsed: wall(),
        };
        const bytes = enc.encode(JSON.stringify(line) + "\n");
        for (let o = 0; o < bytes.length;) o += await metrics!.write(bytes.subarray(o));
        iLoss =
          iNorm =
          iSteps =
          iSec =
            0;
      }
      if (st.step === cfg.stepsPerRound) {
        // The round's final student: its own checkpoint (exportable), then its grid.
        const s = await checkpointTo(join(cfg.out, `round-${round}`), lastLoss());
        record = [...record, {
          round,
          teacherSteps: 2 * grid.steps,
          studentSteps: grid.steps,
          steps: st.step,
          finalLoss: lastLoss(),
          sha256: await sha256Hex(packTensors(unet, s.ema)),
        }];
        progress.log(
          `round ${round} done: ${grid.steps}-step student, loss ${lastLoss()?.toFixed(5)} → ` +
            `${cfg.out}/round-${round}`,
        );
        await writeGrid("-end");
      }
      if (g % cfg.checkpointEvery === 0 && g < total) await checkpoint(lastLoss());
      if (cfg.sampleEvery > 0 && g % cfg.sampleEvery === 0 && st.step < cfg.stepsPerRound) {
        await writeGrid("");
      }
      await new Promise((res) => setTimeout(res, 0));
    }
    await checkpoint(lastLoss());
    progress.stop();
    if (stopSignal !== null) {
      console.log(
        `${stopSignal}: checkpoint at step ${globalStep()} written to ${cfg.out}/checkpoint`,
      );
      exitCode = stopSignal === "SIGINT" ? 130 : 143;
    } else if (globalStep() < total) {
      console.log(`--stop-at ${stopAt}: checkpoint written; continue with --resume`);
    } else {
      console.log(
        `done: ${cfg.rounds} rounds, step ${globalStep()}, ${grid.steps}-step student, loss ` +
          `${lastLoss()?.toFixed(5)}, ${formatDuration(wall())} total; ${cfg.out}/checkpoint`,
      );
    }
  } catch (e) {
    progress.stop();
    if (e instanceof NonFiniteError) {
      console.error(`error: ${e.message}. Distillation stopped; ${kept()} (try a lower --lr).`);
      exitCode = 3;
    } else if (e instanceof RunWriteError) {
      console.error(`error: ${e.message}. Stopped at step ${globalStep()}; ${kept()}.`);
      exitCode = 4;
    } else {
      throw e;
    }
  } finally {
    metrics!.close();
    for (const { sig, h } of handlers) Deno.removeSignalListener(sig, h);
    disposeState(st);
    Object.values(teacherVars).forEach((v) => v.dispose());
  }
  return exitCode;
}

if (import.meta.main) {
  const code = await main(Deno.args);
  tf.disposeVariables();
  Deno.exit(code);
}
