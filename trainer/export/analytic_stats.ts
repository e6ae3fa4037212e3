/**
 * The exporter's Analytic-DPM step: Γ_t for every timestep, estimated on the exported model
 * itself (the ONNX bytes in onnxruntime-web through the edge's engine, so the statistics are of
 * the network the edge runs) over training images, and the card field that stores it.
 *
 * Conditional models: `gamma` from ε̂ at the card's default guidance with each image's own label
 * (what a labelled or random-label request samples); `gammaNull` from the null class (what
 * guidance 0, or a null-class request, samples). Other guidance weights use `gamma`.
 */
import type { AnalyticStatsCard, ModelCard } from "../../shared/model_card.ts";
import { makeSchedule } from "../../shared/schedule.ts";
import { guide } from "../../shared/step.ts";
import {
  estimateGamma,
  type GammaData,
  type LabelledModel,
  roundGamma,
} from "../../shared/samplers/analytic_estimate.ts";
import { createEngine, type Engine } from "../../edge/engine.ts";

export interface AnalyticExportOptions {
  /** Training images per timestep (M). */
  samples: number;
  seed: number;
  /** What the images are, for the card (e.g. "mnist train split (9000 images)"). */
  dataName: string;
  onProgress?: (done: number, total: number) => void;
}

/** ε̂ at guidance w with the given labels (w = 1: conditional only). */
function guidedModel(engine: Engine, w: number): LabelledModel {
  return async (x, n, t, y) => {
    if (!y || w === 1) return await engine.forward(x, n, t, y);
    if (w === 0) return await engine.forward(x, n, t, null);
    const c = await engine.forward(x, n, t, y);
    const u = await engine.forward(x, n, t, null);
    return guide(u, c, w, new Float32Array(c.length));
  };
}

/** Estimate the card's `sampling.analytic` for an exported model. */
export async function analyticStats(
  card: ModelCard,
  onnx: Uint8Array,
  data: GammaData,
  o: AnalyticExportOptions,
): Promise<AnalyticStatsCard> {
  const k = card.architecture.numClasses;
  if (data.labels && k > 0 && data.labels.some((y) => y < 0 || y >= k)) {
    throw new RangeError(`the data's labels do not fit the model's ${k} classes`);
  }
  const t0 = performance.now();
  const engine = await createEngine(
    { card, onnx, cardUrl: new URL("memory:model.json") },
    { backend: "wasm", threads: 1 },
  );
  const base = makeSchedule(card.schedule.kind, card.schedule.T);
  const passes = (w: number) => (k > 0 && w !== 0 && w !== 1 ? 2 : 1);
  const guidance = card.sampling.guidance;
  const runs = k > 0 ? [guidance, 0] : [guidance];
  const total = runs.length * base.T;
  let done = 0;
  const est = (w: number) =>
    estimateGamma(guidedModel(engine, w), base, { ...data, labels: k > 0 ? data.labels : null }, {
      samples: o.samples,
      seed: o.seed,
      prediction: card.prediction,
      onTimestep: () => o.onProgress?.(++done, total),
    });
  const gamma = await est(guidance);
  const gammaNull = k > 0 ? await est(0) : undefined;
  return {
    gamma: roundGamma(gamma),
    ...(gammaNull ? { gammaNull: roundGamma(gammaNull) } : {}),
    guidance,
    samplesPerTimestep: o.samples,
    timesteps: base.T,
    data: o.dataName,
    seed: o.seed,
    forwardPasses: runs.reduce((a, w) => a + passes(w) * base.T * o.samples, 0),
    seconds: Math.round((performance.now() - t0) / 100) / 10,
  };
}
