import assert from "node:assert/strict";
import { makeSchedule, type Schedule } from "./schedule.ts";
import { sample } from "./sample.ts";
import type { EpsModel } from "./sample.ts";
import { assertOnTwoImages, mixtureOracle } from "./samplers/testing.ts";

/** The exact ε of a data set holding one image: ε*(x_t, t) = (x_t − √ᾱ_t·x₀)/√(1−ᾱ_t). */
function oneImageOracle(s: Schedule, x0: Float32Array): EpsModel {
  return (x, t) => {
    const a = s.sqrtAlphasCumprod[t], b = s.sqrtOneMinusAlphasCumprod[t];
    return Promise.resolve(x.map((v, j) => (v - a * x0[j % x0.length]) / b));
  };
}

const image = Float32Array.from({ length: 16 }, (_, j) => Math.sin(j) * 0.9);

for (const steps of [1000, 10]) {
  for (const eta of [0, 1]) {
    Deno.test(`one-image oracle: S=${steps}, η=${eta} returns that image`, async () => {
      const base = makeSchedule("linear", 1000);
      const x = await sample(base, oneImageOracle(base, image), {
        n: 3,
        size: 16,
        steps,
        seed: 9,
        eta,
      });
      for (let j = 0; j < x.length; j++) {
        assert.ok(Math.abs(x[j] - image[j % 16]) < 1e-4, `pixel ${j}: ${x[j]} vs ${image[j % 16]}`);
      }
    });
  }
}

Deno.test("two-image oracle: ancestral samples land on the data and cover both images", async () => {
  const base = makeSchedule("cosine", 1000);
  const a = new Float32Array(16).fill(0.8), b = new Float32Array(16).fill(-0.8);
  const x = await sample(base, mixtureOracle(base, [a, b]), {
    n: 40,
    size: 16,
    steps: 20,
    seed: 3,
  });
  assertOnTwoImages(x, 40);
});

Deno.test("same seed gives the same samples; another seed does not", async () => {
  const base = makeSchedule("linear", 1000);
  const model = mixtureOracle(base, [
    new Float32Array(4).fill(0.5),
    new Float32Array(4).fill(-0.5),
  ]);
  const run = (seed: number) => sample(base, model, { n: 8, size: 4, steps: 5, seed });
  assert.deepEqual(await run(1), await run(1));
  assert.notDeepEqual(await run(1), await run(2));
});

Deno.test("the model is called at the respaced original timesteps, from T−1 down to 0", async () => {
  const base = makeSchedule("linear", 1000);
  const seen: number[] = [];
  await sample(base, (x, t) => {
    seen.push(t);
    return Promise.resolve(new Float32Array(x.length));
  }, { n: 1, size: 1, steps: 4, seed: 0 });
  assert.deepEqual(seen, [999, 666, 333, 0]);
});

Deno.test("an aborted signal stops sampling", async () => {
  const base = makeSchedule("linear", 1000);
  const ac = new AbortController();
  let calls = 0;
  await assert.rejects(
    sample(base, (x) => {
      if (++calls === 3) ac.abort(new Error("client went away"));
      return Promise.resolve(new Float32Array(x.length));
    }, { n: 1, size: 1, steps: 50, seed: 0, signal: ac.signal }),
    /client went away/,
  );
  assert.equal(calls, 3);
});
