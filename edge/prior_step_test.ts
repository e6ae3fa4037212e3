/**
 * The prior step on the real model: the shipped ONNX model with a card carrying the MNIST
 * training digits' prior (shared/data_prior.ts) makes one UNet call fewer per image, draws the
 * same image for the same seed, and with `prior: false` draws exactly what the card without a
 * prior draws.
 */
import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import { createEngine } from "./engine.ts";
import { DEFAULT_MODEL_CARD, loadModel } from "./model.ts";
import { generate } from "./sampler.ts";
import { measurePrior, priorToCard } from "../shared/data_prior.ts";
import { loadDataset } from "../trainer/data/datasets.ts";

const shipped = await loadModel(DEFAULT_MODEL_CARD);
const { train } = await loadDataset("mnist");
const prior = priorToCard(
  measurePrior(train.images, 784, train.labels, 10),
  "mnist train split (9000 images)",
);
const withPriorCard = { ...shipped.card, sampling: { ...shipped.card.sampling, prior } };
const { prior: _, ...noPriorSampling } = shipped.card.sampling;
const plain = { ...shipped, card: { ...shipped.card, sampling: noPriorSampling } };

Deno.test("the shipped card carries the MNIST training digits' prior, as the exporter measures it", () => {
  assert.deepEqual(shipped.card.sampling.prior, prior);
});

Deno.test("prior step: one call fewer, same seed same image, prior off = the card without it", async () => {
  const a = await createEngine({ ...shipped, card: withPriorCard }, {
    backend: "wasm",
    threads: 1,
  });
  const b = await createEngine(plain, { backend: "wasm", threads: 1 });
  const opts = { seed: 42, steps: 5, eta: 1, n: 3, label: [1, 4, 7] };
  const r0 = a.runs;
  const x1 = await generate(a, opts);
  assert.equal(a.runs - r0, 4, "5 steps, the t = 999 one from the prior");
  assert.deepEqual(await generate(a, opts), x1);
  const y = await generate(b, opts);
  assert.notDeepEqual(x1, y);
  const r1 = a.runs;
  assert.deepEqual(await generate(a, { ...opts, prior: false }), y);
  assert.equal(a.runs - r1, 5);
  // Image-to-image starts below T − 1: every call runs the model.
  const r2 = a.runs;
  await generate(a, { ...opts, startAt: 600 });
  assert.equal(a.runs - r2, 5);
});

Deno.test("prior step: /generate on a card with a prior answers PNGs, guided and unguided", async () => {
  const engine = await createEngine({ ...shipped, card: withPriorCard }, {
    backend: "wasm",
    threads: 1,
  });
  const app = createApp({ load: () => Promise.resolve(engine) });
  for (const q of ["seed=42", "seed=1&label=3&guidance=2&steps=4", "seed=2&guidance=0&n=2"]) {
    const r = await app.request(`/generate?${q}`);
    assert.equal(r.status, 200, q);
    assert.equal(r.headers.get("content-type"), "image/png");
    const again = await app.request(`/generate?${q}`);
    assert.deepEqual(
      new Uint8Array(await again.arrayBuffer()),
      new Uint8Array(await r.arrayBuffer()),
    );
  }
});
