/**
 * Guidance distillation (Meng et al. 2023, stage one) in the trainer: with `--guide-teacher <run>
 * --guide-weight w` every batch's target is the teacher's classifier-free guided output
 * ε̂_∅ + w·(ε̂_y − ε̂_∅) at the batch's own (x_t, t, y) instead of the data's ε (images whose label
 * was dropped get the teacher's ε̂_∅), so the student draws the guided model's images at one call
 * per step. The teacher is the run's EMA weights, frozen; its sha256 is kept in the run's config,
 * and a resume that finds other weights under the same path stops.
 */
import * as tf from "@tensorflow/tfjs";
import type { UNetConfig } from "../shared/model_card.ts";
import { sha256Hex } from "../edge/model.ts";
import { hasCheckpoint, packTensors, readCheckpoint } from "./checkpoint.ts";
import type { TrainConfig } from "./config.ts";
import type { BatchModel } from "./distill_math.ts";
import { guidedBatchModel, tfjsBatchModel } from "./distill_step.ts";
import { paramSpecs } from "./unet.ts";

export interface GuideTeacher {
  model: BatchModel;
  /** sha256 of the teacher checkpoint's ema.bin. */
  sha256: string;
  step: number;
  dispose(): void;
}

export class GuideTeacherError extends Error {
  override name = "GuideTeacherError";
}

/**
 * The run's guide teacher (null without `--guide-teacher`). Throws GuideTeacherError when it has
 * no checkpoint, does not fit the run (image size, channels, classes, schedule, prediction), the
 * run is unconditional, or (`storedSha256`) its weights changed since the run recorded them.
 */
export async function loadGuideTeacher(
  cfg: TrainConfig,
  unet: UNetConfig,
  storedSha256?: string,
): Promise<GuideTeacher | null> {
  if (!cfg.guideTeacher || cfg.guideTeacher === "none") return null;
  const dir = cfg.guideTeacher;
  if (unet.numClasses === 0) {
    throw new GuideTeacherError("--guide-teacher needs a conditional run (--conditional)");
  }
  if (!(await hasCheckpoint(dir))) {
    throw new GuideTeacherError(`--guide-teacher ${dir}: no checkpoint`);
  }
  const ck = await readCheckpoint(dir);
  const m = ck.meta, u = m.unet;
  const misfit = [
    u.imageSize !== unet.imageSize && `image size ${u.imageSize} ≠ ${unet.imageSize}`,
    u.inChannels !== unet.inChannels && `channels ${u.inChannels} ≠ ${unet.inChannels}`,
    u.numClasses !== unet.numClasses && `classes ${u.numClasses} ≠ ${unet.numClasses}`,
    (m.schedule.kind !== cfg.schedule.kind || m.schedule.T !== cfg.schedule.T) &&
    `schedule ${m.schedule.kind} T=${m.schedule.T} ≠ ${cfg.schedule.kind} T=${cfg.schedule.T}`,
    (m.prediction ?? "epsilon") !== cfg.prediction &&
    `prediction ${m.prediction ?? "epsilon"} ≠ ${cfg.prediction}`,
  ].filter(Boolean);
  if (misfit.length > 0) {
    throw new GuideTeacherError(
      `--guide-teacher ${dir} does not fit this run: ${misfit.join("; ")}`,
    );
  }
  const sha256 = await sha256Hex(packTensors(u, ck.ema));
  if (storedSha256 !== undefined && storedSha256 !== sha256) {
    throw new GuideTeacherError(
      `--guide-teacher ${dir} has changed since this run recorded it (ema sha256 ${sha256}, ` +
        `the run recorded ${storedSha256})`,
    );
  }
  const vars: Record<string, tf.Tensor> = {};
  for (const spec of paramSpecs(u)) vars[spec.name] = tf.tensor(ck.ema.get(spec.name)!, spec.shape);
  return {
    model: guidedBatchModel(tfjsBatchModel(vars, u), cfg.guideWeight, unet.numClasses),
    sha256,
    step: m.step,
    dispose: () => Object.values(vars).forEach((v) => v.dispose()),
  };
}
