/**
 * sample()'s image-to-image options: `init` (start from a given x), `onDenoised` (x̂₀ per step)
 * and `known` (RePaint: kept values replaced each step, exact at the end; resampling rounds).
 * Without them the loop is unchanged (the golden tests in edge/old_card_test.ts and the
 * sampler tests guard the bytes); here, with exact oracles.
 */
import assert from "node:assert/strict";
import { truncate } from "./img2img.ts";
import { callsWith, type EpsModel, sample } from "./sample.ts";
import { makeSchedule, qSample, type Schedule } from "./schedule.ts";
import { SAMPLER_NAMES } from "./samplers/mod.ts";
import { mixtureOracle } from "./samplers/testing.ts";

const base = makeSchedule("cosine", 1000);
const a = new Float32Array(16).fill(0.8), b = new Float32Array(16).fill(-0.8);
const DETERMINISTIC = ["ddim", "dpm++2m"] as const;

function counting(model: EpsModel) {
  const f = (x: Float32Array, t: number) => (f.calls++, model(x, t));
  f.calls = 0;
  return f;
}

Deno.test("an onDenoised hook only observes: x is the same with and without it", async () => {
  for (const sampler of SAMPLER_NAMES.filter((s) => s !== "analytic")) {
    const o = { n: 2, size: 16, steps: 6, seed: 4, sampler, eta: 0.5 };
    const x = await sample(base, mixtureOracle(base, [a, b]), o);
    const y = await sample(base, mixtureOracle(base, [a, b]), { ...o, onDenoised: () => {} });
    assert.deepEqual(y, x, sampler);
  }
});

Deno.test("init: SDEdit from a noised image on a truncated chain lands on the nearer mode", async () => {
  // Start at t₀ = 299 from a noisy version of `a`: the two-image oracle returns a, not b.
  const t0 = 299;
  for (const sampler of SAMPLER_NAMES.filter((s) => s !== "analytic")) {
    const x = await sample(truncate(base, t0), mixtureOracle(base, [a, b]), {
      n: 3,
      size: 16,
      steps: 5,
      seed: 11,
      sampler,
      eta: 1,
      init: (x, plan) => {
        assert.equal(plan.timesteps[0], t0);
        qSample(base, t0, new Float32Array(48).fill(0.6), x, x);
      },
    });
    for (const v of x) assert.ok(Math.abs(v - 0.8) < 1e-3, `${sampler}: ${v}`);
  }
});

Deno.test("onDenoised sees one x̂₀ per step; the last is the final image", async () => {
  for (const sampler of SAMPLER_NAMES.filter((s) => s !== "analytic")) {
    const seen: Float64Array[] = [];
    const x = await sample(base, mixtureOracle(base, [a, b]), {
      n: 1,
      size: 16,
      steps: 7,
      seed: 2,
      sampler,
      onDenoised: (x0, k, calls) => {
        assert.equal(k, seen.length);
        assert.equal(calls, 7);
        seen.push(x0.slice());
      },
    });
    assert.equal(seen.length, 7);
    assert.deepEqual(Float32Array.from(seen[6]), x, sampler);
  }
});

function halfKnown(image: Float32Array) {
  const keep = Uint8Array.from({ length: 16 }, (_, j) => (j < 8 ? 1 : 0));
  return { x0: image, keep };
}

Deno.test("known region: kept values come back exactly; the rest is completed", async () => {
  // The data are a and b; keep the first half of a slightly-off `a`: the generated half is a's.
  const known = Float32Array.from({ length: 16 }, (_, j) => (j < 8 ? 0.75 : -1));
  for (const sampler of SAMPLER_NAMES.filter((s) => s !== "analytic")) {
    const x = await sample(base, mixtureOracle(base, [a, b]), {
      n: 1,
      size: 16,
      steps: 20,
      seed: 5,
      sampler,
      known: halfKnown(known),
    });
    for (let j = 0; j < 8; j++) assert.equal(x[j], known[j], `${sampler} kept ${j}`);
    for (let j = 8; j < 16; j++) assert.ok(Math.abs(x[j] - 0.8) < 0.05, `${sampler} ${x[j]}`);
  }
});

Deno.test("resampling: (calls − 1)·(r − 1) extra model calls, deterministic, refused by multistep", async () => {
  const known = halfKnown(Float32Array.from({ length: 16 }, (_, j) => (j < 8 ? 0.8 : 0)));
  for (const sampler of ["ddpm", "ddim"] as const) {
    const m = counting(mixtureOracle(base, [a, b]));
    const steps: number[] = [];
    const o = { n: 1, size: 16, steps: 6, seed: 3, sampler, known: { ...known, resample: 3 } };
    const x = await sample(base, m, { ...o, onStep: (_d, total) => void steps.push(total) });
    assert.equal(m.calls, callsWith(6, 3));
    assert.equal(m.calls, 6 + 5 * 2);
    assert.deepEqual(new Set(steps), new Set([16]));
    assert.deepEqual(await sample(base, mixtureOracle(base, [a, b]), o), x);
    for (let j = 0; j < 8; j++) assert.equal(x[j], known.x0[j]);
  }
  for (const sampler of ["dpm++2m", "dpm++2m-sde"] as const) {
    await assert.rejects(
      sample(base, mixtureOracle(base, [a, b]), {
        n: 1,
        size: 16,
        steps: 6,
        seed: 3,
        sampler,
        known: { ...known, resample: 2 },
      }),
      /multistep/,
    );
  }
});

Deno.test("deterministic samplers from the same init give the same x whatever the seed", async () => {
  const init = (x: Float32Array) => x.fill(0.3);
  for (const sampler of DETERMINISTIC) {
    const run = (seed: number, s: Schedule) =>
      sample(s, mixtureOracle(base, [a, b]), {
        n: 1,
        size: 16,
        steps: 5,
        seed,
        sampler,
        eta: 0,
        init,
      });
    assert.deepEqual(await run(1, base), await run(2, base), sampler);
  }
});
