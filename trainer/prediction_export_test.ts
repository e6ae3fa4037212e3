/**
 * A v- or x0-model end to end: a few training steps on real MNIST digits, the int8 export (the
 * card says what the network predicts), then samples drawn through the edge's own path (model
 * loader, onnxruntime-web engine, edge/sampler.ts) — which must read the card's `prediction`.
 */
import assert from "node:assert/strict";
import { makeSchedule } from "../shared/schedule.ts";
import type { Prediction } from "../shared/prediction.ts";
import { initBackend } from "./backends/backend.ts";
import { loadDataset, subset } from "./data/datasets.ts";
import { disposeState, freshState, saveState, trainStep } from "./training/loop.ts";
import { exportModel, writeModel } from "./export/model.ts";
import { tinyUNet, untrained } from "./export/test_models.ts";
import { loadModel } from "../edge/model.ts";
import { createEngine } from "../edge/engine.ts";
import { generate } from "../edge/sampler.ts";

await initBackend({ backend: "wasm", threads: 1 });
const data = subset((await loadDataset("mnist")).train, 256);
const sched = makeSchedule("cosine", 1000);
/** A small lean layout at MNIST size (space-to-depth stem, conv-then-upsample). */
const unet = tinyUNet({
  imageSize: 28,
  channelMult: [1, 2],
  spaceToDepth: 2,
  upsample: "conv-resize",
});
let dataMean = 0;
for (const v of data.images) dataMean += v / data.images.length;

async function trainedModelDir(prediction: Prediction): Promise<string> {
  const st = freshState(unet, 0, data.count);
  const opt = { lr: 3e-3, warmup: 5, ema: 0.9, gradClip: 1, condDrop: 0, prediction };
  for (let i = 0; i < 120; i++) await trainStep(st, data, sched, unet, 32, opt);
  const { ema } = await saveState(st);
  disposeState(st);
  const r = await exportModel({
    cfg: unet,
    weights: ema,
    quant: "int8",
    prediction,
    card: {
      name: `tiny-${prediction}`,
      schedule: { kind: "cosine", T: 1000 },
      labels: null,
      dataset: "mnist (first 256)",
      training: untrained(),
      sampling: { steps: 10, eta: 1, spacing: "trailing" },
    },
  });
  assert.equal(r.card.prediction, prediction);
  const dir = await Deno.makeTempDir({ prefix: `pred-${prediction}-` });
  await writeModel(dir, r);
  return dir;
}

async function edgeSamples(cardFile: string): Promise<Float32Array> {
  const model = await loadModel(cardFile);
  const engine = await createEngine(model, { backend: "wasm", threads: 1 });
  return await generate(engine, { seed: 1, steps: 10, eta: 1, n: 8 });
}

const mean = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / a.length;

for (const prediction of ["v", "x0"] as const) {
  Deno.test(`a ${prediction}-model exported and sampled through the edge gives digit-like pixels`, async () => {
    const dir = await trainedModelDir(prediction);
    try {
      const x = await edgeSamples(`${dir}/model.json`);
      assert.ok(x.every((v) => Number.isFinite(v) && v >= -1 && v <= 1));
      // MNIST is mostly background (−1): even a barely trained model's samples have its mean
      // brightness when its output is read as what it predicts…
      const m = mean(x);
      console.log(`  ${prediction}: sample mean ${m.toFixed(3)}, data mean ${dataMean.toFixed(3)}`);
      assert.ok(Math.abs(m - dataMean) < 0.25, `sample mean ${m} vs data ${dataMean}`);
      // …and not when the same network is read as an ε-model: the card's field is what counts.
      const card = JSON.parse(await Deno.readTextFile(`${dir}/model.json`));
      await Deno.writeTextFile(
        `${dir}/model.json`,
        JSON.stringify({ ...card, prediction: "epsilon" }),
      );
      const wrong = await edgeSamples(`${dir}/model.json`);
      let diff = 0;
      for (let i = 0; i < x.length; i++) diff += Math.abs(x[i] - wrong[i]) / x.length;
      console.log(`  read as epsilon: sample mean ${mean(wrong).toFixed(3)}, mean |Δ| ${diff}`);
      assert.ok(diff > 0.1, `reading the ${prediction}-model as ε changes the images: ${diff}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
