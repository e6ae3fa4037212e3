/**
 * Test fixtures: tiny but real models, built with the trainer's exporter from random weights and
 * written to a temporary directory (int8 ONNX + model card, exactly as `deno task export` does).
 */
import { exportModel, randomWeights, writeModel } from "../trainer/export.ts";
import type { UNetConfig } from "../shared/model_card.ts";

export interface TinyModelOptions {
  /** Number of classes; 0 = unconditional. */
  numClasses?: number;
  T?: number;
  steps?: number;
  guidance?: number;
  seed?: number;
}

export const TINY_LABELS = ["zero", "one", "two"];

/** Config of the tiny test UNet: 8×8×1, two levels, attention, a few thousand parameters. */
export function tinyConfig(numClasses: number): UNetConfig {
  return {
    imageSize: 8,
    inChannels: 1,
    channels: 8,
    channelMult: [1, 2],
    numResBlocks: 1,
    attention: true,
    groups: 4,
    numClasses,
  };
}

/** Export a tiny model into a fresh temp dir; returns the path of its model.json. */
export async function writeTinyModel(o: TinyModelOptions = {}): Promise<string> {
  const numClasses = o.numClasses ?? 3;
  const cfg = tinyConfig(numClasses);
  const result = await exportModel({
    cfg,
    weights: randomWeights(cfg, o.seed ?? 1, 0.5),
    quant: "int8",
    card: {
      name: numClasses > 0 ? "tiny-cond" : "tiny-uncond",
      schedule: { kind: "linear", T: o.T ?? 50 },
      labels: numClasses > 0 ? TINY_LABELS.slice(0, numClasses) : null,
      dataset: "random weights (test fixture)",
      training: {
        steps: 0,
        batch: 1,
        wallTimeSeconds: 0,
        finalLoss: null,
        backend: "none",
        command: "test",
      },
      sampling: { steps: o.steps ?? 4, eta: 1, guidance: o.guidance ?? (numClasses > 0 ? 1 : 0) },
    },
    createdAt: new Date(0),
  });
  const dir = await Deno.makeTempDir({ prefix: "ddpm-edge-test-" });
  await writeModel(dir, result);
  return `${dir}/model.json`;
}
