import assert from "node:assert/strict";
import { makeSchedule, spacedTimesteps } from "../../shared/schedule.ts";
import { mixtureOracle } from "../../shared/samplers/testing.ts";
import { Rng } from "../../shared/rng.ts";
import { sample } from "../../shared/sample.ts";
import { denoise, denoisedBuffers, type Prediction } from "../../shared/prediction.ts";
import {
  afterPriorCalls,
  type BatchModel,
  distillTargets,
  impliedX0,
  powerCallOrder,
  powerRealTimesteps,
  roundGrid,
} from "./math.ts";
import type { EpsModel } from "../../shared/sample.ts";

Deno.test("power(M) is exactly the even steps of power(2M), before and after rounding", () => {
  for (const T of [1000, 500, 4000, 64]) {
    for (let M = 1; 2 * M <= Math.min(T, 256); M *= 2) {
      const real = powerRealTimesteps(T, M), real2 = powerRealTimesteps(T, 2 * M);
      for (let j = 0; j < M; j++) assert.equal(real2[2 * j], real[j], `T=${T} M=${M} j=${j}`);
      // After rounding too, unless power(2M)'s fix-up for merged timesteps near T−1 fires
      // (S close to T: 2M = 128 at T = 1000), which roundGrid refuses.
      const s = powerCallOrder(T, M), s2 = powerCallOrder(T, 2 * M);
      const merged = [...s2].some((t, k) => Math.round(real2[k]) !== t);
      if (!merged) assert.deepEqual([...s], [...s2].filter((_, k) => k % 2 === 0), `T=${T} M=${M}`);
      else assert.throws(() => roundGrid(makeSchedule("cosine", T), M, "epsilon"), /not nested/);
      if (T >= 500 && 2 * M <= 32) assert.ok(!merged, `T=${T} M=${M}`);
      assert.equal(s[0], T - 1);
    }
  }
  // powerCallOrder is spacedTimesteps(…, "power") noisiest first.
  assert.deepEqual([...powerCallOrder(1000, 4)], [...spacedTimesteps(1000, 4, "power")].reverse());
  // and roundGrid's teacher is the DDIM plan on power(2M).
  const g = roundGrid(makeSchedule("cosine", 1000), 4, "epsilon");
  assert.deepEqual([...g.teacher.timesteps], [...powerCallOrder(1000, 8)]);
});

Deno.test("x̃₀: one DDIM step t → s with it lands on the teacher's x_s", () => {
  const base = makeSchedule("cosine", 1000), rng = new Rng(3);
  const xt = rng.fillNormal(new Float32Array(16)), xs = rng.fillNormal(new Float32Array(16));
  const t = 900, s = 500;
  const x0 = impliedX0(base, xt, t, xs, s);
  const at = base.sqrtAlphasCumprod[t], st = base.sqrtOneMinusAlphasCumprod[t];
  const as = base.sqrtAlphasCumprod[s], ss = base.sqrtOneMinusAlphasCumprod[s];
  for (let j = 0; j < 16; j++) {
    const eps = (xt[j] - at * x0[j]) / st;
    assert.ok(Math.abs(as * x0[j] + ss * eps - xs[j]) < 1e-9);
  }
  assert.deepEqual([...impliedX0(base, xt, t, xs, null)], [...xs]); // the last step: x̃₀ = x_s
});

/** The oracle as a batched model (one call per image: each has its own t). */
function batched(model: EpsModel, px: number): BatchModel {
  return async (x, t) => {
    const out = new Float32Array(x.length);
    for (let i = 0; i < t.length; i++) {
      out.set(await model(x.slice(i * px, (i + 1) * px), t[i]), i * px);
    }
    return out;
  };
}

