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
  // SIMD channel sums: several 1024-row chunks, and keepDims
  { shape: [3, 40, 30, 8], axis: [0, 1, 2], keepDims: false },
  { shape: [2, 5, 5, 12], axis: [0, 1, 2], keepDims: true },
  { shape: [3, 30, 40, 4], axis: [1, 2], keepDims: true },
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

// 3 channels: stock kernel; 8: the SIMD 2×2 block sum
for (const C of [3, 8]) {
  Deno.test(`resizeNearestNeighbor ×2 gradient on wasm is the exact adjoint (C=${C})`, async () => {
    await tf.setBackend("wasm");
    const dy = randomInput([2, 6, 4, C], 90);
    const g = tf.grads((x: tf.Tensor) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [6, 4]));
    const got = g([tf.zeros([2, 3, 2, C])], tf.tensor(dy.data, dy.shape))[0].dataSync();
    for (let n = 0; n < 2; n++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 2; j++) {
          for (let ch = 0; ch < C; ch++) {
            let want = 0;
            for (const [di, dj] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
              want += dy.data[((n * 6 + 2 * i + di) * 4 + 2 * j + dj) * C + ch];
            }
            const v = got[((n * 3 + i) * 2 + j) * C + ch];
            assert.ok(Math.abs(v - want) < 1e-5, `(${n},${i},${j},${ch}): ${v} vs ${want}`);
          }
        }
      }
    }
  });
}

// Channel split/concat (and each other's gradient): SIMD parts of 4k channels, stock otherwise.
const splits: { shape: number[]; sizes: number[]; axis: number }[] = [
  { shape: [2, 3, 5, 16], sizes: [4, 8, 4], axis: 3 },
  { shape: [3, 7, 12], sizes: [8, 4], axis: -1 },
  { shape: [2, 3, 3, 8], sizes: [3, 5], axis: 3 }, // not multiples of 4
  { shape: [2, 4, 3, 4], sizes: [1, 3], axis: 1 }, // not the channel axis
];
for (const [i, c] of splits.entries()) {
  Deno.test(`split ${c.shape} into ${c.sizes} on axis ${c.axis}, concat reversed: matches cpu`, async () => {
    const err = await wasmVsCpu(
      (x) => tf.concat(tf.split(x, c.sizes, c.axis).reverse(), c.axis),
      [randomInput(c.shape, 95 + i)],
    );
    assert.ok(err < 1e-6, `relative error ${err}`);
  });
}
