/**
 * The stored shape of a distillation run (`deno task distill`, trainer/distill.ts): its
 * configuration (`meta.config`), the `meta.distill` record of its checkpoints, the defaults of its
 * flags, the student steps of a round and the error its bad flags raise.
 */
import { z } from "zod";
import { PREDICTIONS } from "../../shared/prediction.ts";
import { BACKENDS } from "../backends/choice.ts";
import { LR_SCHEDULES } from "../training/lr_schedule.ts";

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
  /**
   * 0 (default): the chains are power(S) from T−1. t > 0: every chain starts with the data prior's
   * step at T−1 (shared/data_prior.ts), which jumps to t for teacher and student alike, and the
   * rounds halve only the calls after it, on the power grid from t (math.ts).
   */
  afterPrior: z.number().int().min(0).default(0),
  /** The teacher's classifier-free guidance weight (1: the conditional model as it is). */
  teacherGuidance: z.number().min(0).default(1),
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
    /** The prior step's landing timestep (absent or 0: no prior step; see config.afterPrior). */
    afterPrior: z.number().int().optional(),
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
  afterPrior: 0,
  teacherGuidance: 1,
};

/** Student steps of round r. */
export const studentSteps = (startSteps: number, r: number) => startSteps / 2 ** (r + 1);

export class DistillError extends Error {
  override name = "DistillError";
}