Deno.test("one-image data: the distilled target is the oracle's own output at x_t", async () => {
  // With one image the probability-flow ODE is exact: every DDIM step stays on the ray
  // α·x⁰ + σ·ε, so the two teacher steps land on α_s·x⁰ + σ_s·ε and x̃₀ = x⁰, i.e. the target
  // is the ε (or v, x₀) the oracle itself gives at x_t.
  const base = makeSchedule("cosine", 1000), px = 12, rng = new Rng(7);
  const image = Float32Array.from({ length: px }, () => 1.8 * rng.uniform() - 0.9);
  const oracle = mixtureOracle(base, [image]);
  for (const prediction of ["epsilon", "v", "x0"] as Prediction[]) {
    const teacher: BatchModel = async (x, t) => {
      // The oracle is an ε-model: convert to the teacher's prediction type.
      const eps = await batched(oracle, px)(x, t, null);
      const out = new Float32Array(x.length);
      for (let i = 0; i < t.length; i++) {
        const a = base.sqrtAlphasCumprod[t[i]], s = base.sqrtOneMinusAlphasCumprod[t[i]];
        for (let j = i * px; j < (i + 1) * px; j++) {
          const x0 = (x[j] - s * eps[j]) / a;
          out[j] = prediction === "epsilon"
            ? eps[j]
            : prediction === "x0"
            ? x0
            : a * eps[j] - s * x0;
        }
      }
      return out;
    };
    for (const M of [1, 2, 4]) {
      const grid = roundGrid(base, M, prediction);
      const k = Int32Array.from({ length: M }, (_, j) => j);
      const xt = new Float32Array(M * px);
      for (let i = 0; i < M; i++) {
        const t = grid.student[i], e = rng.fillNormal(new Float32Array(px));
        for (let j = 0; j < px; j++) {
          xt[i * px + j] = base.sqrtAlphasCumprod[t] * image[j] +
            base.sqrtOneMinusAlphasCumprod[t] * e[j];
        }
      }
      const { target } = await distillTargets(base, grid, teacher, xt, k, null, prediction);
      const want = await teacher(xt, Float32Array.from(k, (kk) => grid.student[kk]), null);
      for (let j = 0; j < target.length; j++) {
        // (x̂₀ is formed with 1/α ≈ 150 at t = T−1, so float32 x costs a little)
        assert.ok(
          Math.abs(target[j] - want[j]) < 2e-3,
          `${prediction} M=${M} value ${j}: ${target[j]} vs ${want[j]}`,
        );
      }
    }
  }
});

Deno.test("a student giving the distilled targets reproduces the teacher's 2M-step DDIM chain", async () => {
  // Two-image data (the ODE is not trivial): a 'student' that answers each call with the
  // distilled target for the point it is at samples, in M DDIM steps, what the teacher samples in
  // 2M — the chain property the loss trains for.
  const base = makeSchedule("cosine", 1000), px = 6, rng = new Rng(11);
  const images = [0, 1].map(() =>
    Float32Array.from({ length: px }, () => 1.6 * rng.uniform() - 0.8)
  );
  const oracle = mixtureOracle(base, images), teacher = batched(oracle, px);
  const M = 2, grid = roundGrid(base, M, "epsilon");
  const opts = {
    n: 1,
    size: px,
    seed: 5,
    sampler: "ddim" as const,
    eta: 0,
    spacing: "power" as const,
  };
  const viaTeacher = await sample(base, oracle, { ...opts, steps: 2 * M });
  const student: EpsModel = async (x, t) => {
    const k = Int32Array.of(grid.student.indexOf(t));
    return (await distillTargets(base, grid, teacher, x.slice(), k, null, "epsilon")).target;
  };
  const viaStudent = await sample(base, student, { ...opts, steps: M });
  for (let j = 0; j < px; j++) assert.ok(Math.abs(viaStudent[j] - viaTeacher[j]) < 2e-3);
  // (sanity: the denoiser round-trip the plans use)
  const d = denoise("epsilon", viaStudent, new Float32Array(px), 1, 0, true, denoisedBuffers(px));
  assert.equal(d.x0.length, px);
});

Deno.test("after a prior step to t₁: the M calls are the 2M-call grid's even calls, and the chain ends at T−1", () => {
  const base = makeSchedule("cosine", 1000);
  for (const t1 of [934, 500]) {
    for (let M = 1; 2 * M <= 32; M *= 2) {
      const a = afterPriorCalls(t1, M), b = afterPriorCalls(t1, 2 * M);
      assert.equal(a[0], t1);
      assert.deepEqual([...a], [...b].filter((_, k) => k % 2 === 0), `t1=${t1} M=${M}`);
      const g = roundGrid(base, M, "epsilon", t1);
      assert.deepEqual([...g.student], [...a]);
      assert.deepEqual([...g.chain], [...[...a].reverse(), 999]);
      // The teacher's DDIM plan covers its 2M calls only (the targets start at t₁).
      assert.deepEqual([...g.teacher.timesteps], [...b]);
      assert.equal(g.afterPrior, t1);
    }
  }
  // Power spacing on t₁ + 1 timesteps (ρ = 1.7): 934, 646 for two calls.
  assert.deepEqual([...afterPriorCalls(934, 2)], [934, 646]);
  assert.throws(() => roundGrid(base, 2, "epsilon", 999), /below T − 1/);
  assert.throws(() => afterPriorCalls(100, 32), /do not fit/);
  // No prior step: the chain is power(M) itself.
  assert.deepEqual([...roundGrid(base, 4, "epsilon").chain], [
    ...spacedTimesteps(1000, 4, "power"),
  ]);
});
