/**
 * `deno run -A trainer/flops.ts`: the cost of one UNet call (one image, one timestep) from its configuration —
 * parameters, MFLOP (conv/dense/attention multiply-adds ×2, `forwardFlops`) and where they go by
 * feature-map side — for the trainer's architecture flags, a model card or a run's checkpoint:
 *
 *   deno run -A trainer/flops.ts [--channels 16 --channel-mult 1,2,2 --space-to-depth 2 …] [--conditional]
 *   deno run -A trainer/flops.ts --model fixtures/models/mnist/model.json
 *   deno run -A trainer/flops.ts --run runs/mnist
 */
import { ModelCardSchema, type UNetConfig } from "../shared/model_card.ts";
import { freshConfig, parseFlags, unetConfig } from "./training/config.ts";
import { readCheckpoint } from "./training/checkpoint.ts";
import { paramCount } from "./training/loop.ts";
import { flopsBySide, forwardFlops } from "./network/unet.ts";

/** One line per feature-map side plus the total, in MFLOP per call. */
export function flopsReport(cfg: UNetConfig): string[] {
  const total = forwardFlops(cfg);
  const lines = [
    `${paramCount(cfg).toLocaleString("en")} params, ${(total / 1e6).toFixed(1)} MFLOP per call`,
  ];
  const sides = [...flopsBySide(cfg)].sort((a, b) => b[0] - a[0]);
  for (const [side, f] of sides) {
    const where = side === 0 ? "embeddings" : `${side}×${side}`;
    lines.push(
      `  ${where.padEnd(10)} ${(f / 1e6).toFixed(2).padStart(7)} MFLOP  ${
        (100 * f / total).toFixed(1).padStart(5)
      } %`,
    );
  }
  return lines;
}

/** The UNet named by argv: --model <card>, --run <dir>, or the trainer's architecture flags. */
export async function configFromArgs(argv: string[]): Promise<UNetConfig> {
  const at = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const model = at("--model"), run = at("--run");
  if (model) return ModelCardSchema.parse(JSON.parse(await Deno.readTextFile(model))).architecture;
  if (run) return (await readCheckpoint(run)).meta.unet;
  const args = [...argv];
  if (!args.includes("--data")) args.push("--data", "mnist");
  const cfg = freshConfig(parseFlags([...args, "--steps", "1", "--out", "-"]));
  return unetConfig(cfg, cfg.arch.conditional ? 10 : 0);
}

if (import.meta.main) {
  try {
    for (const line of flopsReport(await configFromArgs(Deno.args))) console.log(line);
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : e}`);
    Deno.exit(2);
  }
}
