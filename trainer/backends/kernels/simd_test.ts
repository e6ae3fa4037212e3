import assert from "node:assert/strict";
import { instantiate } from "./simd.ts";
import { Rng } from "../../../shared/rng.ts";

/** opa on its own memory, against a plain JS loop, with and without fused multiply-add. */
for (const relaxed of [true, false]) {
  Deno.test(`opa (relaxed SIMD ${relaxed}): strided outer-product sums match a JS loop`, () => {
    const memory = new WebAssembly.Memory({ initial: 4 });
    const k = instantiate(memory, relaxed);
    const f = new Float32Array(memory.buffer);
    const rng = new Rng(7);
    // Shapes covering the 2-row and 1-row bands and the 16- and 4-column blocks.
    for (
      const [nI, nJ, nRows, nPix] of [[5, 24, 3, 7], [2, 16, 1, 1], [1, 4, 2, 5], [8, 36, 4, 9]]
    ) {
      const sRow = 40 * 4, vRow = 400 * 4, sPix = 9 * 4, vPix = 40 * 4;
      const s = 1024, v = 8192, out = 65536; // byte addresses
      for (let i = 0; i < 60000; i++) f[256 + i] = rng.normal();
      const want = new Float64Array(nI * nJ);
      for (let i = 0; i < nI * nJ; i++) want[i] = f[out / 4 + i];
      for (let r = 0; r < nRows; r++) {
        for (let p = 0; p < nPix; p++) {
          for (let i = 0; i < nI; i++) {
            const a = f[(s + r * sRow + p * sPix) / 4 + i];
            for (let j = 0; j < nJ; j++) {
              want[i * nJ + j] += a * f[(v + r * vRow + p * vPix) / 4 + j];
            }
          }
        }
      }
      k.opa(s, v, out, nRows, sRow, vRow, nPix, sPix, vPix, nI, nJ);
      for (let i = 0; i < nI * nJ; i++) {
        assert.ok(Math.abs(f[out / 4 + i] - want[i]) < 1e-4, `${nI}×${nJ} at ${i}`);
      }
    }
  });
}

Deno.test("gnAffineSilu: SiLU and sigmoid over ±100 (clamped exp) match Math.exp", () => {
  const memory = new WebAssembly.Memory({ initial: 2 });
  const k = instantiate(memory, true);
  const f = new Float32Array(memory.buffer);
  const n = 1000, C = 4, x = 4096, a = 256, b = 512, y = 8192, sig = 16384; // float indices
  for (let i = 0; i < n * C; i++) f[x + i] = -100 + (200 * i) / (n * C);
  f.fill(1, a, a + C);
  f.fill(0, b, b + C);
  k.gnAffineSilu(4 * x, n, C, 4 * a, 4 * b, 4 * y, 4 * sig);
  for (let i = 0; i < n * C; i++) {
    const z = f[x + i], s = 1 / (1 + Math.exp(-z));
    assert.ok(Math.abs(f[sig + i] - s) < 2e-7, `sigmoid(${z}) = ${f[sig + i]}, want ${s}`);
    assert.ok(Math.abs(f[y + i] - z * s) < 1e-6 * Math.max(1, Math.abs(z)), `silu(${z})`);
  }
});
