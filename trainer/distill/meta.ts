/**
 * The meta.json of a distillation checkpoint: the trainer's CheckpointMeta
 * (trainer/training/checkpoint.ts) of the student at a step, with `meta.distill`
 * (DistillMetaSchema, trainer/distill/config.ts) recording the teacher, the round, its grids and
 * the finished rounds.
 */
import type { UNetConfig } from "../../shared/model_card.ts";
import type { CheckpointMeta } from "../training/checkpoint.ts";
import { paramCount, type TrainState } from "../training/loop.ts";
import type { RoundGrid } from "./math.ts";
import type { DistillConfig, DistillMeta } from "./config.ts";

/** What stays the same over a distillation run. */
export interface DistillRunInfo {
  cfg: DistillConfig;
  unet: UNetConfig;
  schedule: CheckpointMeta["schedule"];
  labels: CheckpointMeta["labels"];
  /** The data's name as the checkpoint records it. */
  dataset: string;
  backend: string;
  command: string;
  commands: string[];
  teacher: DistillMeta["teacher"];
}

/** Where the run stands when it checkpoints. */
export interface DistillProgress {
  /** The global step (all rounds). */
  step: number;
  wallTimeSeconds: number;
  round: number;
  /** The student being trained (its step is the round's). */
  st: TrainState;
  grid: RoundGrid;
  roundTeacherSha256: string;
  /** The round's latest losses (copied). */
  recentLosses: number[];
  record: DistillMeta["record"];
}

/** The meta of a checkpoint of `at.st` with this `lastLoss`. */
export function distillCheckpointMeta(
  run: DistillRunInfo,
  at: DistillProgress,
  lastLoss: number | null,
): CheckpointMeta {
  const { cfg, unet } = run, { st, grid } = at;
  return {
    format: "ddpm-edge/checkpoint@1",
    step: at.step,
    unet,
    schedule: run.schedule,
    labels: run.labels,
    dataset: run.dataset,
    batch: cfg.batch,
    wallTimeSeconds: at.wallTimeSeconds,
    lastLoss,
    backend: run.backend,
    command: run.command,
    commands: run.commands,
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
      teacher: run.teacher,
      startSteps: cfg.startSteps,
      rounds: cfg.rounds,
      stepsPerRound: cfg.stepsPerRound,
      round: at.round,
      roundStep: st.step,
      teacherSteps: 2 * grid.steps,
      studentSteps: grid.steps,
      grid: {
        sampler: "ddim",
        eta: 0,
        spacing: "power",
        ...(grid.afterPrior > 0 ? { afterPrior: grid.afterPrior } : {}),
        teacher: [...grid.teacher.timesteps],
        student: [...grid.student],
      },
      roundTeacherSha256: at.roundTeacherSha256,
      loss: cfg.loss === "clipped"
        ? `l2 on ${cfg.prediction} of the clipped x0 (${
          cfg.prediction === "epsilon" ? "= SNR-weighted MSE of clip(x0)" : "prediction space"
        })`
        : `l2 on ${cfg.prediction}`,
      recentLosses: [...at.recentLosses],
      record: at.record,
    } satisfies DistillMeta,
  };
}
