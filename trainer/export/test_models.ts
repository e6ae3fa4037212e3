/**
 * Test and benchmark fixtures shared by the trainer, edge and script tests: small UNet configs,
 * the model card's "never trained" block, and random-weight models exported exactly as
 * `deno task export` writes them.
 */
import type { ModelCard, UNetConfig } from "../../shared/model_card.ts";
import { freshConfig, parseFlags, unetConfig } from "../training/config.ts";
import { type CardSource, exportModel, randomWeights, writeModel } from "./model.ts";
import { analyticStats } from "./analytic_stats.ts";
import { ModelCardSchema } from "../../shared/model_card.ts";
import { Rng } from "../../shared/rng.ts";

/**
 * A tiny UNet (8×8×1, c = 8, two levels, one res block, attention, 4 groups, unconditional: a
 * few thousand parameters), with `o` overriding any field.
 */
export function tinyUNet(o: Partial<UNetConfig> = {}): UNetConfig {
  return {
    imageSize: 8,
    inChannels: 1,
    channels: 8,
    channelMult: [1, 2],
    numResBlocks: 1,
    attention: true,
    groups: 4,
    numClasses: 0,
    ...o,
  };
}

/**
 * The trainer's default MNIST UNet (`deno task train --data mnist --conditional`: 28×28×1,
 * c = 32, mult 1,2,2, one res block, attention, 8 groups, 10 classes), with `o` overriding any
 * field.
 */
export function mnistUNet(o: Partial<UNetConfig> = {}): UNetConfig {
  const flags = parseFlags(["--data", "mnist", "--conditional", "--steps", "1", "--out", "-"]);
  return { ...unetConfig(freshConfig(flags), 10), ...o };
}

/** The card's training block of a model that was never trained (random weights). */
export function untrained(command = "test"): ModelCard["training"] {
  return { steps: 0, batch: 1, wallTimeSeconds: 0, finalLoss: null, backend: "none", command };
}

export interface RandomModel {
  cfg: UNetConfig;
  card: CardSource;
  /** Seed of the random weights (`randomWeights` at scale 0.5). */
  seed: number;
  /** Prefix of the temp directory. */
  prefix: string;
  /** Creation time in the card (default now). */
  createdAt?: Date;
  /**
   * Estimate Analytic-DPM's Γ on the exported model (as `deno task export` does) over this many
   * seeded random images in [−1, 1] (with random labels for a conditional model), M = 4.
   */
  analyticImages?: number;
}

/**
 * Export `cfg` with random weights (scale 0.5) as int8 ONNX + model card into a fresh temp
 * directory; returns the path of its model.json.
 */
export async function writeRandomModel(m: RandomModel): Promise<string> {
  const result = await exportModel({
    cfg: m.cfg,
    weights: randomWeights(m.cfg, m.seed, 0.5),
    quant: "int8",
    card: m.card,
    createdAt: m.createdAt,
  });
  if (m.analyticImages) {
    const count = m.analyticImages, size = m.cfg.inChannels * m.cfg.imageSize ** 2;
    const rng = new Rng(m.seed + 1);
    const images = Float32Array.from({ length: count * size }, () => 2 * rng.uniform() - 1);
    const k = m.cfg.numClasses;
    const labels = k > 0 ? Int32Array.from({ length: count }, () => rng.int(k)) : null;
    const analytic = await analyticStats(result.card, result.onnx, {
      images,
      count,
      size,
      labels,
    }, { samples: 4, seed: 0, dataName: `${count} random images (test fixture)` });
    result.card = ModelCardSchema.parse({
      ...result.card,
      sampling: { ...result.card.sampling, analytic },
    });
  }
  const dir = await Deno.makeTempDir({ prefix: m.prefix });
  await writeModel(dir, result);
  return `${dir}/model.json`;
}
