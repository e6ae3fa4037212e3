import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../backend.ts";
import { randomInput, wasmVsCpu } from "./testing.ts";

await initBackend({ backend: "wasm", threads: 1 });

const cases: { a: number[]; b: number[]; tA: boolean; tB: boolean }[] = [
  { a: [5, 4], b: [4, 3], tA: false, tB: false },
  { a: [4, 5], b: [4, 3], tA: true, tB: false },
  { a: [5, 4], b: [3, 4], tA: false, tB: true },
  { a: [4, 5], b: [3, 4], tA: true, tB: true },
  { a: [3, 7, 5], b: [3, 7, 5], tA: false, tB: true }, // attention q·kᵀ
  { a: [3, 7, 7], b: [3, 7, 5], tA: false, tB: false }, // attention p·v
  { a: [2, 6, 4], b: [2, 6, 3], tA: true, tB: false },
];

for (const [i, c] of cases.entries()) {
  Deno.test(`matMul ${c.a}${c.tA ? "ᵀ" : ""} × ${c.b}${c.tB ? "ᵀ" : ""}: value and grads match cpu`, async () => {
    const err = await wasmVsCpu(
      (a, b) => tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, c.tA, c.tB),
      [randomInput(c.a, 20 + i), randomInput(c.b, 40 + i)],
    );
    assert.ok(err < 1e-5, `relative error ${err}`);
  });
}
