/**
 * The sample grids of a distillation run: the EMA student's own chain (DDIM η = 0 on the round's
 * grid, through shared/sample.ts; with the data prior's step at T−1 where the run has one),
 * tiled as a PNG (conditional students: one row per class, up to 10 classes, 10 images per row).
 * The CLI writes it as `<out>/samples/round-R-Msteps-step-NNNNNN<label>.png` with
 * `writeSampleGrid` (sample_grid.ts).
 */
import * as tf from "@tensorflow/tfjs";
import type { UNetConfig } from "../../shared/model_card.ts";
import type { Schedule } from "../../shared/schedule.ts";
import type { Prediction } from "../../shared/prediction.ts";
import { sample } from "../../shared/sample.ts";
import { encodePng, tileImages } from "../../shared/image.ts";
import { tfjsEpsModel } from "../training/sample_grid.ts";
import { ddimSettings, type RoundGrid } from "./math.ts";
import { type DataPrior, withPrior } from "../../shared/data_prior.ts";
import type { EpsModel } from "../../shared/sample.ts";

/** A grid of the EMA student: DDIM η = 0 on the round's chain, through shared/sample.ts. */
export async function studentGrid(
  ema: Record<string, tf.Tensor>,
  unet: UNetConfig,
  base: Schedule,
  grid: Pick<RoundGrid, "steps" | "chain" | "afterPrior">,
  prior: DataPrior | null,
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
  let model: EpsModel = tfjsEpsModel(ema, unet, n, labels, 1);
  if (grid.afterPrior > 0) {
    if (!prior) throw new Error("a grid after the prior step needs the data prior");
    model = withPrior(model, base, prior, { n, labels, guidance: 1, prediction });
  }
  const images = await sample(base, model, {
    n,
    size: unet.inChannels * unet.imageSize ** 2,
    seed,
    sampler: "ddim",
    ...ddimSettings(grid.chain.length, prediction, grid.chain),
    signal,
  });
  return encodePng(tileImages(images, n, unet.inChannels, unet.imageSize, 2, cols));
}
