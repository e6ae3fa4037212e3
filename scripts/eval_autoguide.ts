/**
 * The null class of a model autoguided at sampling time by a second, worse model (Karras et al.
 * 2024): every null-class call returns ε̂_bad + w·(ε̂_good − ε̂_bad), both at the null class, and
 * everything else goes through the edge sampler as in `deno task eval`. It is the probe that
 * chooses a pair for the trainer's `--autoguide-good/-bad` (QUALITY.md, "Null-class
 * autoguidance"); the server does not serve it.
 *
 *   deno task eval:autoguide --model <good model.json> --bad <bad model.json> [--weights 1,2,3]
 *     [--steps S] [--sampler S] [--eta E] [--n 500] [--seed 0] [--min-t 0] [--max-t Infinity]
 *
 * `--min-t/--max-t`: guide only the calls at those timesteps (the good model alone elsewhere).
 * The CPU column counts both models.
 */
import { type CliInfo, parseCli, runCli, usageError } from "./cli_args.ts";
import { loadModel } from "../edge/model.ts";
import { createEngine, type Engine, samplesNullClass } from "../edge/engine.ts";
import { defaultSteps } from "../edge/params.ts";
import { guide } from "../shared/step.ts";
import { oneOf } from "../shared/choice.ts";
import { SAMPLER_NAMES } from "../shared/samplers/mod.ts";
import { evalConfig, type EvalContext, loadEvalContext, TABLE_HEADER, tableRow } from "./eval.ts";

/**
 * `good` with its null-class ε-model (guidance 0) replaced by the autoguided one; labelled
 * requests are `good`'s own. Both engines must share the image size.
 */
export function autoguidedEngine(
  good: Engine,
  bad: Engine,
  w: number,
  tRange: [number, number] = [0, Infinity],
): Engine {
  return {
    model: good.model,
    backend: good.backend,
    maxBatch: good.maxBatch,
    get runs() {
      return good.runs;
    },
    forward: good.forward,
    epsModel(n, label, guidance, timing) {
      const own = good.epsModel(n, label, guidance, timing);
      if (!samplesNullClass(label, guidance)) return own;
      const worse = bad.epsModel(n, label, 0, timing);
      return async (x, t) => {
        const e = await own(x, t);
        if (t < tRange[0] || t > tRange[1]) return e;
        return guide(await worse(x, t), e, w, new Float32Array(e.length));
      };
    },
  };
}

const CLI: CliInfo = {
  name: "eval_autoguide",
  summary: "the null class of a model autoguided at sampling time by a second, worse model",
  usage: "deno task eval:autoguide --model <good model.json> --bad <bad model.json> [options]",
  help: {
    model: "the good model (required)",
    bad: "the worse model that guides it (required)",
    "min-t": "guide only the calls at timesteps from this one",
    "max-t": "… up to this one (the good model alone elsewhere)",
  },
};

export async function main(argv: string[], context?: EvalContext): Promise<string[]> {
  const { values: a } = parseCli({
    args: argv,
    options: {
      model: { type: "string" },
      bad: { type: "string" },
      weights: { type: "string", default: "1,2,3" },
      steps: { type: "string" },
      sampler: { type: "string" },
      eta: { type: "string" },
      n: { type: "string", default: "500" },
      seed: { type: "string", default: "0" },
      "min-t": { type: "string", default: "0" },
      "max-t": { type: "string", default: "Infinity" },
    },
  }, CLI);
  if (!a.model || !a.bad) throw usageError(CLI, "--model and --bad are required");
  const good = await createEngine(await loadModel(a.model), { backend: "wasm", threads: 1 });
  const bad = await createEngine(await loadModel(a.bad), { backend: "wasm", threads: 1 });
  if (bad.model.card.image.size !== good.model.card.image.size) {
    throw new RangeError("--bad must draw images of the --model's size");
  }
  const ctx = context ?? await loadEvalContext();
  const card = good.model.card;
  const lines = [`null class of ${a.model} autoguided by ${a.bad}`, TABLE_HEADER];
  console.log(lines.join("\n"));
  for (const w of a.weights!.split(",").map(Number)) {
    const engine = autoguidedEngine(good, bad, w, [Number(a["min-t"]), Number(a["max-t"])]);
    const row = await evalConfig(ctx, engine, {
      n: Number(a.n),
      steps: Number(a.steps ?? defaultSteps(card, true)),
      sampler: a.sampler === undefined ? undefined : oneOf(SAMPLER_NAMES, a.sampler, "sampler"),
      eta: Number(a.eta ?? card.sampling.eta),
      guidance: 0,
      seed: Number(a.seed),
      batch: 50,
    }, null);
    const line = tableRow(row).replace(/^\| /, `| w = ${w}: `);
    lines.push(line);
    console.log(line);
  }
  return lines;
}

if (import.meta.main) await runCli(() => main(Deno.args));
