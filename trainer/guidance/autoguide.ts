/**
 * Autoguidance of the null class (Karras et al. 2024, "Guiding a diffusion model with a bad
 * version of itself") distilled in the trainer: with `--autoguide-good <run> --autoguide-bad <run>
 * --autoguide-weight w`, every image of a batch whose label was dropped (every image, for an
 * unconditional run) learns ε̂_bad + w·(ε̂_good − ε̂_bad) of the two frozen EMAs at its (x_t, t)
 * and the null class, instead of the data's ε or the guide teacher's target. The bad model is a
 * smaller, shorter-trained model of the same data: where the good model's null class blurs two
 * digits into one, the bad one blurs them more, and the extrapolation pulls the sample towards
 * one digit. The served model then draws the autoguided null class at one call per step.
 * Both sha256s are kept in the run's config; a resume that finds other weights stops.
 */
import type { UNetConfig } from "../../shared/model_card.ts";
import { guide } from "../../shared/step.ts";
import { runInUse, type TrainConfig } from "../training/config.ts";
import type { Batch } from "../training/loop.ts";
import type { BatchModel } from "../distill/math.ts";
import { type FrozenRun, FrozenRunError, loadFrozenRun } from "./frozen_run.ts";

/**
 * `target` with the null-class rows of the batch (y[i] = nullLabel, or all rows when y is null)
 * replaced by the autoguided output; one call of each model on those rows only.
 */
export function autoguideTargets(
  good: BatchModel,
  bad: BatchModel,
  w: number,
  nullLabel: number,
): (b: Pick<Batch, "xt" | "t" | "y">, target: Float32Array) => Promise<Float32Array> {
  return async ({ xt, t, y }, target) => {
    const n = t.length, px = xt.length / n;
    const rows = [...Array(n).keys()].filter((i) => !y || y[i] === nullLabel);
    if (rows.length === 0) return target;
    const x = new Float32Array(rows.length * px), tr = new Float32Array(rows.length);
    rows.forEach((r, k) => {
      x.set(xt.subarray(r * px, (r + 1) * px), k * px);
      tr[k] = t[r];
    });
    const yr = y ? new Int32Array(rows.length).fill(nullLabel) : null;
    const [g, b] = [await good(x, tr, yr), await bad(x, tr, yr)];
    const e = guide(b, g, w, new Float32Array(x.length));
    const out = Float32Array.from(target);
    rows.forEach((r, k) => out.set(e.subarray(k * px, (k + 1) * px), r * px));
    return out;
  };
}

export interface Autoguide {
  /** The batch's targets with its null-class rows autoguided. */
  targets: (b: Batch, target: Float32Array) => Promise<Float32Array>;
  good: FrozenRun;
  bad: FrozenRun;
  dispose(): void;
}

/**
 * The run's autoguidance pair (null without `--autoguide-good`/`--autoguide-bad`, or with either
 * `none`). `stored` holds the sha256s the run recorded for the same paths. Throws
 * FrozenRunError (trainer/guidance/frozen_run.ts) when either model is missing, does not fit or
 * changed.
 */
export async function loadAutoguide(
  cfg: TrainConfig,
  unet: UNetConfig,
  stored: { good?: string; bad?: string } = {},
): Promise<Autoguide | null> {
  if (!runInUse(cfg.autoguideGood) && !runInUse(cfg.autoguideBad)) return null;
  if (!runInUse(cfg.autoguideGood) || !runInUse(cfg.autoguideBad)) {
    throw new FrozenRunError("autoguidance needs both --autoguide-good and --autoguide-bad");
  }
  const good = await loadFrozenRun("--autoguide-good", cfg.autoguideGood, cfg, unet, stored.good);
  let bad: FrozenRun;
  try {
    bad = await loadFrozenRun("--autoguide-bad", cfg.autoguideBad, cfg, unet, stored.bad);
  } catch (e) {
    good.dispose();
    throw e;
  }
  return {
    targets: autoguideTargets(good.model, bad.model, cfg.autoguideWeight, unet.numClasses),
    good,
    bad,
    dispose: () => {
      good.dispose();
      bad.dispose();
    },
  };
}
