/**
 * Classifier guidance in the sampling loop (shared/sample.ts `classifier`), with the exact
 * classifier of a two-image data set: p(k | x_t) is the softmax of −‖x_t − √ᾱ·x⁽ᵏ⁾‖²/(2(1−ᾱ)),
 * so ∇ₓ log p(y | x_t) = √ᾱ/(1−ᾱ)·(x⁽ʸ⁾ − E[x₀ | x_t]) and scale 1 turns the mixture into the
 * class-y data set: every sample must land on image y, with every sampler.
 */
import assert from "node:assert/strict";
import { denoise, denoisedBuffers, PREDICTIONS, shiftEpsilon, target } from "./prediction.ts";
import {
  type ClassifierGuidance,
  type EpsModel,
  guidanceScaleAt,
  planFor,
  sample,
} from "./sample.ts";
import { makeSchedule, type Schedule } from "./schedule.ts";
import { SAMPLER_NAMES } from "./samplers/mod.ts";
import { mixtureOracle } from "./samplers/testing.ts";

const base = makeSchedule("cosine", 1000);
const a = new Float32Array(16).fill(0.8), b = new Float32Array(16).fill(-0.8);
const images = [a, b];
const gamma = { gamma: new Float64Array(1000).fill(1) };

/** ∇ₓ log p(y | x_t) of the exact two-image classifier, counting its calls. */
function exactGrad(s: Schedule, y: number) {
  const d = 16;
  const f = (x: Float32Array, t: number) => {
    f.calls++;
    const al = s.sqrtAlphasCumprod[t], v = 1 - s.alphasCumprod[t];
    const g = new Float32Array(x.length);
    for (let n = 0; n < x.length / d; n++) {
      const xi = x.subarray(n * d, (n + 1) * d);
      const l = images.map((im) => -im.reduce((acc, p, j) => acc + (xi[j] - al * p) ** 2, 0));
      const m = Math.max(...l);
      const w = l.map((q) => Math.exp((q - m) / (2 * v)));
      const z = w[0] + w[1];
      for (let j = 0; j < d; j++) {
        const mean = (w[0] * a[j] + w[1] * b[j]) / z;
        g[n * d + j] = al / v * (images[y][j] - mean);
      }
    }
    return Promise.resolve(g);
  };
  f.calls = 0;
  return f;
}

function samplesOn(x: Float32Array, image: Float32Array, tol: number): number {
  let on = 0;
  for (let k = 0; k < x.length / 16; k++) {
    const im = x.subarray(k * 16, (k + 1) * 16);
    if (Math.max(...im.map((v, j) => Math.abs(v - image[j]))) < tol) on++;
  }
  return on;
}

for (const sampler of SAMPLER_NAMES) {
  Deno.test(`classifier guidance at scale 1 with the exact classifier: ${sampler} draws only class y`, async () => {
    for (const eta of sampler === "ddim" || sampler === "analytic" ? [0, 1] : [1]) {
      for (const y of [0, 1]) {
        const o = { n: 24, size: 16, steps: 25, seed: 7, sampler, eta, analytic: gamma };
        const classifier: ClassifierGuidance = { scale: 1, grad: exactGrad(base, y) };
        const x = await sample(base, mixtureOracle(base, images), { ...o, classifier });
        assert.equal(samplesOn(x, images[y], 0.02), 24, `${sampler} η=${eta} y=${y}`);
        // Unguided, both images are drawn.
        const free = await sample(base, mixtureOracle(base, images), o);
        assert.ok(samplesOn(free, images[y], 0.02) < 24, `${sampler} η=${eta} unguided`);
      }
    }
  });
}

Deno.test("classifier scale 0 draws the unguided bytes and never calls the classifier", async () => {
  for (const sampler of SAMPLER_NAMES) {
    const o = { n: 3, size: 16, steps: 6, seed: 11, sampler, eta: 0.5, analytic: gamma };
    const grad = exactGrad(base, 0);
    const x = await sample(base, mixtureOracle(base, images), o);
    const y = await sample(base, mixtureOracle(base, images), {
      ...o,
      classifier: { scale: 0, grad },
    });
    assert.deepEqual(y, x, sampler);
    assert.equal(grad.calls, 0);
  }
});

Deno.test("classifier guidance: one gradient per model call, at the x and t the model saw", async () => {
  const seen: [number, number][] = [];
  const model: EpsModel = (x, t) => (seen.push([t, x[0]]), mixtureOracle(base, images)(x, t));
  const grads: [number, number][] = [];
  const grad = exactGrad(base, 1);
  const classifier = {
    scale: 2,
    grad: (x: Float32Array, t: number) => (grads.push([t, x[0]]), grad(x, t)),
  };
  for (const sampler of SAMPLER_NAMES) {
    seen.length = grads.length = 0;
    await sample(base, model, {
      n: 2,
      size: 16,
      steps: 5,
      seed: 1,
      sampler,
      analytic: gamma,
      classifier,
    });
    assert.deepEqual(grads, seen, sampler);
    assert.equal(grads.length, 5);
  }
});

