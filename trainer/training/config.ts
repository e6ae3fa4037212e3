/**
 * Command-line flags → a validated training configuration.
 *
 * `parseFlags` reads argv with node:util parseArgs (strict: unknown flags are errors) and
 * remembers which flags were given explicitly; `resolveConfig` applies defaults (fresh run) or the
 * checkpoint's stored configuration (resume), rejecting explicit flags that would change the model,
 * the noise schedule or the data of a resumed run. Every problem is a ConfigError whose message
 * names the flag.
 */
import { z } from "zod";
import { GUIDE_NULL_TARGETS, UNetConfigSchema } from "../../shared/model_card.ts";
import type { UNetConfig } from "../../shared/model_card.ts";
import { PREDICTIONS } from "../../shared/prediction.ts";
import { LR_SCHEDULES } from "./lr_schedule.ts";
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
} from "./flags.ts";

export { ConfigError, type ParsedFlags };

/** Architecture of the UNet apart from numClasses (which comes from the data's labels). */
export const ArchSchema = UNetConfigSchema.omit({ numClasses: true }).extend({
  conditional: z.boolean(),
});
export type Arch = z.infer<typeof ArchSchema>;

export const TrainConfigSchema = z.object({
  ...RUN_CONFIG_FIELDS,
  /** After the warm-up: constant, or cosine/linear decay to lrMin at step lrDecaySteps. */
  lrSchedule: z.enum(LR_SCHEDULES).default("constant"),
  /** The floor of a decaying schedule (held after lrDecaySteps). */
  lrMin: z.number().min(0).default(0),
  /** Step at which a decaying schedule reaches lrMin; 0 = the run's --steps when it started. */
  lrDecaySteps: z.number().int().min(0).default(0),
  /** Per-pixel loss on the prediction target: squared (l2) or absolute (l1) error. */
  loss: z.enum(["l2", "l1"]).default("l2"),
  /** What the network predicts (shared/prediction.ts): the training target and the card's. */
  prediction: z.enum(PREDICTIONS).default("epsilon"),
  /** EMA decay of the weights. */
  ema: z.number().min(0).max(1).lt(1),
  /** Clip the global gradient norm to this; 0 = no clipping. */
  gradClip: z.number().min(0),
  /** Fraction of a conditional batch whose labels become the null class. */
  condDrop: z.number().min(0).max(1),
  arch: ArchSchema,
  schedule: z.object({ kind: z.enum(["linear", "cosine"]), T: z.number().int().min(2).max(10000) }),
  checkpointEvery: z.number().int().min(1),
  /** 0 = no sample grids during training (one is still written at the end unless 0). */
  sampleEvery: z.number().int().min(0),
  logEvery: z.number().int().min(1),
  sampleSteps: z.number().int().min(1),
  sampleCount: z.number().int().min(1).max(400),
  /** Classifier-free guidance weight of conditional grids (1 = plain conditional, one pass). */
  sampleGuidance: z.number().min(0).max(20).default(1),
  /**
   * Guidance distillation (trainer/guidance/guide_teacher.ts): a run directory whose EMA weights'
   * guided output is every batch's target instead of the data's ε (absent: the data's).
   */
  guideTeacher: z.string().min(1).optional(),
  /** The teacher's classifier-free guidance weight w. */
  guideWeight: z.number().min(0).max(20).default(1),
  /** What images whose label was dropped learn (shared/model_card.ts GUIDE_NULL_TARGETS). */
  guideNull: z.enum(GUIDE_NULL_TARGETS).default("null"),
  /** sha256 of the teacher's ema.bin, recorded when the run first used it. */
  guideTeacherSha256: z.string().optional(),
  /**
   * Autoguidance of the null class (trainer/guidance/autoguide.ts): the good and the bad run whose
   * extrapolated null-class output dropped labels learn (absent or "none": off), and the weight.
   */
  autoguideGood: z.string().min(1).optional(),
  autoguideBad: z.string().min(1).optional(),
  autoguideWeight: z.number().min(0).max(20).default(2),
  /** sha256s of their ema.bin, recorded when the run first used them. */
  autoguideGoodSha256: z.string().optional(),
  autoguideBadSha256: z.string().optional(),
}).superRefine((c, ctx) => {
  if (runInUse(c.autoguideGood) !== runInUse(c.autoguideBad)) {
    ctx.addIssue({
      code: "custom",
      path: [runInUse(c.autoguideGood) ? "autoguideBad" : "autoguideGood"],
      message: "autoguidance needs both --autoguide-good and --autoguide-bad (or neither)",
    });
  }
  const levels = c.arch.channelMult.length, div = 2 ** (levels - 1);
  if (c.arch.imageSize % div !== 0) {
    ctx.addIssue({
      code: "custom",
      path: ["arch", "imageSize"],
      message: `${c.arch.imageSize} must be divisible by 2^(levels−1) = ${div} for ` +
        `--channel-mult ${c.arch.channelMult.join(",")}`,
    });
  }
  for (const m of c.arch.channelMult) {
    if ((m * c.arch.channels) % c.arch.groups !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["arch", "groups"],
        message: `every level's width (channels × mult = ${m * c.arch.channels}) must be ` +
          `divisible by --groups ${c.arch.groups}`,
      });
      break;
    }
  }
  const b = c.arch.spaceToDepth ?? 1;
  if (b > 1 && c.arch.imageSize % (b * div) !== 0) {
    ctx.addIssue({
      code: "custom",
      path: ["arch", "spaceToDepth"],
      message: `imageSize ${c.arch.imageSize} must be divisible by ${b} × 2^(levels−1) = ${
        b * div
      }`,
    });
  }
  if (c.arch.levelBlocks && c.arch.levelBlocks.length !== levels) {
    ctx.addIssue({
      code: "custom",
      path: ["arch", "levelBlocks"],
      message: `needs one entry per level (${levels} for --channel-mult ${
        c.arch.channelMult.join(",")
      })`,
    });
  }
  if (c.lrSchedule !== "constant" && c.lrMin > c.lr) {
    ctx.addIssue({ code: "custom", path: ["lrMin"], message: `must be ≤ --lr ${c.lr}` });
  }
  if (c.sampleSteps > c.schedule.T) {
    ctx.addIssue({
      code: "custom",
      path: ["sampleSteps"],
      message: `must be ≤ --T ${c.schedule.T}`,
    });
  }
});
export type TrainConfig = z.infer<typeof TrainConfigSchema>;

