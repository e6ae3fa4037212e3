/**
 * `deno task train-classifier` flags → a validated classifier training configuration, on the
 * diffusion trainer's flag machinery (`trainer/training/flags.ts`): node:util parseArgs (strict),
 * one table of flags with their config keys and whether a resumed run may change them (the
 * run-control ones shared with `deno task train`), defaults for a fresh run, the checkpoint's
 * configuration on `--resume` (flags that would change the model, the noise schedule, the data or
 * the seed must match it). Every problem is a ConfigError whose one-line message names the flag.
 */
import { z } from "zod";
import {
  ConfigError,
  emaClipFlags,
  flagHelpLines,
  type FlagTable,
  freshRaw,
  issueLines,
  type ParsedFlags,
  parseFlagTable,
  resumedRaw,
  RUN_CONFIG_FIELDS,
  runFlags,
  withDecayHorizon,
} from "../training/flags.ts";
import { LR_SCHEDULES } from "../training/lr_schedule.ts";
import { type ClassifierConfig, classifierConfigProblems, ClassifierConfigSchema } from "./net.ts";

export { ConfigError };

/** Everything of the network but the class count (which comes from the data's labels). */
export const ClassifierArchSchema = ClassifierConfigSchema.omit({ numClasses: true });

export const ClassifierTrainConfigSchema = z.object({
  ...RUN_CONFIG_FIELDS,
  lrSchedule: z.enum(LR_SCHEDULES),
  lrMin: z.number().min(0),
  /** Step at which a decaying schedule reaches lrMin (0 = the first command's --steps). */
  lrDecaySteps: z.number().int().min(0),
  ema: z.number().min(0).lt(1),
  gradClip: z.number().min(0),
  arch: ClassifierArchSchema,
  /** The diffusion model's noise schedule the classifier learns to read through. */
  schedule: z.object({ kind: z.enum(["linear", "cosine"]), T: z.number().int().min(2).max(10000) }),
  checkpointEvery: z.number().int().min(1),
  /** Held-out accuracy by t every N steps (0 = only at the end). */
  evalEvery: z.number().int().min(0),
  /** Held-out images per t bucket of that evaluation (0 = all of the test split). */
  evalImages: z.number().int().min(0),
  /** t buckets of the evaluation (equal ranges of 0…T−1). */
  evalBuckets: z.number().int().min(1).max(100),
  logEvery: z.number().int().min(1),
}).superRefine((c, ctx) => {
  if (c.lrSchedule !== "constant" && c.lrMin > c.lr) {
    ctx.addIssue({ code: "custom", path: ["lrMin"], message: `must be ≤ --lr ${c.lr}` });
  }
  if (c.evalBuckets > c.schedule.T) {
    ctx.addIssue({
      code: "custom",
      path: ["evalBuckets"],
      message: `must be ≤ --T ${c.schedule.T}`,
    });
  }
  for (const m of classifierConfigProblems({ ...c.arch, numClasses: 2 })) {
    ctx.addIssue({ code: "custom", path: ["arch", "channels"], message: m });
  }
});
export type ClassifierTrainConfig = z.infer<typeof ClassifierTrainConfigSchema>;

