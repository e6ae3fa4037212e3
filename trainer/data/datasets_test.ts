import assert from "node:assert/strict";
import { join } from "node:path";
import { encode } from "fast-png";
import { decodePngInput } from "../../shared/png_input.ts";
import { toModelImage } from "../../shared/resize.ts";
import {
  BatchSampler,
  DataError,
  FASHION_LABELS,
  loadDataset,
  loadHeldOut,
  loadRunData,
  MNIST_LABELS,
  resizeBatch,
  subset,
} from "./datasets.ts";

Deno.test("mnist: 9,000 training digits, 1,000 held out (100 per class), in [−1, 1]", async () => {
  const { train, test } = await loadDataset("mnist");
  assert.equal(train.count + test.count, 10000);
  assert.equal(test.count, 1000);
  assert.equal(train.images.length, train.count * 784);
  assert.deepEqual(train.labelNames, MNIST_LABELS);
  const perClass = new Array(10).fill(0);
  test.labels!.forEach((l) => perClass[l]++);
  assert.deepEqual(perClass, new Array(10).fill(100));
  let lo = Infinity, hi = -Infinity;
  for (const v of train.images) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
  assert.equal(lo, -1);
  assert.equal(hi, 1);
  // The held-out split is deterministic and disjoint from training (no identical image).
  const again = await loadHeldOut("mnist");
  assert.deepEqual(again.images, test.images);
  const key = (a: Float32Array, i: number) => a.subarray(i * 784, (i + 1) * 784).join(",");
  const trainKeys = new Set(Array.from({ length: train.count }, (_, i) => key(train.images, i)));
  for (let i = 0; i < test.count; i += 37) assert.ok(!trainKeys.has(key(test.images, i)));
  // Resizing to 32 px keeps the value range and the count.
  const big = await loadDataset("mnist", { imageSize: 32 });
  assert.equal(big.train.images.length, train.count * 1024);
});

Deno.test("fashion: 70,000 images, 1,000 per class held out, named labels", async () => {
  const { train, test } = await loadDataset("fashion");
  assert.equal(test.count, 10000);
  assert.equal(train.count, 60000);
  assert.deepEqual(train.labelNames, FASHION_LABELS);
  assert.ok(train.images.every((v) => v >= -1 && v <= 1));
});

async function writePng(
  file: string,
  w: number,
  h: number,
  channels: number,
  fill: (x: number, y: number, c: number) => number,
) {
  const data = new Uint8Array(w * h * channels);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < channels; c++) data[(y * w + x) * channels + c] = fill(x, y, c);
    }
  }
  await Deno.writeFile(file, encode({ width: w, height: h, data, channels, depth: 8 }));
}