/** Whether a frozen-run flag (`--guide-teacher`, `--autoguide-good/-bad`) names a run: not absent or `none`. */
export function runInUse(path: string | undefined): path is string {
  return path !== undefined && path !== "" && path !== "none";
}

/** Every flag, its config key and whether a resumed run may change it. */
export const FLAGS: FlagTable = {
  data: {
    kind: "string",
    key: "data",
    help:
      "mnist | fashion | emoji (32×32 RGB, 9 categories) | <folder of PNGs (or class subfolders)>",
  },
  ...runFlags({ batch: "64", lr: "5e-4", warmup: "200" }),
  "lr-schedule": {
    kind: "string",
    key: "lrSchedule",
    resumable: true,
    help: `${LR_SCHEDULES.join(" | ")} after the warm-up [constant]`,
  },
  "lr-min": {
    kind: "float",
    key: "lrMin",
    resumable: true,
    help: "lr floor of cosine/linear decay [0]",
  },
  "lr-decay-steps": {
    kind: "int",
    key: "lrDecaySteps",
    resumable: true,
    help: "step where the decay reaches --lr-min [--steps of the first command]",
  },
  loss: { kind: "string", key: "loss", resumable: true, help: "l2 | l1 per-pixel loss [l2]" },
  prediction: {
    kind: "string",
    key: "prediction",
    help: `${PREDICTIONS.join(" | ")}: what the network predicts [epsilon]`,
  },
  ...emaClipFlags(),
  "cond-drop": {
    kind: "float",
    key: "condDrop",
    resumable: true,
    help: "label dropout to the null class [0.1]",
  },
  conditional: {
    kind: "bool",
    key: "arch.conditional",
    help: "class-conditional model (needs labels)",
  },
  "image-size": {
    kind: "int",
    key: "arch.imageSize",
    help: "image side [28 for mnist/fashion, 32 else]",
  },
  "channels-in": {
    kind: "int",
    key: "arch.inChannels",
    help: "1 gray | 3 RGB (emoji, PNG folders) [emoji 3, else 1]",
  },
  channels: { kind: "int", key: "arch.channels", help: "base channel count c [32]" },
  "channel-mult": { kind: "list", key: "arch.channelMult", help: "per-level multipliers [1,2,2]" },
  "res-blocks": { kind: "int", key: "arch.numResBlocks", help: "res blocks per level [1]" },
  attention: {
    kind: "bool",
    key: "arch.attention",
    help: "attention in the middle block [on; --no-attention]",
  },
  groups: { kind: "int", key: "arch.groups", help: "GroupNorm groups [8]" },
  "space-to-depth": {
    kind: "int",
    key: "arch.spaceToDepth",
    help: "fold b×b pixel blocks into channels before the first conv [1 = off]",
  },
  "level-blocks": {
    kind: "list",
    key: "arch.levelBlocks",
    help: "res blocks per level, e.g. 1,1,2 [--res-blocks at every level]",
  },
  upsample: {
    kind: "string",
    key: "arch.upsample",
    help: "resize-conv | conv-resize (conv at the low resolution first) [resize-conv]",
  },
  schedule: { kind: "string", key: "schedule.kind", help: "linear | cosine β schedule [linear]" },
  T: { kind: "int", key: "schedule.T", help: "diffusion steps [1000]" },
  "checkpoint-every": {
    kind: "int",
    key: "checkpointEvery",
    resumable: true,
    help: "checkpoint every K steps [500]",
  },
  "sample-every": {
    kind: "int",
    key: "sampleEvery",
    resumable: true,
    help: "sample grid every M steps, 0 = never [1000]",
  },
  "sample-steps": {
    kind: "int",
    key: "sampleSteps",
    resumable: true,
    help: "respaced sampler steps for grids [50]",
  },
  samples: {
    kind: "int",
    key: "sampleCount",
    resumable: true,
    help: "images per grid [64; 10 per class if conditional]",
  },
  "sample-guidance": {
    kind: "float",
    key: "sampleGuidance",
    resumable: true,
    help: "guidance w of conditional grids (1 = none) [1]",
  },
  "log-every": {
    kind: "int",
    key: "logEvery",
    resumable: true,
    help: "log metrics every N steps [10]",
  },
  "guide-teacher": {
    kind: "string",
    key: "guideTeacher",
    resumable: true,
    help:
      "guidance distillation: targets from this run's guided EMA output; none = the data's ε [none]",
  },
  "guide-weight": {
    kind: "float",
    key: "guideWeight",
    resumable: true,
    help: "the guide teacher's classifier-free guidance weight w [1]",
  },
  "guide-null": {
    kind: "string",
    key: "guideNull",
    resumable: true,
    help:
      "what dropped labels learn: null (the teacher's null class) | class (its own label) [null]",
  },
  "autoguide-good": {
    kind: "string",
    key: "autoguideGood",
    resumable: true,
    help: "null-class autoguidance: dropped labels learn this run's EMA null class, … [none]",
  },
  "autoguide-bad": {
    kind: "string",
    key: "autoguideBad",
    resumable: true,
    help: "… extrapolated away from this (smaller, shorter-trained) run's [none]",
  },
  "autoguide-weight": {
    kind: "float",
    key: "autoguideWeight",
    resumable: true,
    help: "autoguidance weight w: ε_bad + w·(ε_good − ε_bad) [2]",
  },
};

