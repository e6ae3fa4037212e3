import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../backend.ts";
import { randomInput, wasmVsCpu } from "./testing.ts";

await initBackend({ backend: "wasm", threads: 1 });

const sums: { shape: number[]; axis: number[] | number | null; keepDims: boolean }[] = [
  { shape: [3, 4, 5, 6], axis: [0, 1, 2], keepDims: false },
  { shape: [3, 4, 5, 6], axis: [1, 2], keepDims: true },
  { shape: [3, 4, 5], axis: -1, keepDims: false },
  { shape: [3, 4, 5], axis: [0, 2], keepDims: false }, // not contiguous: stock kernel
  { shape: [7, 3], axis: null, keepDims: false },
];
for (const [i, c] of sums.entries()) {
  Deno.test(`sum ${c.shape} axis ${c.axis} keepDims ${c.keepDims} matches cpu`, async () => {
    const err = await wasmVsCpu(
      (x) => tf.sum(x, c.axis ?? undefined, c.keepDims),
      [randomInput(c.shape, 80 + i)],
    );
    assert.ok(err < 1e-5, `relative error ${err}`);
  });
}

Deno.test("shared-buffer Identity/Cast: clones and casts stay independent of disposal", async () => {
  await tf.setBackend("wasm");
  const a = tf.tensor1d([1, 2, 3]);
  const b = tf.clone(a), c = tf.cast(a, "float32"), d = tf.cast(a, "int32");
  a.dispose();
  assert.deepEqual([...b.dataSync()], [1, 2, 3]);
  b.dispose();
  assert.deepEqual([...c.dataSync()], [1, 2, 3]);
  assert.equal(d.dtype, "int32");
  assert.deepEqual([...d.dataSync()], [1, 2, 3]);
  const v = tf.variable(c);
  v.assign(tf.tensor1d([4, 5, 6]));
  assert.deepEqual([...c.dataSync()], [1, 2, 3]);
  c.dispose();
  d.dispose();
  v.dispose();
});

Deno.test("resizeNearestNeighbor ×2 gradient on wasm is the exact adjoint (sums 2×2 blocks)", async () => {
  await tf.setBackend("wasm");
  const dy = randomInput([2, 6, 4, 3], 90);
  const g = tf.grads((x: tf.Tensor) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [6, 4]));
  const got = g([tf.zeros([2, 3, 2, 3])], tf.tensor(dy.data, dy.shape))[0].dataSync();
  for (let n = 0; n < 2; n++) {
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 2; j++) {
        for (let ch = 0; ch < 3; ch++) {
          let want = 0;
          for (const [di, dj] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
            want += dy.data[((n * 6 + 2 * i + di) * 4 + 2 * j + dj) * 3 + ch];
          }
          const v = got[((n * 3 + i) * 2 + j) * 3 + ch];
          assert.ok(Math.abs(v - want) < 1e-5, `(${n},${i},${j},${ch}): ${v} vs ${want}`);
        }
      }
    }
  }
});
