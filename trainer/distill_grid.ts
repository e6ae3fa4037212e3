/**
 * The sample grids of a distillation run: the EMA student's own chain (DDIM η = 0 on `power`,
 * M steps, through shared/sample.ts), tiled as a PNG (conditional students: one row per class, up
 * to 10 classes, 10 images per row). The CLI writes it as
 * `<out>/samples/round-R-Msteps-step-NNNNNN<label>.png` with `writeSampleGrid` (sample_grid.ts).
 */
import * as tf from "@tensorflow/tfjs";
import type { UNetConfig } from "../shared/model_card.ts";
import type { Schedule } from "../shared/schedule.ts";
import type { Prediction } from "../shared/prediction.ts";
import { sample } from "../shared/sample.ts";
import { encodePng, tileImages } from "../shared/image.ts";
import { tfjsEpsModel } from "./sample_grid.ts";
import { ddimSettings } from "./distill_math.ts";

/** A grid of the EMA student: DDIM η = 0, power, M steps, through shared/sample.ts. */
export async function studentGrid(
  ema: Record<string, tf.Tensor>,
  unet: UNetConfig,
  base: Schedule,
  M: number,
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
  const images = await sample(base, tfjsEpsModel(ema, unet, n, labels, 1), {
    n,
    size: unet.inChannels * unet.imageSize ** 2,
    seed,
    sampler: "ddim",
    ...ddimSettings(M, prediction),
    signal,
  });
  return encodePng(tileImages(images, n, unet.inChannels, unet.imageSize, 2, cols));
}
