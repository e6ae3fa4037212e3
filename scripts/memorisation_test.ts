import assert from "node:assert/strict";
import { Rng } from "../shared/rng.ts";
import { isNearCopy, memorisationStats, NEAR_COPY_RMS, nearestTraining } from "./memorisation.ts";

const DIM = 48;

function randomSet(n: number, seed: number): Float32Array {
  const rng = new Rng(seed), x = new Float32Array(n * DIM);
  for (let i = 0; i < x.length; i++) x[i] = rng.uniform() * 2 - 1;
  return x;
}

Deno.test("nearestTraining: a copy of a training image is at distance 0, found at its index", () => {
  const train = randomSet(50, 1);
  const q = train.slice(17 * DIM, 18 * DIM);
  const r = nearestTraining(q, 1, train, 50, DIM);
  assert.equal(r.index[0], 17);
  assert.ok(r.d1[0] < 1e-6);
  assert.ok(r.d2[0] > 0.1);
  assert.equal(memorisationStats(r).nearCopyShare, 1);
});

Deno.test("nearestTraining: RMS on the [0, 1] scale (a constant offset of 0.1 reads 0.1)", () => {
  const train = new Float32Array(2 * DIM).fill(-1); // two black images…
  train.fill(1, DIM); // …and a white one
  const q = new Float32Array(DIM).fill(-1 + 0.2); // 0.1 above black on [0, 1]
  const r = nearestTraining(q, 1, train, 2, DIM);
  assert.equal(r.index[0], 0);
  assert.ok(Math.abs(r.d1[0] - 0.1) < 1e-6);
  assert.ok(Math.abs(r.d2[0] - 0.9) < 1e-6);
});

Deno.test("memorisationStats: fresh random images are no copies; copies are counted", () => {
  const train = randomSet(200, 2), fresh = randomSet(100, 3);
  const none = memorisationStats(nearestTraining(fresh, 100, train, 200, DIM));
  assert.equal(none.nearCopyShare, 0);
  assert.ok(none.medianNearest > 0.2);
  // A quarter of the queries are training images plus a little noise (below NEAR_COPY_RMS).
  const mixed = fresh.slice();
  const rng = new Rng(4);
  for (let i = 0; i < 25; i++) {
    for (let k = 0; k < DIM; k++) {
      mixed[i * DIM + k] = train[(i * 7) * DIM + k] + (rng.uniform() - 0.5) * 0.02;
    }
  }
  const s = memorisationStats(nearestTraining(mixed, 100, train, 200, DIM), 3);
  assert.equal(s.nearCopyShare, 0.25);
  assert.equal(s.closest.length, 3);
  assert.ok(s.closest.every(([q, t, d]) => q < 25 && t === q * 7 && d < NEAR_COPY_RMS));
  assert.ok(s.closest[0][2] <= s.closest[1][2]);
});

Deno.test("isNearCopy: absolute threshold or a third of the second-nearest distance", () => {
  assert.ok(isNearCopy(NEAR_COPY_RMS / 2, 0.5));
  assert.ok(isNearCopy(0.1, 0.31));
  assert.ok(!isNearCopy(0.1, 0.29));
  assert.throws(() => nearestTraining(new Float32Array(3), 1, new Float32Array(6), 2, 4));
});
