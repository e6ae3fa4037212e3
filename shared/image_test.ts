import assert from "node:assert/strict";
import { decode } from "fast-png";
import { encodePng, tileImages, toByte } from "./image.ts";

Deno.test("toByte maps [−1, 1] to 0…255 with clamping", () => {
  assert.deepEqual([-2, -1, 0, 1, 3].map(toByte), [0, 0, 128, 255, 255]);
});

Deno.test("tiles images into a grid with gaps and upscaling; PNG round-trips", () => {
  // Two 2×2 grayscale images: first all −1 (black), second a gradient.
  const x = Float32Array.of(-1, -1, -1, -1, -1, -0.5, 0.5, 1);
  const g = tileImages(x, 2, 1, 2, 2);
  assert.equal(g.width, 2 * 4 + 2); // two tiles of 4 px and a 2 px gap
  assert.equal(g.height, 4);
  const at = (px: number, py: number) => g.data[py * g.width + px];
  assert.equal(at(0, 0), 0);
  assert.equal(at(6, 0), toByte(-1)); // second tile starts at x = 6
  assert.equal(at(8, 0), toByte(-0.5));
  assert.equal(at(9, 3), toByte(1));
  assert.equal(at(4, 0), 0); // gap
  const png = decode(encodePng(g));
  assert.equal(png.width, g.width);
  assert.equal(png.channels, 1);
  assert.deepEqual(new Uint8Array(png.data), g.data);
});

Deno.test("RGB planes (NCHW) are interleaved", () => {
  const x = Float32Array.of(1, -1, -1); // one 1×1 image, C=3: red
  const g = tileImages(x, 1, 3, 1);
  assert.deepEqual([...g.data], [255, 0, 0]);
});
