/**
 * Sampling-time autoguidance of the null class, on the real shipped models in onnxruntime-web:
 * a model guided by itself draws its own null class, a worse model changes the null class only
 * (labelled requests stay the good model's), and the CLI prints one row per weight.
 */
import assert from "node:assert/strict";
import { DEFAULT_MODEL_CARD, loadModel } from "../edge/model.ts";
import { createEngine } from "../edge/engine.ts";
import { generate } from "../edge/sampler.ts";
import { autoguidedEngine, main } from "./eval_autoguide.ts";

const OLD = new URL("../fixtures/models/mnist-2026-11-30/model.json", import.meta.url);
const good = await createEngine(await loadModel(DEFAULT_MODEL_CARD), {
  backend: "wasm",
  threads: 1,
});
const bad = await createEngine(await loadModel(OLD), { backend: "wasm", threads: 1 });
const s = good.model.card.sampling;
const draw = (e: typeof good, o: { guidance?: number; label?: number } = {}) =>
  generate(e, { seed: 3, steps: s.steps, eta: s.eta, n: 2, label: 4, ...o });
const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

Deno.test("a model autoguided by itself draws its own null class", async () => {
  const own = await draw(good, { guidance: 0 });
  const self = await draw(autoguidedEngine(good, good, 2), { guidance: 0 });
  assert.ok(maxDiff(own, self) < 1e-4, `max |Δ| ${maxDiff(own, self)}`);
});

Deno.test("a worse model moves the null class (also without a label) and leaves labelled requests alone", async () => {
  const guided = autoguidedEngine(good, bad, 2);
  const nullOwn = await draw(good, { guidance: 0 });
  assert.ok(maxDiff(nullOwn, await draw(guided, { guidance: 0 })) > 0.1);
  const noLabel = { label: undefined };
  assert.ok(maxDiff(await draw(good, noLabel), await draw(guided, noLabel)) > 0.1);
  assert.deepEqual(await draw(guided), await draw(good));
  // Guiding only calls outside the chain's timesteps is the good model alone.
  const never = autoguidedEngine(good, bad, 2, [1000, 2000]);
  assert.deepEqual(await draw(never, { guidance: 0 }), nullOwn);
});

Deno.test("eval:autoguide prints a table row per weight", async () => {
  const lines = await main([
    ...["--model", DEFAULT_MODEL_CARD.pathname, "--bad", OLD.pathname],
    ...["--weights", "1,2", "--n", "20"],
  ]);
  const rows = lines.filter((l) => l.startsWith("| w = "));
  assert.equal(rows.length, 2);
  // The null class's chain: the card's nullClassSteps (12, 11 calls after the prior step), with
  // its nullClassSampler (dpm++2m-sde; labelled requests use dpm++2m since issue 26).
  assert.match(
    rows[0],
    /^\| w = 1: DPM-Solver\+\+\(2M\) SDE, power \| 12 \| 11 \| – \| 0 \| 20 \|/,
  );
  assert.match(rows[1], /^\| w = 2: /);
  await assert.rejects(main(["--model", DEFAULT_MODEL_CARD.pathname]), /--bad are required/);
});