export const CLASSIFIER_FLAGS: FlagTable = {
  data: {
    kind: "string",
    key: "data",
    help: "mnist | fashion | emoji (32×32 RGB) | <folder of class subfolders>",
  },
  ...runFlags({ batch: "128", lr: "1e-3", warmup: "100" }),
  "lr-schedule": {
    kind: "string",
    key: "lrSchedule",
    resumable: true,
    help: `${LR_SCHEDULES.join(" | ")} after the warm-up [cosine]`,
  },
  "lr-min": { kind: "float", key: "lrMin", resumable: true, help: "lr floor of the decay [1e-5]" },
  "lr-decay-steps": {
    kind: "int",
    key: "lrDecaySteps",
    resumable: true,
    help: "step where the decay reaches --lr-min [--steps of the first command]",
  },
  ...emaClipFlags(),
  "image-size": {
    kind: "int",
    key: "arch.imageSize",
    help: "image side [28 for mnist/fashion, 32 else]",
  },
  "channels-in": { kind: "int", key: "arch.inChannels", help: "1 gray | 3 RGB [emoji 3, else 1]" },
  channels: { kind: "int", key: "arch.channels", help: "base channel count c [8]" },
  "channel-mult": { kind: "list", key: "arch.channelMult", help: "per-level multipliers [1,2,4]" },
  "res-blocks": { kind: "int", key: "arch.numResBlocks", help: "res blocks per level [1]" },
  groups: { kind: "int", key: "arch.groups", help: "GroupNorm groups [4]" },
  schedule: {
    kind: "string",
    key: "schedule.kind",
    help: "linear | cosine: the diffusion model's [linear]",
  },
  T: { kind: "int", key: "schedule.T", help: "diffusion steps: the diffusion model's [1000]" },
  "checkpoint-every": {
    kind: "int",
    key: "checkpointEvery",
    resumable: true,
    help: "checkpoint every K steps [500]",
  },
  "eval-every": {
    kind: "int",
    key: "evalEvery",
    resumable: true,
    help: "held-out accuracy by t every N steps, 0 = only at the end [2000]",
  },
  "eval-images": {
    kind: "int",
    key: "evalImages",
    resumable: true,
    help: "held-out images per t bucket, 0 = the whole test split [0]",
  },
  "eval-buckets": {
    kind: "int",
    key: "evalBuckets",
    resumable: true,
    help: "t buckets of the evaluation [10]",
  },
  "log-every": {
    kind: "int",
    key: "logEvery",
    resumable: true,
    help: "log metrics every N steps [50]",
  },
};

const DEFAULTS = {
  limit: 0,
  batch: 128,
  backend: "auto",
  threads: 1,
  seed: 0,
  lr: 1e-3,
  warmup: 100,
  lrSchedule: "cosine",
  lrMin: 1e-5,
  lrDecaySteps: 0,
  ema: 0.999,
  gradClip: 1,
  arch: { inChannels: 1, channels: 8, channelMult: [1, 2, 4], numResBlocks: 1, groups: 4 },
  schedule: { kind: "linear", T: 1000 },
  checkpointEvery: 500,
  evalEvery: 2000,
  evalImages: 0,
  evalBuckets: 10,
  logEvery: 50,
};

export type ParsedClassifierFlags = ParsedFlags;

/** Parse argv (strict). Throws ConfigError for unknown flags or malformed values. */
export function parseClassifierFlags(argv: string[]): ParsedClassifierFlags {
  return parseFlagTable(argv, CLASSIFIER_FLAGS, { listExample: "1,2,4", firstLineOnly: true });
}

/** The configuration if valid, else a ConfigError naming the first problem's flag. */
function validate(raw: unknown): ClassifierTrainConfig {
  const r = ClassifierTrainConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  throw new ConfigError(issueLines(CLASSIFIER_FLAGS, r.error.issues)[0]);
}

/**
 * A fresh run's configuration: `--data`, `--steps` and `--out` required, defaults for the rest
 * (image size and channels per dataset as the diffusion trainer's).
 */
export function freshClassifierConfig(flags: ParsedClassifierFlags): ClassifierTrainConfig {
  return withDecayHorizon(validate(freshRaw(DEFAULTS, flags)));
}

/** A resumed run's configuration: the checkpoint's, with the resumable flags applied. */
export function resumedClassifierConfig(
  flags: ParsedClassifierFlags,
  stored: ClassifierTrainConfig,
): ClassifierTrainConfig {
  const { raw, conflicts } = resumedRaw(CLASSIFIER_FLAGS, flags, stored);
  if (conflicts.length > 0) {
    throw new ConfigError(
      `${conflicts.join("; ")}: a resumed run keeps its model, schedule, data and seed`,
    );
  }
  return withDecayHorizon(validate(raw));
}

/** The network of a run, given its data's class count. */
export function classifierConfigOf(c: ClassifierTrainConfig, numClasses: number): ClassifierConfig {
  return ClassifierConfigSchema.parse({ ...c.arch, numClasses });
}

export function classifierHelpText(): string {
  return [
    "deno task train-classifier --data mnist|fashion|<folder> --steps N --out <run dir> [options]",
    "deno task export-classifier --run <run dir> --card <model.json> [--quant int8|fp16|fp32] [--scale S]" +
    " [--steps N] [--sampler NAME] [--high-noise ABOVE:FACTOR]",
    "",
    ...flagHelpLines(CLASSIFIER_FLAGS),
  ].join("\n");
}