Deno.test("shiftEpsilon: every prediction type decodes to ε̂ + δ and its x̂₀", () => {
  const alpha = 0.6, sigma = 0.8;
  const x = Float32Array.from([0.3, -0.5, 0.9]), eps = [0.2, -1.1, 0.4], delta = [0.5, -0.25, 1];
  for (const p of PREDICTIONS) {
    const x0 = Array.from(x, (v, j) => (v - sigma * eps[j]) / alpha);
    const out = Float32Array.from(x0, (v, j) => target(p, v, eps[j], alpha, sigma));
    shiftEpsilon(p, out, delta, alpha, sigma);
    const d = denoise(p, x, out, alpha, sigma, false, denoisedBuffers(3));
    for (let j = 0; j < 3; j++) {
      assert.ok(Math.abs(d.eps[j] - (eps[j] + delta[j])) < 1e-5, `${p} ε[${j}]`);
      const want = (x[j] - sigma * (eps[j] + delta[j])) / alpha;
      assert.ok(Math.abs(d.x0[j] - want) < 1e-5, `${p} x̂₀[${j}]`);
    }
  }
});

Deno.test("classifier guidance is the same for an ε-, v- and x0-predicting model", async () => {
  const eps = mixtureOracle(base, images);
  for (const prediction of PREDICTIONS) {
    const model: EpsModel = async (x, t) => {
      const e = await eps(x, t);
      const al = base.sqrtAlphasCumprod[t], s = base.sqrtOneMinusAlphasCumprod[t];
      return Float32Array.from(x, (v, j) => target(prediction, (v - s * e[j]) / al, e[j], al, s));
    };
    for (const sampler of ["ddim", "dpm++2m"] as const) {
      const o = { n: 4, size: 16, steps: 10, seed: 3, sampler, eta: 0 };
      const classifier = { scale: 1, grad: exactGrad(base, 1) };
      const want = await sample(base, eps, { ...o, classifier });
      const got = await sample(base, model, { ...o, prediction, classifier });
      for (let j = 0; j < want.length; j++) {
        assert.ok(Math.abs(got[j] - want[j]) < 1e-3, `${prediction} ${sampler} [${j}]`);
      }
    }
  }
});

Deno.test("classifier guidance at the step's mean (ancestral steps): class y, g at μ and the next timestep", async () => {
  for (const sampler of ["ddpm", "ddim", "analytic", "dpm++2m-sde"] as const) {
    for (const y of [0, 1]) {
      const o = { n: 24, size: 16, steps: 25, seed: 7, sampler, eta: 1, analytic: gamma };
      const classifier = { scale: 1, grad: exactGrad(base, y), at: "mean" as const };
      const x = await sample(base, mixtureOracle(base, images), { ...o, classifier });
      assert.equal(samplesOn(x, images[y], 0.02), 24, `${sampler} y=${y}`);
    }
  }
  const ts: number[] = [];
  const grad = exactGrad(base, 0);
  await sample(base, mixtureOracle(base, images), {
    n: 1,
    size: 16,
    steps: 4,
    seed: 1,
    sampler: "ddpm",
    classifier: { scale: 1, at: "mean", grad: (x, t) => (ts.push(t), grad(x, t)) },
  });
  // g at μ, i.e. at the next call's timestep; the last step adds no noise, so it is ε-shifted
  // at its own timestep.
  const t = planFor(base, { steps: 4, sampler: "ddpm" }).timesteps;
  assert.deepEqual(ts, [t[1], t[2], t[3], t[3]]);
});

Deno.test("highNoise: calls above `above` steer with S·factor, the rest with S (every path)", async () => {
  const above = 500, factor = 0.25;
  for (const sampler of SAMPLER_NAMES) {
    for (const at of ["input", "mean"] as const) {
      const o = { n: 3, size: 16, steps: 8, seed: 5, sampler, eta: 0.5, analytic: gamma };
      const grad = exactGrad(base, 1);
      // The same scale schedule by hand: g itself scaled where t is above the threshold.
      const byHand: ClassifierGuidance = {
        scale: 3,
        at,
        grad: async (x, t) => {
          const g = await grad(x, t);
          return t > above ? g.map((v) => v * factor) : g;
        },
      };
      const withField: ClassifierGuidance = { scale: 3, at, grad, highNoise: { above, factor } };
      // A model that predicts ε̂ = 0 keeps the guidance's every trace in the output.
      const model: EpsModel = (x) => Promise.resolve(new Float32Array(x.length));
      const want = await sample(base, model, { ...o, classifier: byHand });
      const got = await sample(base, model, { ...o, classifier: withField });
      assert.deepEqual(got, want, `${sampler} at ${at}`);
      // Factor 1 is S everywhere: the bytes of guidance without the field.
      const plain = await sample(base, model, { ...o, classifier: { scale: 3, at, grad } });
      const one = await sample(base, model, {
        ...o,
        classifier: { scale: 3, at, grad, highNoise: { above, factor: 1 } },
      });
      assert.deepEqual(one, plain, `${sampler} at ${at}, factor 1`);
      assert.notDeepEqual(got, plain, `${sampler} at ${at}: the factor changed the draw`);
    }
  }
});

Deno.test("guidanceScaleAt: S·factor strictly above the threshold", () => {
  const g: ClassifierGuidance = {
    scale: 8,
    grad: () => Promise.resolve([]),
    highNoise: { above: 850, factor: 0.5 },
  };
  assert.equal(guidanceScaleAt(g, 850), 8);
  assert.equal(guidanceScaleAt(g, 851), 4);
  assert.equal(guidanceScaleAt({ scale: 8, grad: g.grad }, 999), 8);
});
