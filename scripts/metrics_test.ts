import assert from "node:assert/strict";
import { Rng } from "../shared/rng.ts";
import {
  classStats,
  fid,
  frechetDistance,
  kthNeighbourRadii,
  labelCoverage,
  manifoldMetrics,
  matmul,
  meanCov,
  pairwiseSquaredDistances,
  type Rows,
  softmax,
  sqrtPsd,
  symmetricEigen,
  traceSqrtProduct,
} from "./metrics.ts";

const close = (a: number, b: number, tol: number, msg = "") =>
  assert.ok(Math.abs(a - b) <= tol, `${msg} ${a} vs ${b} (tol ${tol})`);

/** Random orthogonal d × d matrix (Gram–Schmidt on Gaussian columns). */
function randomOrthogonal(d: number, rng: Rng): Float64Array {
  const q = new Float64Array(d * d);
  for (let j = 0; j < d; j++) {
    const v = new Float64Array(d).map(() => rng.normal());
    for (let k = 0; k < j; k++) {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += v[i] * q[i * d + k];
      for (let i = 0; i < d; i++) v[i] -= dot * q[i * d + k];
    }
    const norm = Math.hypot(...v);
    for (let i = 0; i < d; i++) q[i * d + j] = v[i] / norm;
  }
  return q;
}

/** Q diag(λ) Qᵀ. */
function compose(q: Float64Array, lambda: number[], d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += q[i * d + k] * lambda[k] * q[j * d + k];
      out[i * d + j] = s;
    }
  }
  return out;
}

/** n samples of N(mean, L Lᵀ). */
function gaussianRows(n: number, mean: number[], l: Float64Array, rng: Rng): Rows {
  const d = mean.length;
  const data = new Float64Array(n * d);
  const z = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) z[k] = rng.normal();
    for (let a = 0; a < d; a++) {
      let s = mean[a];
      for (let k = 0; k < d; k++) s += l[a * d + k] * z[k];
      data[i * d + a] = s;
    }
  }
  return { n, d, data };
}

Deno.test("symmetricEigen recovers eigenvalues and A = V diag(λ) Vᵀ of a rotated diagonal", () => {
  const d = 12;
  const rng = new Rng(1);
  const lambda = Array.from({ length: d }, (_, i) => (i - 3) * 1.5 + 0.25); // includes negatives
  const a = compose(randomOrthogonal(d, rng), lambda, d);
  const { values, vectors } = symmetricEigen(a, d);
  const expected = [...lambda].sort((x, y) => y - x);
  values.forEach((v, i) => close(v, expected[i], 1e-10, `λ${i}`));
  const back = compose(vectors, [...values], d);
  back.forEach((v, i) => close(v, a[i], 1e-10, `A[${i}]`));
  // Vᵀ V = I
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += vectors[k * d + i] * vectors[k * d + j];
      close(s, i === j ? 1 : 0, 1e-12, `VᵀV[${i},${j}]`);
    }
  }
});

Deno.test("sqrtPsd: Q diag(λ) Qᵀ ↦ Q diag(√λ) Qᵀ, and its square is the input", () => {
  const d = 9;
  const q = randomOrthogonal(d, new Rng(2));
  const lambda = [9, 4, 1, 0.25, 16, 2, 3, 0.01, 0.04];
  const a = compose(q, lambda, d);
  const r = sqrtPsd(a, d);
  const expected = compose(q, lambda.map(Math.sqrt), d);
  r.forEach((v, i) => close(v, expected[i], 1e-9, `√A[${i}]`));
  matmul(r, r, d).forEach((v, i) => close(v, a[i], 1e-10, `(√A)²[${i}]`));
  // 2×2 closed form: √[[5,4],[4,5]] = [[2,1],[1,2]].
  const s = sqrtPsd([5, 4, 4, 5], 2);
  [2, 1, 1, 2].forEach((v, i) => close(s[i], v, 1e-12));
});