const DEFAULTS = {
  limit: 0,
  batch: 64,
  backend: "auto",
  threads: 1,
  seed: 0,
  lr: 5e-4,
  warmup: 200,
  lrSchedule: "constant",
  lrMin: 0,
  lrDecaySteps: 0,
  loss: "l2",
  prediction: "epsilon",
  ema: 0.999,
  gradClip: 1,
  condDrop: 0.1,
  arch: {
    conditional: false,
    inChannels: 1,
    channels: 32,
    channelMult: [1, 2, 2],
    numResBlocks: 1,
    attention: true,
    groups: 8,
  },
  schedule: { kind: "linear", T: 1000 },
  checkpointEvery: 500,
  sampleEvery: 1000,
  sampleSteps: 50,
  sampleCount: 64,
  sampleGuidance: 1,
  logEvery: 10,
};

/** Parse argv (strict). Throws ConfigError for unknown flags or malformed values. */
export function parseFlags(argv: string[]): ParsedFlags {
  return parseFlagTable(argv, FLAGS, { listExample: "1,2,2" });
}

function validate(raw: unknown): TrainConfig {
  const r = TrainConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  throw new ConfigError(issueLines(FLAGS, r.error.issues).join("\n"));
}

/**
 * The configuration of a fresh run from its flags. `--data`, `--steps` and `--out` are required;
 * the rest have defaults. The image size defaults to 28 for the MNISTs and 32 for emoji and
 * folders; the input channels to 3 (RGB) for emoji and 1 otherwise.
 */
export function freshConfig(flags: ParsedFlags): TrainConfig {
  return withDecayHorizon(validate(freshRaw(DEFAULTS, flags)));
}

/**
 * The configuration of a resumed run: the checkpoint's, with run-control flags (steps, out,
 * backend, threads, batch, lr, warm-up, EMA, clipping, logging, checkpoint/sample cadence)
 * overridable. A flag that would change the architecture, schedule, data, seed or conditioning
 * must match the checkpoint or be left out.
 */
export function resumedConfig(flags: ParsedFlags, stored: TrainConfig): TrainConfig {
  const { raw, conflicts } = resumedRaw(FLAGS, flags, stored);
  if (conflicts.length > 0) {
    throw new ConfigError(
      `${conflicts.join("\n")}\nA resumed run keeps its model, schedule, data and seed: ` +
        `drop these flags, or start a new run with a different --out.`,
    );
  }
  return withDecayHorizon(validate(raw));
}

/** The UNet of a run, given the number of classes of its data (used only when conditional). */
export function unetConfig(cfg: TrainConfig, numLabels: number): UNetConfig {
  const { conditional, ...arch } = cfg.arch;
  // Parsed, so its keys come in the schema's order, as in a checkpoint's meta.json (the trainer
  // compares the two as JSON on --resume).
  return UNetConfigSchema.parse({ ...arch, numClasses: conditional ? numLabels : 0 });
}

export function helpText(): string {
  return [
    "deno task train --data mnist|fashion|emoji|<folder> --steps N --out <run dir> [options]",
    "",
    // The column fits the longest usage (--autoguide-weight <float>), one space after it.
    ...flagHelpLines(FLAGS, 25),
  ].join("\n");
}