Deno.test("PNG folder: center crop + resize, gray and RGB, class subfolders, 10% held out", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // 20 wide images (40×20): the left and right 10 columns are cropped away.
    for (let k = 0; k < 20; k++) {
      await writePng(
        join(dir, `img${String(k).padStart(2, "0")}.png`),
        40,
        20,
        3,
        (x, _y, c) => x < 10 || x >= 30 ? 0 : c === 0 ? 255 : 0,
      );
    }
    const rgb = await loadDataset(dir, { imageSize: 8, channels: 3 });
    assert.equal(rgb.train.count, 18);
    assert.equal(rgb.test.count, 2);
    assert.equal(rgb.train.labels, null);
    assert.equal(rgb.train.images.length, 18 * 8 * 8 * 3);
    for (let p = 0; p < 64; p++) {
      assert.ok(
        Math.abs(rgb.train.images[p * 3] - 1) < 1e-6,
        "red channel 1 (crop removed black bars)",
      );
      assert.ok(Math.abs(rgb.train.images[p * 3 + 1] + 1) < 1e-6, "green −1");
    }
    const gray = await loadDataset(dir, { imageSize: 8, channels: 1 });
    // Rec. 601 luma of pure red, on the 8-bit grid the edge's uploads use (round(0.299·255) = 76).
    assert.equal(gray.train.images[0], Math.fround(76 / 127.5 - 1), "luminance of pure red");
    // Class subfolders → labels by folder name.
    const cls = await Deno.makeTempDir();
    for (const name of ["cats", "dogs"]) {
      await Deno.mkdir(join(cls, name));
      for (let k = 0; k < 10; k++) {
        await writePng(join(cls, name, `${k}.png`), 8, 8, 1, () => name === "cats" ? 0 : 255);
      }
    }
    const labelled = await loadDataset(cls, { imageSize: 8 });
    assert.deepEqual(labelled.train.labelNames, ["cats", "dogs"]);
    assert.deepEqual(Array.from(labelled.test.labels!), [0, 1]);
    assert.equal(labelled.train.images[0], -1);
    assert.equal(labelled.train.images[9 * 64], 1);
    await Deno.remove(cls, { recursive: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PNG folder: partial transparency is composited over black, as the edge decodes it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // RGBA 4×4: white at alpha 255, 128 and 0 in three column groups; red at alpha 64.
    const alphaOf = (x: number) => [255, 128, 0, 64][x];
    await writePng(join(dir, "a.png"), 4, 4, 4, (x, _y, c) => {
      if (c === 3) return alphaOf(x);
      return x === 3 ? (c === 0 ? 255 : 0) : 255;
    });
    const bytes = await Deno.readFile(join(dir, "a.png"));
    const { train } = await loadDataset(dir, { imageSize: 4, channels: 3 });
    const edge = toModelImage(decodePngInput(bytes), 4, 3); // the edge's upload path (CHW)
    for (let p = 0; p < 16; p++) {
      for (let c = 0; c < 3; c++) assert.equal(train.images[p * 3 + c], edge[c * 16 + p]);
    }
    const level = (v: number) => Math.fround(Math.round(v * 255) / 127.5 - 1);
    assert.equal(train.images[0], 1); // opaque white
    assert.equal(train.images[1 * 3], level(128 / 255)); // half-transparent white → mid gray
    assert.equal(train.images[2 * 3], -1); // fully transparent → black
    assert.equal(train.images[3 * 3], level(64 / 255)); // red at alpha 64: dark red
    assert.equal(train.images[3 * 3 + 1], -1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PNG folder errors: missing, empty, invalid file named", async () => {
  const rejects = (p: Promise<unknown>, re: RegExp) =>
    assert.rejects(p, (e: Error) => e instanceof DataError && re.test(e.message));
  await rejects(loadDataset("/nonexistent/dir"), /not "mnist", "fashion" or an existing folder/);
  const dir = await Deno.makeTempDir();
  try {
    await rejects(loadDataset(dir), /no \.png files found/);
    await writePng(join(dir, "a.png"), 4, 4, 1, () => 0);
    await Deno.writeTextFile(join(dir, "b.png"), "not a png");
    await rejects(loadDataset(dir), /b\.png: not a readable PNG/);
    await rejects(loadDataset("mnist", { channels: 3 }), /grayscale/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resizeBatch: constant stays constant, 2× down averages pairs", () => {
  const c = resizeBatch(new Float32Array(16).fill(0.5), 1, 4, 3, 1);
  assert.ok(c.every((v) => Math.abs(v - 0.5) < 1e-6));
  // Checkerboard columns averaged away when halving.
  const src = Float32Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? 1 : -1));
  const d = resizeBatch(src, 1, 4, 2, 1);
  assert.ok(d.every((v) => Math.abs(v) < 1e-6), `${d}`);
});

Deno.test("BatchSampler: epochs are permutations; state round-trips exactly", () => {
  const s = new BatchSampler(10, 42);
  const first = Array.from(s.next(10)).sort((a, b) => a - b);
  assert.deepEqual(first, [...Array(10).keys()]);
  s.next(3);
  const saved = structuredClone(s.state());
  const a = Array.from(s.next(25));
  const b = Array.from(new BatchSampler(10, saved).next(25));
  assert.deepEqual(a, b);
  assert.ok(Math.abs(s.epochs - 3.8) < 1e-9);
});

Deno.test("subset spreads over classes", async () => {
  const { train } = await loadDataset("mnist");
  const s = subset(train, 256);
  assert.equal(s.count, 256);
  assert.equal(new Set(s.labels).size, 10);
});

Deno.test("loadRunData: --limit cuts the training part as subset does; the held-out part stays", async () => {
  const full = await loadDataset("mnist");
  const cut = await loadRunData("mnist", 64);
  assert.deepEqual(cut.train.images, subset(full.train, 64).images);
  assert.deepEqual(cut.train.labels, subset(full.train, 64).labels);
  assert.equal(cut.test.count, full.test.count);
  assert.equal((await loadRunData("mnist", 0)).train.count, full.train.count);
});
