/**
 * Every sampler against exact ε-oracles of one- and two-image data sets, determinism, the call
 * schedule, and the η-family's byte-for-byte equality with the pre-sampler step.
 */
import assert from "node:assert/strict";
import { makeSchedule, respace, type Spacing } from "../schedule.ts";
import { sample } from "../sample.ts";
import { reverseStep, stepCoefficients } from "../step.ts";
import { Rng } from "../rng.ts";
import { SAMPLER_NAMES, type SamplerName, SAMPLERS } from "./mod.ts";
import { assertOnTwoImages, mixtureOracle } from "./testing.ts";

const base = makeSchedule("cosine", 1000);
/** Γ ≡ 1 is exact for a one-image data set (ε* = ε); for two images Γ < 1 but any Γ in [0, 1]
 * keeps σ² in bounds — the oracle tests use the one-image value, the bounds tests the rest. */
const ones = { gamma: new Float64Array(1000).fill(1) };

const image = Float32Array.from({ length: 16 }, (_, j) => Math.sin(j) * 0.9);

for (const sampler of SAMPLER_NAMES) {
  for (const [steps, spacing] of [[1000, "linspace"], [10, "trailing"], [4, "trailing"]] as const) {
    Deno.test(`${sampler}: one-image oracle, S=${steps} ${spacing} returns that image`, async () => {
      const x = await sample(base, mixtureOracle(base, [image]), {
        n: 3,
        size: 16,
        steps,
        spacing,
        seed: 9,
        sampler,
        analytic: ones,
      });
      for (let j = 0; j < x.length; j++) {
        assert.ok(Math.abs(x[j] - image[j % 16]) < 1e-4, `pixel ${j}: ${x[j]} vs ${image[j % 16]}`);
      }
    });
  }

  Deno.test(`${sampler}: two-image oracle at 5 trailing steps lands on the data`, async () => {
    const a = new Float32Array(16).fill(0.8), b = new Float32Array(16).fill(-0.8);
    const x = await sample(base, mixtureOracle(base, [a, b]), {
      n: 40,
      size: 16,
      steps: 5,
      spacing: "trailing",
      seed: 3,
      sampler,
      analytic: ones,
    });
    assertOnTwoImages(x, 40);
  });

  Deno.test(`${sampler}: same seed, same bytes; calls at the plan's timesteps`, async () => {
    const seen: number[] = [];
    const model = mixtureOracle(base, [
      new Float32Array(4).fill(0.5),
      new Float32Array(4).fill(-0.5),
    ]);
    const run = (seed: number, log = false) =>
      sample(base, (x, t) => (log && seen.push(t), model(x, t)), {
        n: 8,
        size: 4,
        steps: 5,
        spacing: "trailing",
        seed,
        sampler,
        analytic: ones,
      });
    const first = await run(1, true);
    assert.deepEqual(await run(1), first);
    assert.notDeepEqual(await run(2), first);
    assert.deepEqual(seen, [999, 799, 599, 399, 199]);
    assert.equal(SAMPLERS[sampler].callsPerStep, 1);
  });
}

Deno.test("ddim/ddpm plans equal the pre-sampler η-step byte for byte (old cards draw the same)", async () => {
  const model = mixtureOracle(base, [image, image.map((v) => -v)]);
  const cases: [SamplerName, number, "small" | "large", Spacing][] = [
    ["ddim", 1, "small", "trailing"],
    ["ddim", 0, "small", "linspace"],
    ["ddim", 0.5, "small", "quadratic"],
    ["ddpm", 1, "small", "trailing"],
    ["ddpm", 1, "large", "linspace"],
  ];
  for (const [sampler, eta, variance, spacing] of cases) {
    const got = await sample(base, model, {
      n: 2,
      size: 16,
      steps: 7,
      spacing,
      seed: 5,
      sampler,
      eta,
      variance,
    });
    // The loop as it was before samplers: reverseStep over the respaced chain, T−1 down to 0.
    const s = respace(base, 7, spacing), rng = new Rng(5);
    const x = rng.fillNormal(new Float32Array(32)), noise = new Float32Array(32);
    const o = { eta, clipDenoised: true, variance };
    for (let i = s.T - 1; i >= 0; i--) {
      const c = stepCoefficients(s, i, o);
      const eps = await model(x, s.timesteps[i]);
      reverseStep(x, eps, c.noiseStd > 0 ? rng.fillNormal(noise) : null, c, true);
    }
    assert.deepEqual(got, x, `${sampler} η=${eta} ${variance} ${spacing}`);
  }
});

Deno.test("a stochastic sampler's noise comes from the seed; the deterministic ones take none", () => {
  for (const name of SAMPLER_NAMES) {
    const plan = SAMPLERS[name].plan(base, {
      steps: 5,
      spacing: "trailing",
      eta: name === "ddim" ? 0 : 1,
      variance: "small",
      clipDenoised: true,
      prediction: "epsilon",
      analytic: { gamma: new Float64Array(1000).fill(0.5) },
    });
    const noisy = [0, 1, 2, 3, 4].map((k) => plan.needsNoise(k));
    const deterministic = name === "ddim" || name === "dpm++2m";
    assert.deepEqual(
      noisy,
      deterministic ? [false, false, false, false, false] : [
        true,
        true,
        true,
        true,
        false,
      ],
      name,
    );
  }
});
