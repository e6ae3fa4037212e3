import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../backend.ts";
import { groupNormSilu, groupNormSiluComposite } from "./group_norm_silu.ts";
import { evaluate, randomInput, relErr } from "./testing.ts";

await initBackend({ backend: "wasm", threads: 1 });

const cases: { x: number[]; groups: number; silu: boolean }[] = [
  { x: [2, 5, 5, 8], groups: 4, silu: true },
  { x: [3, 7, 6, 6], groups: 3, silu: false },
  { x: [2, 4, 4, 4], groups: 1, silu: true },
  { x: [1, 3, 3, 8], groups: 8, silu: true },
  // SIMD kernels: the UNet's shapes (16–48 channels, 8 groups), with and without SiLU
  { x: [3, 7, 7, 48], groups: 8, silu: true },
  { x: [2, 14, 14, 16], groups: 8, silu: false },
  { x: [2, 9, 5, 12], groups: 2, silu: true },
];

for (const [i, c] of cases.entries()) {
  Deno.test(`fused GroupNorm ${c.x} G=${c.groups} silu=${c.silu} on wasm matches the composite on cpu`, async () => {
    const C = c.x[3];
    const gamma = randomInput([C], 60 + i), beta = randomInput([C], 70 + i);
    gamma.data.forEach((v, j) => (gamma.data[j] = 1 + 0.5 * v));
    const x = randomInput(c.x, 50 + i);
    x.data.forEach((v, j) => (x.data[j] = 3 + 2 * v)); // non-zero mean, non-unit variance
    const ref = await evaluate(
      "cpu",
      (a, g, b) => groupNormSiluComposite(a, g, b, c.groups, c.silu, 1e-5),
      [x, gamma, beta],
    );
    const got = await evaluate(
      "wasm",
      (a, g, b) => groupNormSilu(a, g, b, c.groups, c.silu, 1e-5),
      [x, gamma, beta],
    );
    assert.ok(tf.getKernel("GroupNormSilu", "wasm") !== undefined);
    assert.ok(relErr(got.y, ref.y) < 1e-4, `y ${relErr(got.y, ref.y)}`);
    for (const [j, name] of ["dx", "dγ", "dβ"].entries()) {
      const e = relErr(got.grads[j], ref.grads[j]);
      assert.ok(e < 1e-3, `${name} ${e}`);
    }
  });
}

Deno.test("groupNormSilu rejects a channel count not divisible by groups", () => {
  assert.throws(
    () => groupNormSilu(tf.zeros([1, 2, 2, 6]), tf.ones([6]), tf.zeros([6]), 4, true),
    /divisible/,
  );
});