Deno.test("traceSqrtProduct matches the 2×2 closed form √(tr M + 2√det M) for non-commuting Σ", () => {
  const s1 = [4, 1, 1, 2];
  const s2 = [3, -1, -1, 1];
  const m = matmul(s1, s2, 2); // not symmetric: Σ₁ and Σ₂ do not commute
  assert.notEqual(m[1], m[2]);
  const det = (s1[0] * s1[3] - s1[1] * s1[2]) * (s2[0] * s2[3] - s2[1] * s2[2]);
  const expected = Math.sqrt(m[0] + m[3] + 2 * Math.sqrt(det));
  close(traceSqrtProduct(s1, s2, 2), expected, 1e-12);
});

Deno.test("frechetDistance of two known Gaussians: diagonal and rotated closed forms", () => {
  // Diagonal: ‖Δμ‖² + Σ(σ₁ − σ₂)².
  const a = {
    d: 3,
    mean: Float64Array.of(0, 1, 2),
    cov: Float64Array.of(4, 0, 0, 0, 1, 0, 0, 0, 9),
  };
  const b = {
    d: 3,
    mean: Float64Array.of(1, 1, 0),
    cov: Float64Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1),
  };
  close(frechetDistance(a, b), 1 + 4 + (1 + 0 + 4), 1e-12);
  // Same eigenbasis Q: FID = Σ(√λ₁ − √λ₂)² even when the basis is rotated.
  const d = 6;
  const q = randomOrthogonal(d, new Rng(3));
  const l1 = [1, 2, 3, 4, 5, 6], l2 = [6, 1, 0.5, 4, 2, 3];
  const c = {
    d,
    mean: new Float64Array(d),
    cov: compose(q, l1, d),
  };
  const e = { d, mean: new Float64Array(d), cov: compose(q, l2, d) };
  const expected = l1.reduce((s, v, i) => s + (Math.sqrt(v) - Math.sqrt(l2[i])) ** 2, 0);
  close(frechetDistance(c, e), expected, 1e-9);
  close(frechetDistance(c, c), 0, 1e-9);
});

Deno.test("fid: a sample set against itself is 0; two samples of known Gaussians approach the analytic value", () => {
  const rng = new Rng(4);
  const d = 4;
  const l = compose(randomOrthogonal(d, rng), [1, 0.5, 2, 1.5], d); // symmetric factor
  const x = gaussianRows(4000, [0, 0, 0, 0], l, rng);
  close(fid(x, x), 0, 1e-9, "self");
  // N(0, I) vs N(μ, 4I): analytic ‖μ‖² + d·(2 − 1)² = 4 + 4.
  const id = compose(randomOrthogonal(d, rng), [1, 1, 1, 1], d);
  const two = compose(randomOrthogonal(d, rng), [2, 2, 2, 2], d);
  const p = gaussianRows(20000, [0, 0, 0, 0], id, rng);
  const r = gaussianRows(20000, [1, 1, 1, 1], two, rng);
  close(fid(p, r), 8, 0.3, "N(0,I) vs N(1,4I)");
  // Two independent samples of one Gaussian: small and positive.
  const p2 = gaussianRows(20000, [0, 0, 0, 0], id, rng);
  const f = fid(p, p2);
  assert.ok(f >= 0 && f < 0.01, `same-distribution FID ${f}`);
});

Deno.test("meanCov: unbiased covariance of a small known set", () => {
  const { mean, cov } = meanCov({ n: 3, d: 2, data: Float64Array.of(1, 2, 3, 6, 5, 10) });
  assert.deepEqual([...mean], [3, 6]);
  assert.deepEqual([...cov], [4, 8, 8, 16]);
  assert.throws(() => meanCov({ n: 1, d: 2, data: Float64Array.of(1, 2) }), RangeError);
});

