import assert from "node:assert/strict";
import { Rng } from "./rng.ts";

/** Independent reference: xoshiro128** and SplitMix32 in BigInt arithmetic. */
function referenceU32(seed: number, count: number): number[] {
  const M = 0xffffffffn;
  let z = BigInt(seed);
  const mix = () => {
    z = (z + 0x9e3779b9n) & M;
    let r = z;
    r = ((r ^ (r >> 16n)) * 0x85ebca6bn) & M;
    r = ((r ^ (r >> 13n)) * 0xc2b2ae35n) & M;
    return (r ^ (r >> 16n)) & M;
  };
  const s = [mix(), mix(), mix(), mix()];
  const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (32n - k))) & M;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    out.push(Number((rotl((s[1] * 5n) & M, 7n) * 9n) & M));
    const t = (s[1] << 9n) & M;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11n);
  }
  return out;
}

Deno.test("xoshiro128** matches an independent BigInt implementation", () => {
  for (const seed of [0, 1, 42, 0xffffffff]) {
    const r = new Rng(seed);
    const got = Array.from({ length: 1000 }, () => r.nextU32());
    assert.deepEqual(got, referenceU32(seed, 1000));
  }
});

Deno.test("golden values for seed 42 (pins the stream across runtimes and releases)", () => {
  const r = new Rng(42);
  const u = Array.from({ length: 4 }, () => r.nextU32());
  assert.deepEqual(u, referenceU32(42, 4));
  const g = new Rng(42);
  const normals = Array.from({ length: 4 }, () => Number(g.normal().toFixed(6)));
  assert.deepEqual(normals, GOLDEN_NORMALS_SEED_42);
});

// First four Box–Muller normals for seed 42; recorded once, any change to the stream breaks them.
const GOLDEN_NORMALS_SEED_42 = [0.63623, 0.651442, 0.830802, -1.921877];

Deno.test("Gaussian moments over 10^5 draws", () => {
  const r = new Rng(7);
  const n = 100_000;
  let m1 = 0, m2 = 0, m3 = 0, m4 = 0;
  for (let i = 0; i < n; i++) {
    const v = r.normal();
    m1 += v;
    m2 += v * v;
    m3 += v * v * v;
    m4 += v * v * v * v;
  }
  m1 /= n;
  m2 /= n;
  m3 /= n;
  m4 /= n;
  // Standard errors: mean 1/√n ≈ 0.003, var √(2/n) ≈ 0.0045, skew √(15/n) ≈ 0.012, kurt √(96/n) ≈ 0.031
  assert.ok(Math.abs(m1) < 0.015, `mean ${m1}`);
  assert.ok(Math.abs(m2 - 1) < 0.02, `variance ${m2}`);
  assert.ok(Math.abs(m3) < 0.05, `third moment ${m3}`);
  assert.ok(Math.abs(m4 - 3) < 0.15, `fourth moment ${m4}`);
});

Deno.test("same seed, same stream; different seeds differ; state round-trips", () => {
  const a = new Rng(123), b = new Rng(123), c = new Rng(124);
  const xa = a.fillNormal(new Float32Array(16)), xb = b.fillNormal(new Float32Array(16));
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, c.fillNormal(new Float32Array(16)));
  a.normal(); // leaves a spare
  const copy = Rng.fromState(a.state());
  for (let i = 0; i < 10; i++) assert.equal(copy.normal(), a.normal());
});

Deno.test("int(n) is in range and roughly uniform; shuffle is a permutation", () => {
  const r = new Rng(5);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 100_000; i++) counts[r.int(10)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10_000) < 500, `bucket ${c}`);
  const p = r.shuffle(Int32Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.throws(() => new Rng(-1), RangeError);
  assert.throws(() => new Rng(2 ** 32), RangeError);
  assert.throws(() => new Rng(1.5), RangeError);
});
