/**
 * The model card is a published format: the default model of 2026-11-30 (a
 * `ddpm-edge/model-card@1` card written before samplers, Γ statistics and prediction types
 * existed; committed in fixtures/models/mnist-2026-11-30/) still loads and draws byte-identical
 * PNGs for the same queries. The hashes were taken with the server of commit 1036671. So does the
 * 2026-12-01 card (few-step sampler and Γ statistics, written before the data prior existed;
 * fixtures/models/mnist-2026-12-01/, the same ONNX file).
 */
import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import { createEngine } from "./engine.ts";
import { loadModel, type Model, sha256Hex } from "./model.ts";

/** An app on the model that answers each query with the PNG of the given sha256. */
async function appMatchingGoldens(model: Model, goldens: Record<string, string>) {
  const engine = await createEngine(model, { backend: "wasm", threads: 1 });
  const app = createApp({ load: () => Promise.resolve(engine) });
  for (const [q, sha] of Object.entries(goldens)) {
    const r = await app.request(`/generate?${q}`);
    assert.equal(r.status, 200, q);
    assert.equal(await sha256Hex(new Uint8Array(await r.arrayBuffer())), sha, q);
  }
  return app;
}

const OLD_CARD = new URL("../fixtures/models/mnist-2026-11-30/model.json", import.meta.url);

const GOLDEN: Record<string, string> = {
  "seed=42": "a239068b6da82254949bd4db537c099df9e616d950f79c49da170751e66a494f",
  "seed=7&label=3&n=4": "aa761bb733cb15cde6891b84171d1d25bd00b536157c144d1749d004885bc867",
  "seed=1&eta=0&steps=5": "9c7290aa1f8d593b2aafa2626dc7b58afb6d44cd319d341b16800173caf97851",
  "seed=9&guidance=2&label=5&steps=4&n=2":
    "1add65bdaaca278a5ae58616c580357eeed4f50db08fc5d45bb27b6462edd6ed",
  "seed=3&n=3&spacing=linspace&eta=0.5&steps=6":
    "816267bc7176a5a560988ce20ab0dd08a02795123a1841a51fd700f5fe318a27",
  "seed=5&guidance=0&n=2": "eb2d9804767a1031e5a0457faa481af1b05ea228e349950f49e1dc0cdb1d20d8",
};

Deno.test("the 2026-11-30 card (model-card@1, no sampler) draws the same PNGs as before", async () => {
  const model = await loadModel(OLD_CARD);
  assert.equal(model.card.format, "ddpm-edge/model-card@1");
  assert.equal(model.card.sampling.sampler, undefined);
  assert.equal(model.card.sampling.analytic, undefined);
  const app = await appMatchingGoldens(model, GOLDEN);
  // The same query naming the sampler an old card defaults to gives the same bytes.
  const named = await app.request("/generate?seed=42&sampler=ddim");
  assert.equal(await sha256Hex(new Uint8Array(await named.arrayBuffer())), GOLDEN["seed=42"]);
  // It has no Γ statistics: analytic is refused, naming the parameter.
  const r = await app.request("/generate?seed=42&sampler=analytic");
  assert.equal(r.status, 400);
  const body = await r.json();
  assert.equal(body.issues[0].path, "sampler");
  assert.match(body.issues[0].message, /needs Analytic-DPM statistics/);
});

const CARD_2026_12_01 = new URL("../fixtures/models/mnist-2026-12-01/model.json", import.meta.url);

/** Taken with the server of commit 234650d, where this card was the shipped default. */
const GOLDEN_2026_12_01: Record<string, string> = {
  "seed=42": "1a417eab66d32e328872f06a5044cd790cac929f6da92460b5c09cea470d2e6f",
  "seed=7&label=3&n=4": "042bdb78d51a7a8320493558877e5be6cf624f6033757cca211523c7243f1b9e",
  "seed=1&sampler=ddim&eta=0&steps=5":
    "b51dde41893c4502ce544660b565d624f7584e0a68f94c4db8d35a28192163e5",
  "seed=9&guidance=2&label=5&steps=4&n=2":
    "221a082cdeaaca827986e2209553e68783b24103761282adbd75a19cd1cdf941",
  "seed=5&guidance=0&n=2": "a1733b8faa45bd8e5cf11ad5ba5ea4d25f065f11f4a8d5e81f6c5995a5bed57f",
  "seed=3&sampler=analytic&steps=6":
    "4915b7e2666c5ee64235cd0b8ee8107110029a46b4547ca4613530c30b37ab19",
};

Deno.test("the 2026-12-01 card (sampler and Γ, no data prior) draws the same PNGs as before", async () => {
  const model = await loadModel(CARD_2026_12_01);
  assert.equal(model.card.sampling.sampler, "dpm++2m-sde");
  assert.equal(model.card.sampling.prior, undefined);
  await appMatchingGoldens(model, GOLDEN_2026_12_01);
});