Deno.test("labelCoverage: uniform = 1, one class = 0, two of ten equal = ln2/ln10", () => {
  close(labelCoverage(new Array(10).fill(50)), 1, 1e-12);
  assert.equal(labelCoverage([0, 0, 100, 0, 0, 0, 0, 0, 0, 0]), 0);
  close(labelCoverage([5, 5, 0, 0, 0, 0, 0, 0, 0, 0]), Math.log(2) / Math.log(10), 1e-12);
  assert.equal(labelCoverage(new Array(10).fill(0)), 0);
});

Deno.test("classStats: confidence, fraction > 0.9, coverage and accuracy", () => {
  const probs = softmax({
    n: 4,
    d: 3,
    data: Float64Array.of(10, 0, 0, 0, 10, 0, 0, 0, 10, 1, 1, 1),
  });
  const s = classStats({ n: 4, d: 3, data: probs }, [0, 1, 0, 0]);
  const pHigh = Math.exp(10) / (Math.exp(10) + 2);
  close(s.confidence, (3 * pHigh + 1 / 3) / 4, 1e-12);
  assert.equal(s.confidentFraction, 0.75);
  assert.deepEqual([...s.predicted], [0, 1, 2, 0]); // ties → first class
  assert.deepEqual(s.histogram, [2, 1, 1]);
  close(s.coverage, -(0.5 * Math.log(0.5) + 2 * 0.25 * Math.log(0.25)) / Math.log(3), 1e-12);
  assert.equal(s.accuracy, 0.75);
  assert.equal(classStats({ n: 4, d: 3, data: probs }).accuracy, null);
});

/** n Gaussian rows N(offset, scale² I) in d dimensions. */
function isotropicRows(n: number, d: number, rng: Rng, scale = 1, offset = 0): Rows {
  return { n, d, data: Float64Array.from({ length: n * d }, () => offset + scale * rng.normal()) };
}

/** The first `count` rows of a set, copied. */
const headRows = (x: Rows, count: number): Rows => ({
  n: count,
  d: x.d,
  data: x.data.slice(0, count * x.d),
});

Deno.test("pairwiseSquaredDistances and kthNeighbourRadii: a hand-checked 1-D set", () => {
  const x: Rows = { n: 4, d: 1, data: Float64Array.of(0, 1, 3, 7) };
  const dd = pairwiseSquaredDistances(x, x);
  assert.deepEqual([...dd.subarray(0, 4)], [0, 1, 9, 49]);
  assert.deepEqual([...dd.subarray(8, 12)], [9, 4, 0, 16]);
  // Itself excluded: the 1st neighbour of 3 is 1 (4), its 2nd 0 (9).
  assert.deepEqual([...kthNeighbourRadii(dd, 4, 1)], [1, 1, 4, 16]);
  assert.deepEqual([...kthNeighbourRadii(dd, 4, 2)], [9, 4, 9, 36]);
  assert.throws(() => kthNeighbourRadii(dd, 4, 4), /k = 4 needs 1 ≤ k < n = 4/);
  // A duplicate is a neighbour at distance 0.
  const dup: Rows = { n: 3, d: 1, data: Float64Array.of(2, 2, 5) };
  assert.deepEqual([...kthNeighbourRadii(pairwiseSquaredDistances(dup, dup), 3, 1)], [0, 0, 9]);
});

Deno.test("manifoldMetrics: a hand-computed 1-D example at k = 1", () => {
  // Real {0,1,2,3}: every k = 1 ball has radius 1. Generated {0.5, 10}: radius 9.5 each.
  const real: Rows = { n: 4, d: 1, data: Float64Array.of(0, 1, 2, 3) };
  const fake: Rows = { n: 2, d: 1, data: Float64Array.of(0.5, 10) };
  const m = manifoldMetrics(real, fake, 1);
  assert.equal(m.precision, 0.5); // 0.5 lies in the balls of 0 and 1; 10 in none
  assert.equal(m.recall, 1); // every real point is within 9.5 of 0.5
  assert.equal(m.density, 1); // (2 + 0) balls / (k · 2)
  assert.equal(m.coverage, 0.5); // 0 and 1 have 0.5 inside their balls; 2 and 3 do not
  assert.deepEqual([m.k, m.nReal, m.nFake], [1, 4, 2]);
  assert.equal(m.recallByClass, null);
});

