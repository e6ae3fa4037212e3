/**
 * `?sampler=` through the real app on a real (tiny, int8) ONNX model whose card carries Γ
 * statistics estimated on it: validation, determinism per sampler, the card's default, and the
 * JSON report.
 */
import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import { createEngine } from "./engine.ts";
import { loadModel } from "./model.ts";
import { writeTinyModel } from "./testing.ts";
import { SAMPLER_NAMES } from "../shared/samplers/mod.ts";

const model = await loadModel(await writeTinyModel({ T: 50, steps: 4, analytic: true }));
const engine = await createEngine(model, { backend: "wasm", threads: 1 });
const app = createApp({ load: () => Promise.resolve(engine) });
const bytes = async (q: string) => {
  const r = await app.request(`/generate?${q}`);
  assert.equal(r.status, 200, `${q}: ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
};

Deno.test("the exporter's Γ statistics: one value per timestep, finite, in a plausible range", () => {
  const a = model.card.sampling.analytic!;
  assert.equal(a.gamma.length, 50);
  assert.equal(a.gammaNull?.length, 50, "a conditional model gets the null class's Γ too");
  assert.equal(a.timesteps, 50);
  assert.equal(a.forwardPasses, 2 * 50 * 4);
  assert.ok(a.gamma.every((g) => Number.isFinite(g) && g >= 0 && g < 10), String(a.gamma));
});

Deno.test("every sampler: same query, same bytes; samplers differ from each other", async () => {
  const seen = new Map<string, string>();
  // (ddim at η = 1 is ddpm's ancestral step exactly, so ddim runs at η = 0 here.)
  assert.deepEqual(await bytes("seed=11&sampler=ddim&eta=1"), await bytes("seed=11&sampler=ddpm"));
  for (const sampler of SAMPLER_NAMES) {
    const q = `seed=11&n=2&label=one&sampler=${encodeURIComponent(sampler)}` +
      (sampler === "ddim" ? "&eta=0" : "");
    const a = await bytes(q);
    assert.deepEqual(await bytes(q), a, sampler);
    const key = Array.from(a).join();
    assert.ok(!seen.has(key), `${sampler} gives the same image as ${seen.get(key)}`);
    seen.set(key, sampler);
  }
});

Deno.test("sampler is validated: unknown, unavailable and eta with a sampler that takes none", async () => {
  const issue = async (q: string) => {
    const r = await app.request(`/generate?${q}`);
    assert.equal(r.status, 400, q);
    return (await r.json()).issues[0];
  };
  const unknown = await issue("sampler=euler");
  assert.equal(unknown.path, "sampler");
  assert.match(unknown.message, /must be one of ddpm, ddim, analytic, dpm\+\+2m, dpm\+\+2m-sde/);
  const eta = await issue("sampler=dpm%2B%2B2m&eta=0");
  assert.equal(eta.path, "eta");
  assert.match(eta.message, /takes no eta; eta applies to ddim, analytic/);
  assert.equal((await issue("sampler=ddpm&sampler=ddim")).message, "given more than once");
  // eta with the samplers that take it is fine.
  await bytes("seed=1&sampler=analytic&eta=0");
  await bytes("seed=1&sampler=ddim&eta=0.3");
});

Deno.test("format=json reports the sampler; the card's sampler is the default", async () => {
  const r = await app.request("/generate?seed=3&format=json&sampler=dpm%2B%2B2m-sde");
  assert.equal((await r.json()).params.sampler, "dpm++2m-sde");
  const d = await (await app.request("/generate?seed=3&format=json")).json();
  assert.equal(d.params.sampler, "ddim");
  // A card that names a sampler: requests without one use it.
  const m2 = await loadModel(await writeTinyModel({ T: 50, steps: 4, sampler: "analytic" }));
  const app2 = createApp({ load: () => createEngine(m2, { backend: "wasm", threads: 1 }) });
  const j = await (await app2.request("/generate?seed=3&format=json")).json();
  assert.equal(j.params.sampler, "analytic");
  const doc = await (await app2.request("/openapi.json")).json();
  const p = doc.paths["/generate"].get.parameters.find((x: { name: string }) =>
    x.name === "sampler"
  );
  assert.equal(p.schema.default, "analytic");
  assert.deepEqual(p.schema.enum, [...SAMPLER_NAMES]);
});
