/**
 * The command line of `deno task distill` (trainer/distill.ts): its flags and help, and the run's
 * configuration from them — a new run's from the flags and the teacher's own configuration, a
 * `--resume`'s from its checkpoint (only the flags that do not change the result may differ) —
 * with the teacher's checkpoint read.
 */
import { join } from "node:path";
import { sha256Hex } from "../../edge/model.ts";
import { PREDICTIONS } from "../../shared/prediction.ts";
import { oneOf } from "../../shared/choice.ts";
import { type Checkpoint, hasCheckpoint, readCheckpoint } from "../training/checkpoint.ts";
import { BACKENDS } from "../backends/choice.ts";
import { LR_SCHEDULES } from "../training/lr_schedule.ts";
import { afterPriorCalls } from "./math.ts";
import { makeSchedule } from "../../shared/schedule.ts";
import { DEFAULT_PRIOR_MAX_ALPHA } from "../../shared/data_prior.ts";
import {
  DEFAULTS,
  type DistillConfig,
  DistillConfigSchema,
  DistillError,
  studentSteps,
} from "./config.ts";

/** The usage text of `--help` and of a flag parse error. */
export function helpText(): string {
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
  --after-prior T1      start every chain with the data prior's step at T−1 landing on T1 (the
                        first UNet call), and halve only the calls after it (default 0: no prior)
  --teacher-guidance G  distil the teacher's classifier-free guided chain (default 1: unguided)
  --loss clipped|plain  compare the output as the clipped DDIM step uses it (default) or raw
  --data SPEC --limit N the images (default: the teacher's data, all of it)
  --seed N --backend B --threads N (default wasm, 1 thread)
  --checkpoint-every N  (default ${DEFAULTS.checkpointEvery}); --log-every N (${DEFAULTS.logEvery})
  --sample-every N      extra EMA grids (default 0: at the start and end of every round)
  --sample-count N      images in an unconditional grid (default ${DEFAULTS.sampleCount})
  --resume              continue --out exactly where its checkpoint left off
  --stop-at N           stop after global step N (checkpointed; not part of the configuration)`;
}

/** The flags, for `node:util` parseArgs. */
export const FLAG_OPTIONS = {
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
  "after-prior": { type: "string" },
  "teacher-guidance": { type: "string" },
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

/** A numeric flag's value (undefined when absent); DistillError when it is not a number. */
export function num(v: string | undefined, name: string): number | undefined {
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

/** The parsed flags. */
export type Values = Record<string, string | boolean | undefined>;

/** A run's configuration, its own checkpoint when resumed, and the teacher's checkpoint. */
export interface DistillRun {
  cfg: DistillConfig;
  /** The run's checkpoint under --resume (null for a new run). */
  resumed: Checkpoint | null;
  teacherCk: Checkpoint;
  /** sha256 of the teacher checkpoint's meta.json. */
  teacherMetaSha: string;
}

/**
 * The run these flags ask for. Throws DistillError (bad flags, a non-empty --out, a missing
 * checkpoint), CheckpointError (an unreadable one), ZodError (an invalid configuration) or an
 * Error whose message starts with "--" (a bad choice): the CLI answers each with exit code 2.
 */
export async function resolveRun(values: Values): Promise<DistillRun> {
  const s = (k: string) => values[k] as string | undefined;
  /** --flag's value among `choices`, or `fallback` when the flag is absent. */
  const choice = <T extends string>(flag: string, choices: readonly T[], fallback: T): T =>
    s(flag) === undefined ? fallback : oneOf(choices, s(flag)!, `--${flag}`);
  let cfg: DistillConfig;
  let resumed: Checkpoint | null = null;
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
      backend: choice("backend", BACKENDS, stored.data.backend),
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
      lrSchedule: choice("lr-schedule", LR_SCHEDULES, DEFAULTS.lrSchedule),
      ema: num(s("ema"), "ema") ?? DEFAULTS.ema,
      gradClip: num(s("grad-clip"), "grad-clip") ?? DEFAULTS.gradClip,
      condDrop: num(s("cond-drop"), "cond-drop") ?? tm.condDrop ?? tconf.condDrop ?? 0,
      prediction: choice("prediction", PREDICTIONS, tm.prediction ?? "epsilon"),
      loss: choice("loss", ["clipped", "plain"] as const, "clipped"),
      afterPrior: num(s("after-prior"), "after-prior") ?? DEFAULTS.afterPrior,
      teacherGuidance: num(s("teacher-guidance"), "teacher-guidance") ?? DEFAULTS.teacherGuidance,
      seed: num(s("seed"), "seed") ?? DEFAULTS.seed,
      backend: choice("backend", BACKENDS, DEFAULTS.backend),
      threads: num(s("threads"), "threads") ?? DEFAULTS.threads,
      checkpointEvery: num(s("checkpoint-every"), "checkpoint-every") ?? DEFAULTS.checkpointEvery,
      logEvery: num(s("log-every"), "log-every") ?? DEFAULTS.logEvery,
      sampleEvery: num(s("sample-every"), "sample-every") ?? DEFAULTS.sampleEvery,
      sampleCount: num(s("sample-count"), "sample-count") ?? DEFAULTS.sampleCount,
      data: s("data") ?? tconf.data ?? tm.dataset,
      limit: num(s("limit"), "limit") ?? tconf.limit ?? DEFAULTS.limit,
    });
    const T = tm.schedule.T;
    if (cfg.afterPrior >= T - 1) {
      throw new DistillError(`--after-prior must be below T − 1 = ${T - 1}, got ${cfg.afterPrior}`);
    }
    if (cfg.afterPrior > 0) {
      const alpha = makeSchedule(tm.schedule.kind, T).sqrtAlphasCumprod[T - 1];
      if (alpha > DEFAULT_PRIOR_MAX_ALPHA) {
        throw new DistillError(
          `--after-prior needs a schedule whose t = T − 1 the prior step answers (√ᾱ ≤ ` +
            `${DEFAULT_PRIOR_MAX_ALPHA}); this teacher's ${tm.schedule.kind} schedule has ` +
            `${alpha.toPrecision(3)} there (train with --schedule cosine)`,
        );
      }
      try {
        afterPriorCalls(cfg.afterPrior, cfg.startSteps);
      } catch (e) {
        throw new DistillError(`--after-prior ${cfg.afterPrior}: ${(e as Error).message}`);
      }
    }
    if (cfg.teacherGuidance !== 1 && tm.unet.numClasses === 0) {
      throw new DistillError(
        "--teacher-guidance needs a conditional teacher; this one has no labels",
      );
    }
    const last = studentSteps(cfg.startSteps, cfg.rounds - 1);
    if (!Number.isInteger(last) || last < 1) {
      throw new DistillError(
        `--start-steps ${cfg.startSteps} cannot be halved ${cfg.rounds} times`,
      );
    }
  }
  const teacherCk = await readCheckpoint(cfg.teacher);
  const teacherMetaSha = await sha256Hex(
    await Deno.readFile(join(await Deno.realPath(join(cfg.teacher, "checkpoint")), "meta.json")),
  );
  return { cfg, resumed, teacherCk, teacherMetaSha };
}
