/**
 * Guidance distillation (Meng et al. 2023, stage one) in the trainer: with `--guide-teacher <run>
 * --guide-weight w` every batch's target is the teacher's classifier-free guided output
 * ε̂_∅ + w·(ε̂_y − ε̂_∅) at the batch's own (x_t, t, y) instead of the data's ε (images whose label
 * was dropped get the teacher's ε̂_∅, or with `--guide-null class` its output at their own label),
 * so the student draws the guided model's images at one call per step. The teacher is the run's EMA weights, frozen; its sha256 is kept in the run's config,
 * and a resume that finds other weights under the same path stops.
 */
import type { GuideNullTarget, UNetConfig } from "../../shared/model_card.ts";
import { runInUse, type TrainConfig } from "../training/config.ts";
import type { Batch } from "../training/loop.ts";
import type { BatchModel } from "../distill/math.ts";
import { guidedBatchModel, withNullClass, withRows } from "../distill/step.ts";
import { guide } from "../../shared/step.ts";
import { loadFrozenRun } from "./frozen_run.ts";

/**
 * A batch's targets from `model` under guidance w: ε̂_∅ + w·(ε̂_y − ε̂_∅) where the label was
 * kept; where it was dropped, ε̂_∅ (`null`) or ε̂ at the image's own label (`class`: averaged over
 * the data at x_t, the conditional outputs at the images' labels are the teacher's unconditional
 * ε — the mixture of its class models — with less variance than the data's ε). One call on
 * [x; x] with labels [own; null].
 */
export function guideTargets(
  model: BatchModel,
  w: number,
  nullLabel: number,
  nullTarget: GuideNullTarget,
): (b: Pick<Batch, "xt" | "t" | "y" | "labels">) => Promise<Float32Array> {
  if (nullTarget === "null") {
    const guided = guidedBatchModel(model, w, nullLabel);
    return async (b) => Float32Array.from(await guided(b.xt, b.t, b.y));
  }
  return async ({ xt, t, y, labels }) => {
    if (!y || !labels) throw new GuideTeacherError("a guided target needs labels");
    const { cond, uncond } = await withNullClass(model, xt, t, labels, nullLabel);
    const out = guide(uncond, cond, w, new Float32Array(xt.length));
    // Dropped labels (y is the null class) learn the output at the image's own label.
    return withRows(out, cond, y.length, (i) => y[i] === nullLabel);
  };
}

export interface GuideTeacher {
  /** The targets of a batch. */
  targets: (b: Batch) => Promise<Float32Array>;
  /** sha256 of the teacher checkpoint's ema.bin. */
  sha256: string;
  step: number;
  dispose(): void;
}

export class GuideTeacherError extends Error {
  override name = "GuideTeacherError";
}

/**
 * The run's guide teacher (null without `--guide-teacher`). Throws GuideTeacherError when the run
 * is unconditional, FrozenRunError when the teacher has no checkpoint, does not fit the run or
 * (`storedSha256`) its weights changed since the run recorded them.
 */
export async function loadGuideTeacher(
  cfg: TrainConfig,
  unet: UNetConfig,
  storedSha256?: string,
): Promise<GuideTeacher | null> {
  if (!runInUse(cfg.guideTeacher)) return null;
  if (unet.numClasses === 0) {
    throw new GuideTeacherError("--guide-teacher needs a conditional run (--conditional)");
  }
  const run = await loadFrozenRun("--guide-teacher", cfg.guideTeacher, cfg, unet, storedSha256);
  return {
    targets: guideTargets(run.model, cfg.guideWeight, unet.numClasses, cfg.guideNull),
    sha256: run.sha256,
    step: run.step,
    dispose: run.dispose,
  };
}
