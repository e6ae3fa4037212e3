import assert from "node:assert/strict";
import { toByte } from "./image.ts";
import { resizeArea, resizeNearest, toModelImage, toRegenerateMask } from "./resize.ts";
import type { Rgb } from "./png_input.ts";

const gray = (w: number, h: number, v: (x: number, y: number) => number): Rgb => ({
  width: w,
  height: h,
  data: Float32Array.from({ length: w * h * 3 }, (_, i) => {
    const p = Math.floor(i / 3);
    return v(p % w, Math.floor(p / w));
  }),
});

Deno.test("area resize: box means when shrinking, identity at the same size, mean preserved", () => {
  const plane = Float32Array.from({ length: 16 }, (_, i) => i);
  assert.deepEqual(Array.from(resizeArea(plane, 4, 4, 2)), [2.5, 4.5, 10.5, 12.5]);
  assert.deepEqual(resizeArea(plane, 4, 4, 4), plane);
  const odd = Float32Array.from({ length: 7 * 5 }, (_, i) => Math.sin(i));
  for (const size of [3, 4, 11, 28]) {
    const r = resizeArea(odd, 7, 5, size);
    const mean = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0) / a.length;
    assert.ok(Math.abs(mean(r) - mean(odd)) < 1e-5, `size ${size}`);
  }
  // Enlarging 2 → 4 replicates pixels.
  assert.deepEqual(Array.from(resizeArea(Float32Array.of(0, 1, 1, 0), 2, 2, 4)), [
    ...[0, 0, 1, 1],
    ...[0, 0, 1, 1],
    ...[1, 1, 0, 0],
    ...[1, 1, 0, 0],
  ]);
});

Deno.test("nearest resize takes the source pixel under each centre", () => {
  assert.deepEqual(Array.from(resizeNearest(Float32Array.of(0, 1, 2, 3), 2, 2, 1)), [3]);
  assert.deepEqual(Array.from(resizeNearest(Float32Array.of(5, 7), 2, 1, 2)), [5, 7, 5, 7]);
});

Deno.test("model images are 8-bit levels in [−1, 1]: toByte gives the input bytes back", () => {
  const img = gray(28, 28, (x, y) => ((x * 9 + y * 31) % 256) / 255);
  const m = toModelImage(img, 28, 1);
  for (let p = 0; p < 784; p++) assert.equal(toByte(m[p]), Math.round(img.data[p * 3] * 255));
  // RGB → luma 0.299 R + 0.587 G + 0.114 B; 3 channels keep R, G, B.
  const red: Rgb = { width: 1, height: 1, data: Float32Array.of(1, 0, 0) };
  assert.equal(toByte(toModelImage(red, 1, 1)[0]), Math.round(0.299 * 255));
  assert.deepEqual(Array.from(toModelImage(red, 1, 3)).map(toByte), [255, 0, 0]);
});

Deno.test("masks: white regenerates (1), black keeps (0), resized nearest", () => {
  const m = toRegenerateMask(gray(56, 56, (x) => (x < 28 ? 0 : 1)), 28);
  for (let p = 0; p < 784; p++) assert.equal(m[p], p % 28 < 14 ? 0 : 1);
});
