import assert from "node:assert/strict";
import {
  checkedTimesteps,
  cosineBetas,
  linearBetas,
  makeSchedule,
  qSample,
  respace,
  spacedTimesteps,
} from "./schedule.ts";
import { SPACINGS } from "./schedule.ts";

const close = (a: number, b: number, tol: number, msg?: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${msg ?? ""} ${a} vs ${b} (tol ${tol})`);

Deno.test("linear schedule: ᾱ at t = 0, 499, 999 matches an independent product", () => {
  const s = makeSchedule("linear", 1000);
  // Independently: β_t = 1e-4 + t·(0.02 − 1e-4)/999, ᾱ_t = Π (1 − β_k).
  const abar = (t: number) => {
    let p = 1;
    for (let k = 0; k <= t; k++) p *= 1 - (1e-4 + k * (0.02 - 1e-4) / 999);
    return p;
  };
  for (const t of [0, 499, 999]) close(s.alphasCumprod[t], abar(t), 1e-12, `t=${t}`);
  close(s.alphasCumprod[0], 0.9999, 1e-15);
  // Known magnitudes of the DDPM schedule: ᾱ_999 ≈ 4.04e-5, ᾱ_499 ≈ 0.0786.
  close(s.alphasCumprod[999], 4.04e-5, 1e-6);
  close(s.alphasCumprod[499], 0.0786, 1e-3);
});

Deno.test("derived quantities are consistent", () => {
  const s = makeSchedule("linear", 1000);
  for (const t of [0, 1, 500, 999]) {
    close(s.sqrtAlphasCumprod[t] ** 2 + s.sqrtOneMinusAlphasCumprod[t] ** 2, 1, 1e-12);
    const expected = s.betas[t] * (t === 0 ? 0 : 1 - s.alphasCumprod[t - 1]) /
      (1 - s.alphasCumprod[t]);
    close(s.posteriorVariance[t], expected, 1e-15);
  }
  assert.equal(s.posteriorVariance[0], 0);
});

Deno.test("cosine schedule: ᾱ follows cos², β capped at 0.999", () => {
  const b = cosineBetas(1000);
  assert.equal(Math.max(...b), 0.999);
  const s = makeSchedule("cosine", 1000);
  const f = (t: number) => Math.cos(((t / 1000 + 0.008) / 1.008) * Math.PI / 2) ** 2;
  close(s.alphasCumprod[499], f(500) / f(0), 1e-9);
  assert.ok(b.every((x, i) => i === 0 || x >= b[i - 1]), "cosine β must be non-decreasing");
});

Deno.test("linear betas rescale with T", () => {
  const b = linearBetas(100);
  close(b[0], 1e-3, 1e-15);
  close(b[99], 0.2, 1e-15);
});

Deno.test("spaced timesteps: first T−1, last 0, strictly increasing, S of them", () => {
  for (const S of [2, 5, 10, 14, 20, 50, 999, 1000]) {
    const k = spacedTimesteps(1000, S);
    assert.equal(k.length, S);
    assert.equal(k[0], 0);
    assert.equal(k[S - 1], 999);
    for (let i = 1; i < S; i++) assert.ok(k[i] > k[i - 1]);
  }
  assert.deepEqual([...spacedTimesteps(1000, 1)], [999]);
  assert.throws(() => spacedTimesteps(1000, 0), RangeError);
  assert.throws(() => spacedTimesteps(1000, 1001), RangeError);
  assert.throws(() => spacedTimesteps(1000, 2.5), RangeError);
});

Deno.test("trailing, quadratic and power spacings: known values, ascending, end at T−1", () => {
  assert.deepEqual(
    [...spacedTimesteps(1000, 10, "trailing")],
    [99, 199, 299, 399, 499, 599, 699, 799, 899, 999],
  );
  // 999·(i/4)² rounded: 0, 62.4, 249.75, 561.9, 999
  assert.deepEqual([...spacedTimesteps(1000, 5, "quadratic")], [0, 62, 250, 562, 999]);
  // 1000·(1 − (k/5)^1.7) − 1 for k = 4…0: 315.7, 580.4, 789.4, 935.2, 1000 (then − 1).
  assert.deepEqual([...spacedTimesteps(1000, 5, "power")], [315, 579, 788, 934, 999]);
  assert.deepEqual([...spacedTimesteps(1000, 4, "power")], [386, 691, 904, 999]);
  for (const spacing of SPACINGS) {
    for (const S of [2, 3, 7, 10, 14, 50, 333, 999, 1000]) {
      const k = spacedTimesteps(1000, S, spacing);
      assert.equal(k.length, S, `${spacing} S=${S}`);
      assert.equal(k[S - 1], 999, `${spacing} S=${S}`);
      assert.ok(k[0] >= 0);
      for (let i = 1; i < S; i++) assert.ok(k[i] > k[i - 1], `${spacing} S=${S} at ${i}`);
    }
    // S = T keeps every timestep whatever the spacing.
    assert.deepEqual(
      [...spacedTimesteps(50, 50, spacing)],
      Array.from({ length: 50 }, (_, i) => i),
    );
  }
  // Power puts more of its steps at high noise than trailing does.
  const high = (k: Int32Array) => k.filter((t) => t >= 500).length;
  assert.ok(high(spacedTimesteps(1000, 10, "power")) > high(spacedTimesteps(1000, 10, "trailing")));
  // Quadratic puts more of its steps at low noise than linspace does.
  const low = (k: Int32Array) => k.filter((t) => t < 250).length;
  assert.ok(low(spacedTimesteps(1000, 20, "quadratic")) > low(spacedTimesteps(1000, 20)));
  // @ts-expect-error: an unknown spacing is refused at run time too
  assert.throws(() => spacedTimesteps(1000, 10, "cubic"), RangeError);
});

Deno.test("respacing keeps ᾱ at the kept timesteps and recomputes β", () => {
  const base = makeSchedule("linear", 1000);
  for (
    const [S, spacing] of [[1, "linspace"], [10, "linspace"], [14, "trailing"], [20, "quadratic"], [
      1000,
      "linspace",
    ]] as const
  ) {
    const r = respace(base, S, spacing);
    assert.equal(r.T, S);
    r.timesteps.forEach((t, i) => close(r.alphasCumprod[i], base.alphasCumprod[t], 1e-12));
    // β_i = 1 − ᾱ_i/ᾱ_{i−1}
    for (let i = 1; i < S; i++) {
      close(r.betas[i], 1 - r.alphasCumprod[i] / r.alphasCumprod[i - 1], 1e-12);
    }
  }
  const full = respace(base, 1000);
  full.betas.forEach((b, i) => close(b, base.betas[i], 1e-12));
});

Deno.test("qSample mixes x0 and ε with √ᾱ and √(1−ᾱ)", () => {
  const s = makeSchedule("linear", 1000);
  const out = qSample(s, 499, [1, -1], [0.5, 2]);
  const a = Math.sqrt(s.alphasCumprod[499]), b = Math.sqrt(1 - s.alphasCumprod[499]);
  close(out[0], a + 0.5 * b, 1e-6);
  close(out[1], -a + 2 * b, 1e-6);
});

Deno.test("an explicit chain: respace keeps ᾱ at exactly those timesteps; bad chains are named", () => {
  const base = makeSchedule("cosine", 1000);
  const chain = respace(base, 3, "power", [646, 934, 999]);
  assert.deepEqual([...chain.timesteps], [646, 934, 999]);
  for (const [i, t] of [646, 934, 999].entries()) {
    close(chain.alphasCumprod[i], base.alphasCumprod[t], 1e-12, `t=${t}`);
  }
  // the spacing is ignored when timesteps are given
  assert.deepEqual(
    [...respace(base, 3, "linspace", [646, 934, 999]).alphasCumprod],
    [...chain.alphasCumprod],
  );
  assert.throws(() => checkedTimesteps(1000, 3, [646, 999]), /2 entries, steps is 3/);
  assert.throws(() => checkedTimesteps(1000, 2, [999, 646]), /strictly ascending/);
  assert.throws(
    () => checkedTimesteps(1000, 2, [646, 1000]),
    /timesteps\[1\] = 1000 is not an integer in 0…999/,
  );
  assert.throws(() => checkedTimesteps(1000, 2, [6.5, 999]), /timesteps\[0\] = 6.5/);
});
