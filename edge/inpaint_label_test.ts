/**
 * The diffusion classifier that gives unlabelled /inpaint its class, on the shipped MNIST model
 * and real held-out digits (onnxruntime-web, the real ONNX file).
 */
import assert from "node:assert/strict";
import { heldOutDigits, maskOf } from "../scripts/eval_img2img.ts";
import { makeSchedule } from "../shared/schedule.ts";
import { createEngine } from "./engine.ts";
import { canInferLabel, inferLabels, LABEL_LEVELS, labelInferenceWork } from "./inpaint_label.ts";
import { DEFAULT_MODEL_CARD, loadModel } from "./model.ts";

const PX = 784;
const model = await loadModel(DEFAULT_MODEL_CARD);
const engine = await createEngine(model, { backend: "wasm", threads: 1 });
const base = makeSchedule(model.card.schedule.kind, model.card.schedule.T);
const digits = await heldOutDigits(30);

const hits = (labels: Int32Array) => labels.filter((y, i) => y === digits.labels[i]).length;

Deno.test("canInferLabel: conditional ε-models with a data prior; the work is levels × classes", async () => {
  assert.ok(canInferLabel(model.card));
  assert.equal(labelInferenceWork(model.card), LABEL_LEVELS.length * 10);
  const old = await loadModel(
    new URL("../fixtures/models/mnist-2026-11-30/model.json", import.meta.url),
  );
  assert.equal(old.card.sampling.prior, undefined);
  assert.ok(!canInferLabel(old.card), "no prior: no fill for the unknown pixels");
  const unconditional = {
    ...model.card,
    architecture: { ...model.card.architecture, numClasses: 0 },
  };
  assert.ok(!canInferLabel(unconditional));
});

Deno.test("inferLabels reads whole digits' classes, and most from their top half alone", async () => {
  const all = new Uint8Array(digits.count * PX).fill(1);
  const runs = engine.runs;
  const whole = await inferLabels(engine, base, digits.images, all, digits.count, 1);
  assert.equal(engine.runs - runs, LABEL_LEVELS.length, "one batched call per noise level");
  assert.ok(hits(whole) >= 25, `whole digits: ${hits(whole)}/30`);
  const mask = maskOf("bottom half");
  const keep = Uint8Array.from({ length: digits.count * PX }, (_, j) => (mask[j % PX] ? 0 : 1));
  const top = await inferLabels(engine, base, digits.images, keep, digits.count, 1);
  console.log(`classes read: whole ${hits(whole)}/30, top half ${hits(top)}/30`);
  assert.ok(hits(top) >= 18, `top halves: ${hits(top)}/30`);
  // The unknown pixels do not matter: anything there reads the same.
  const scribbled = digits.images.map((v, j) => (keep[j] ? v : (j % 7) / 3 - 1));
  assert.deepEqual(await inferLabels(engine, base, scribbled, keep, digits.count, 1), top);
  await assert.rejects(
    inferLabels(engine, base, digits.images, keep.subarray(1), digits.count, 1),
    /need 30 images/,
  );
});
