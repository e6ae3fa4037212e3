import assert from "node:assert/strict";
import {
  DEFAULT_PRIOR_MAX_ALPHA,
  measurePrior,
  priorFromCard,
  priorToCard,
  withPrior,
} from "./data_prior.ts";
import { denoise, denoisedBuffers, PREDICTIONS } from "./prediction.ts";
import { makeSchedule } from "./schedule.ts";
import { Rng } from "./rng.ts";
import { ModelCardSchema } from "./model_card.ts";

// Four 2-pixel images: class 0 = (1, 0) and (0.5, 0), class 1 = (−1, 1) and (−1, 0.5).
const IMAGES = Float32Array.of(1, 0, 0.5, 0, -1, 1, -1, 0.5);
const LABELS = Int32Array.of(0, 0, 1, 1);

Deno.test("measurePrior: per-class and all-image mean and variance", () => {
  const p = measurePrior(IMAGES, 2, LABELS, 2);
  assert.equal(p.classes, 2);
  assert.equal(p.maxAlpha, DEFAULT_PRIOR_MAX_ALPHA);
  assert.deepEqual([...p.mean], [0.75, 0, -1, 0.75, -0.125, 0.375]);
  const close = (a: ArrayLike<number>, b: number[]) =>
    b.forEach((v, i) => assert.ok(Math.abs(a[i] - v) < 1e-6, `${a[i]} vs ${v}`));
  close(p.variance, [0.0625, 0, 0, 0.0625, 0.796875, 0.171875]);
  const u = measurePrior(IMAGES, 2, null, 0);
  close(u.mean, [-0.125, 0.375]);
  assert.throws(() => measurePrior(IMAGES, 2, Int32Array.of(0, 0, 1, 2), 2), /label 2/);
  assert.throws(
    () => measurePrior(IMAGES, 2, Int32Array.of(0, 0, 0, 0), 2),
    /no images of class 1/,
  );
  assert.throws(() => measurePrior(IMAGES, 3, null, 0), /whole/);
});

Deno.test("withPrior: the first call of the cosine chain is answered without the model", async () => {
  const base = makeSchedule("cosine", 1000);
  const p = measurePrior(IMAGES, 2, LABELS, 2);
  const calls: number[] = [];
  const model = (_x: Float32Array, t: number) => {
    calls.push(t);
    return Promise.resolve(new Float32Array(4).fill(0.5));
  };
  const x = new Rng(1).fillNormal(new Float32Array(4));
  for (const prediction of PREDICTIONS) {
    calls.length = 0;
    const m = withPrior(model, base, p, { n: 2, labels: [0, 1], guidance: 1, prediction });
    const t = 999, alpha = base.sqrtAlphasCumprod[t], sigma = base.sqrtOneMinusAlphasCumprod[t];
    assert.ok(alpha < DEFAULT_PRIOR_MAX_ALPHA);
    const out = await m(x, t);
    assert.deepEqual(calls, [], prediction);
    // The sampler's own conversion of that output gives the Gaussian posterior mean x̂₀.
    const d = denoise(prediction, x, out, alpha, sigma, false, denoisedBuffers(4));
    const s2 = sigma * sigma;
    const post = (m: number, v: number, xi: number) =>
      m + (alpha * v / (alpha * alpha * v + s2)) * (xi - alpha * m);
    const want = [0, 1].flatMap((y) =>
      [0, 1].map((j) => post(p.mean[y * 2 + j], p.variance[y * 2 + j], x[y * 2 + j]))
    );
    want.forEach((v, i) => assert.ok(Math.abs(d.x0[i] - v) < 1e-3, `${prediction} ${i}`));
    // Below maxAlpha only: t = 998 goes to the model.
    assert.ok(base.sqrtAlphasCumprod[998] > DEFAULT_PRIOR_MAX_ALPHA);
    await m(x, 998);
    assert.deepEqual(calls, [998]);
  }
});

Deno.test("withPrior: guidance mixes the class and null posteriors linearly, guidance 0 is null", async () => {
  const base = makeSchedule("cosine", 1000);
  const p = measurePrior(IMAGES, 2, LABELS, 2);
  const never = () => Promise.reject(new Error("called"));
  const x = new Float32Array(2);
  const x0At = async (labels: number[] | null, guidance: number) => {
    const out = await withPrior(never, base, p, { n: 1, labels, guidance, prediction: "x0" })(
      x,
      999,
    );
    return Array.from(out);
  };
  const near = (a: number[], b: number[]) =>
    b.forEach((v, i) => assert.ok(Math.abs(a[i] - v) < 1e-6, `${a} vs ${b}`));
  near(await x0At([0], 1), [0.75, 0]);
  near(await x0At([1], 1), [-1, 0.75]);
  near(await x0At(null, 1), [-0.125, 0.375]);
  near(await x0At([1], 0), [-0.125, 0.375]);
  // w = 2: x̂₀_null + 2·(x̂₀_1 − x̂₀_null).
  near(await x0At([1], 2), [-1.875, 1.125]);
});

Deno.test("priorToCard / priorFromCard round-trip and fit the card schema", () => {
  const p = measurePrior(IMAGES, 2, LABELS, 2);
  const c = priorToCard(p, "four test images");
  const back = priorFromCard(c);
  assert.deepEqual(back, p);
  assert.throws(() => priorFromCard({ ...c, size: 3 }), /need 9 means/);
  const card = JSON.parse(
    Deno.readTextFileSync(
      new URL("../fixtures/models/mnist-2026-11-30/model.json", import.meta.url),
    ),
  );
  const parsed = ModelCardSchema.parse({ ...card, sampling: { ...card.sampling, prior: c } });
  assert.deepEqual(parsed.sampling.prior, c);
  assert.equal(ModelCardSchema.parse(card).sampling.prior, undefined);
});
