import assert from "node:assert/strict";
import { makeSchedule, respace } from "./schedule.ts";
import { guide, reverseStep, stepCoefficients } from "./step.ts";

Deno.test("η = 1 step mean equals the DDPM posterior mean μ̃ = c1·x̂₀ + c2·x_t", () => {
  for (const s of [makeSchedule("linear", 1000), respace(makeSchedule("cosine", 1000), 14)]) {
    for (const i of [1, Math.floor(s.T / 2), s.T - 1]) {
      const x = Float32Array.of(0.3, -1.2, 2.0), eps = [0.1, -0.4, 0.9];
      const c = stepCoefficients(s, i, { eta: 1, clipDenoised: false, variance: "small" });
      const out = reverseStep(x.slice(), eps, [0, 0, 0], c, false);
      for (let j = 0; j < 3; j++) {
        const x0 = (x[j] - Math.sqrt(1 - s.alphasCumprod[i]) * eps[j]) /
          Math.sqrt(s.alphasCumprod[i]);
        const mu = s.posteriorMeanCoef1[i] * x0 + s.posteriorMeanCoef2[i] * x[j];
        // float32 output: relative tolerance
        assert.ok(
          Math.abs(out[j] - mu) < 1e-6 * Math.max(1, Math.abs(mu)),
          `step ${i}: ${out[j]} vs ${mu}`,
        );
      }
      assert.ok(Math.abs(c.noiseStd ** 2 - s.posteriorVariance[i]) < 1e-12);
    }
  }
});

Deno.test("η = 0 is deterministic DDIM; variance 'large' uses β; last step adds no noise", () => {
  const s = makeSchedule("linear", 1000);
  assert.equal(
    stepCoefficients(s, 500, { eta: 0, clipDenoised: true, variance: "small" }).noiseStd,
    0,
  );
  const large = stepCoefficients(s, 500, { eta: 1, clipDenoised: true, variance: "large" });
  assert.ok(Math.abs(large.noiseStd ** 2 - s.betas[500]) < 1e-15);
  assert.equal(
    stepCoefficients(s, 0, { eta: 1, clipDenoised: true, variance: "large" }).noiseStd,
    0,
  );
  const c = stepCoefficients(s, 500, { eta: 1, clipDenoised: true, variance: "small" });
  assert.throws(() => reverseStep(new Float32Array(1), [0], null, c, true), /needs noise/);
});

Deno.test("clipping bounds x̂₀ at the last step", () => {
  const s = makeSchedule("linear", 1000);
  const c = stepCoefficients(s, 0, { eta: 1, clipDenoised: true, variance: "small" });
  const out = reverseStep(Float32Array.of(5, -5, 0.5), [0, 0, 0], null, c, true);
  assert.equal(out[0], 1);
  assert.equal(out[1], -1);
  assert.ok(Math.abs(out[2] - 0.5 / Math.sqrt(0.9999)) < 1e-7, `${out[2]}`);
});

Deno.test("guidance interpolates/extrapolates between unconditional and conditional ε", () => {
  const out = guide([1, 2], [3, 0], 2, new Float32Array(2));
  assert.deepEqual([...out], [5, -2]);
  assert.deepEqual([...guide([1, 2], [3, 0], 0, new Float32Array(2))], [1, 2]);
});
