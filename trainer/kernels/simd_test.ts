import assert from "node:assert/strict";
import { instantiate } from "./simd.ts";
import { Rng } from "../../shared/rng.ts";

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
