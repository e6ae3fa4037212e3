/**
 * A run's EMA weights, frozen, as a BatchModel that fits the run being trained: what the guide
 * teacher (trainer/guidance/guide_teacher.ts) and the autoguidance pair
 * (trainer/guidance/autoguide.ts) are made of. Its architecture may differ from the trainee's; what
 * its outputs mean may not.
 */
import * as tf from "@tensorflow/tfjs";
import type { UNetConfig } from "../../shared/model_card.ts";
import { sha256Hex } from "../../edge/model.ts";
import { hasCheckpoint, packTensors, readCheckpoint } from "../training/checkpoint.ts";
import type { TrainConfig } from "../training/config.ts";
import type { BatchModel } from "../distill/math.ts";
import { tfjsBatchModel } from "../distill/step.ts";
import { paramSpecs } from "../network/unet.ts";

export interface FrozenRun {
  model: BatchModel;
  /** sha256 of the checkpoint's packed EMA weights (ema.bin). */
  sha256: string;
  step: number;
  unet: UNetConfig;
  dispose(): void;
}

export class FrozenRunError extends Error {
  override name = "FrozenRunError";
}

/**
 * The EMA of the run in `dir`, named `flag` in messages. Throws FrozenRunError when it has no
 * checkpoint, does not fit (image size, channels, classes, schedule, prediction) or, given
 * `storedSha256`, its weights changed since the trainee recorded them.
 */
export async function loadFrozenRun(
  flag: string,
  dir: string,
  cfg: Pick<TrainConfig, "schedule" | "prediction">,
  unet: UNetConfig,
  storedSha256?: string,
): Promise<FrozenRun> {
  if (!(await hasCheckpoint(dir))) throw new FrozenRunError(`${flag} ${dir}: no checkpoint`);
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
    throw new FrozenRunError(`${flag} ${dir} does not fit this run: ${misfit.join("; ")}`);
  }
  const sha256 = await sha256Hex(packTensors(u, ck.ema));
  if (storedSha256 !== undefined && storedSha256 !== sha256) {
    throw new FrozenRunError(
      `${flag} ${dir} has changed since this run recorded it (ema sha256 ${sha256}, ` +
        `the run recorded ${storedSha256})`,
    );
  }
  const vars: Record<string, tf.Tensor> = {};
  for (const spec of paramSpecs(u)) vars[spec.name] = tf.tensor(ck.ema.get(spec.name)!, spec.shape);
  return {
    model: tfjsBatchModel(vars, u),
    sha256,
    step: m.step,
    unet: u,
    dispose: () => Object.values(vars).forEach((v) => v.dispose()),
  };
}
