/**
 * The edge's library API (for evaluation scripts and other callers), without the HTTP server:
 *
 *   const engine = await loadEngine("fixtures/models/mnist/model.json", { backend: "wasm" });
 *   const x = await generate(engine, { seed: 1, steps: 50, eta: 1, n: 16, label: 3, guidance: 2 });
 *   // x: Float32Array, NCHW [n, C, H, W], values in [−1, 1]
 */
import { createEngine, type Engine, type EngineOptions } from "./engine.ts";
import { loadModel } from "./model.ts";

export { createEngine, type Engine, type EngineOptions, type LabelSpec } from "./engine.ts";
export { DEFAULT_MODEL_CARD, loadModel, type Model, ModelLoadError } from "./model.ts";
export { generate, type GenerateOptions } from "./sampler.ts";

/** loadModel + createEngine. */
export async function loadEngine(
  cardPath: string | URL,
  opts: EngineOptions = {},
): Promise<Engine> {
  return await createEngine(await loadModel(cardPath), opts);
}
