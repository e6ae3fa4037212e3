/**
 * Test and benchmark fixtures shared by the trainer, edge and script tests: small UNet configs,
 * the model card's "never trained" block, and random-weight models exported exactly as
 * `deno task export` writes them.
 */
import type { ModelCard, UNetConfig } from "../shared/model_card.ts";
import { freshConfig, parseFlags, unetConfig } from "./config.ts";
import { type CardSource, exportModel, randomWeights, writeModel } from "./export.ts";

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
  const dir = await Deno.makeTempDir({ prefix: m.prefix });
  await writeModel(dir, result);
  return `${dir}/model.json`;
}