Deno.test("manifoldMetrics: identical sets score 1 on precision, recall and coverage", () => {
  const x = isotropicRows(200, 8, new Rng(1));
  const m = manifoldMetrics(x, x, 3);
  assert.deepEqual([m.precision, m.recall, m.coverage], [1, 1, 1]);
  assert.ok(m.density >= 1 / 3, `density ${m.density}`); // at least its own ball
});

Deno.test("manifoldMetrics: a copy of half of the set has precision 1, lower recall", () => {
  const x = isotropicRows(400, 8, new Rng(2));
  const m = manifoldMetrics(x, headRows(x, 200), 3);
  assert.equal(m.precision, 1);
  // The copied half is recalled and covered (distance 0); the other half only partly.
  assert.ok(m.recall >= 0.5 && m.recall < 1, `recall ${m.recall}`);
  assert.ok(m.coverage >= 0.5 && m.coverage < 1, `coverage ${m.coverage}`);
});

Deno.test("manifoldMetrics: one of two far clusters copied → recall 0.5, per class 1 and 0", () => {
  const rng = new Rng(3);
  const a = isotropicRows(100, 6, rng), b = isotropicRows(100, 6, rng, 1, 50);
  const real: Rows = { n: 200, d: 6, data: Float64Array.of(...a.data, ...b.data) };
  const labels = Int32Array.from({ length: 200 }, (_, i) => (i < 100 ? 0 : 1));
  const m = manifoldMetrics(real, a, 3, labels, 2);
  assert.deepEqual([m.precision, m.recall, m.coverage], [1, 0.5, 0.5]);
  assert.deepEqual(m.recallByClass, [1, 0]);
  assert.deepEqual(m.coverageByClass, [1, 0]);
  assert.throws(() => manifoldMetrics(real, a, 3, labels.subarray(1), 2), /199 labels/);
});

Deno.test("manifoldMetrics: disjoint far sets score 0 on all four", () => {
  const rng = new Rng(4);
  const m = manifoldMetrics(isotropicRows(150, 5, rng), isotropicRows(120, 5, rng, 1, 100), 3);
  assert.deepEqual([m.precision, m.recall, m.density, m.coverage], [0, 0, 0, 0]);
});

Deno.test("manifoldMetrics: precision and recall swap with the sets; a narrow generator has high precision, low recall", () => {
  const rng = new Rng(5);
  const real = isotropicRows(500, 16, rng);
  const same = manifoldMetrics(real, isotropicRows(500, 16, rng), 3);
  const narrowRows = isotropicRows(500, 16, rng, 0.6);
  const narrow = manifoldMetrics(real, narrowRows, 3);
  const wide = manifoldMetrics(real, isotropicRows(500, 16, rng, 1.6), 3);
  // Precision of F against R is recall of R against F, and the other way round.
  const swapped = manifoldMetrics(narrowRows, real, 3);
  assert.deepEqual([swapped.precision, swapped.recall], [narrow.recall, narrow.precision]);
  // Two draws of one distribution: both high, neither 1 (k = 3 balls miss some of a fresh draw).
  for (const v of [same.precision, same.recall, same.coverage]) assert.ok(v > 0.6 && v < 0.95);
  close(same.density, 1, 0.2, "density of a fresh draw");
  // Too typical (the issue-26 symptom): precision up, recall down, density far above 1.
  assert.ok(narrow.precision > 0.95 && narrow.recall < 0.3, JSON.stringify(narrow));
  assert.ok(narrow.density > 2);
  // Too spread: the other way round.
  assert.ok(wide.precision < 0.3 && wide.recall > 0.95, JSON.stringify(wide));
});
