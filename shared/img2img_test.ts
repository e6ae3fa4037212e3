import assert from "node:assert/strict";
import { slerp, startTimestep, truncate } from "./img2img.ts";
import { makeSchedule, respace } from "./schedule.ts";
import { Rng } from "./rng.ts";

Deno.test("startTimestep: ⌈s·T⌉ − 1, strength in (0, 1]", () => {
  assert.equal(startTimestep(1000, 1), 999);
  assert.equal(startTimestep(1000, 0.5), 499);
  assert.equal(startTimestep(1000, 1e-9), 0);
  for (const bad of [0, -0.1, 1.01, NaN]) assert.throws(() => startTimestep(1000, bad));
});

Deno.test("truncate keeps ᾱ value for value; respacing it ends at t₀", () => {
  const base = makeSchedule("cosine", 1000);
  const cut = truncate(base, 499);
  assert.equal(cut.T, 500);
  for (let t = 0; t < 500; t++) assert.equal(cut.alphasCumprod[t], base.alphasCumprod[t]);
  for (const spacing of ["linspace", "trailing", "quadratic", "power"] as const) {
    const chain = respace(cut, 5, spacing);
    assert.equal(chain.timesteps.at(-1), 499, spacing);
    assert.ok(Math.abs(chain.alphasCumprod.at(-1)! - base.alphasCumprod[499]) < 1e-12, spacing);
  }
  assert.equal(truncate(base, 999), base);
  assert.throws(() => truncate(base, 1000));
});

Deno.test("slerp: exact ends, norm kept between two noise draws", () => {
  const a = new Rng(1).fillNormal(new Float32Array(784));
  const b = new Rng(2).fillNormal(new Float32Array(784));
  assert.deepEqual(slerp(a, b, 0), a);
  assert.deepEqual(slerp(a, b, 1), b);
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const mid = slerp(a, b, 0.5);
  assert.ok(Math.abs(norm(mid) - (norm(a) + norm(b)) / 2) / norm(a) < 0.02);
  // A linear mix would shrink it by ~1/√2.
  const lerp = a.map((v, j) => (v + b[j]) / 2);
  assert.ok(norm(lerp) < 0.8 * norm(mid));
  // Parallel vectors: lerp, no NaN.
  assert.deepEqual(Array.from(slerp(a, a, 0.3)).every(Number.isFinite), true);
  assert.deepEqual(Array.from(slerp(new Float32Array(3), new Float32Array(3), 0.5)), [0, 0, 0]);
});
