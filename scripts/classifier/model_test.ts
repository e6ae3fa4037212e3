import assert from "node:assert/strict";
import { join } from "node:path";
import { loadDataset, subset } from "../../trainer/data/datasets.ts";
import { EMOJI_CATEGORIES, loadEmoji } from "../../trainer/data/emoji.ts";
import { nhwcToNchw } from "../../trainer/training/sample_grid.ts";
import {
  CLASSIFIER_DIR,
  classifierDir,
  classify,
  EMOJI_CLASSIFIER_DIR,
  FEATURE_DIM,
  LAYERS,
  loadClassifier,
  NUM_CLASSES,
  tensorLayout,
} from "./model.ts";

Deno.test("committed classifier: ≥ 95% on 500 held-out real MNIST digits (balanced)", async () => {
  const c = await loadClassifier();
  const { test } = await loadDataset("mnist");
  const s = subset(test, 500);
  assert.equal(s.count, 500);
  const counts = new Array(10).fill(0);
  s.labels!.forEach((l) => counts[l]++);
  assert.ok(counts.every((k) => k === 50), `balanced: ${counts}`);
  const out = classify(c, s.images, s.count);
  assert.equal(out.logits.length, 500 * NUM_CLASSES);
  assert.equal(out.features.length, 500 * FEATURE_DIM);
  assert.ok(out.features.every((v) => v >= 0), "features are post-ReLU");
  let correct = 0;
  for (let i = 0; i < s.count; i++) {
    let best = 0;
    for (let j = 1; j < 10; j++) if (out.logits[i * 10 + j] > out.logits[i * 10 + best]) best = j;
    if (best === s.labels![i]) correct++;
  }
  const acc = correct / s.count;
  assert.ok(acc >= 0.95, `held-out accuracy ${acc}`);
  // The card records the accuracy on all 1,000 held-out digits; it is the same model.
  assert.ok(c.card.heldOutAccuracy >= 0.95);
  assert.equal(c.card.data.heldOut, test.count);
});

Deno.test("committed classifier: card matches the MLP layout and the weights file (< 1 MB)", async () => {
  const c = await loadClassifier();
  assert.deepEqual(c.card.architecture.layers, [...LAYERS]);
  const { tensors, total } = tensorLayout();
  assert.deepEqual(c.card.weights.tensors, tensors);
  const bytes = (await Deno.stat(join(CLASSIFIER_DIR, c.card.weights.file))).size;
  assert.equal(bytes, total * 4);
  assert.ok(bytes < 1_000_000);
  assert.deepEqual(c.layers.map((l) => [l.nin, l.nout]), [[784, 256], [256, 128], [128, 10]]);
});

Deno.test("loadClassifier rejects weights whose sha256 does not match the card", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(join(CLASSIFIER_DIR, "classifier.json"), join(dir, "classifier.json"));
    const w = await Deno.readFile(join(CLASSIFIER_DIR, "weights.bin"));
    w[123] ^= 1;
    await Deno.writeFile(join(dir, "weights.bin"), w);
    await assert.rejects(loadClassifier(dir), /sha256/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("classify: clamps inputs to [−1, 1] and rejects wrong sizes", async () => {
  const c = await loadClassifier();
  const x = new Float32Array(2 * 784).fill(-1);
  x.fill(1, 784 + 300, 784 + 400);
  const y = x.map((v) => v * 3); // outside the range: clamped to the same image
  const a = classify(c, x, 2), b = classify(c, y, 2);
  assert.deepEqual(a.logits, b.logits);
  assert.throws(() => classify(c, x, 3), RangeError);
});

Deno.test("committed emoji classifier: the 9 categories, CHW RGB, and it names the committed sample's emoji", async () => {
  const c = await loadClassifier(EMOJI_CLASSIFIER_DIR);
  assert.equal(c.card.architecture.layers[0], 32 * 32 * 3);
  assert.deepEqual(c.card.data.labels, EMOJI_CATEGORIES);
  assert.equal(classifierDir("emoji"), EMOJI_CLASSIFIER_DIR);
  assert.equal(classifierDir("mnist"), CLASSIFIER_DIR);
  // The committed emoji sample (no download): its images through the trainer's loader, as CHW.
  const { train, test } = await loadEmoji({
    packages: new URL("../../fixtures/emoji-sample", import.meta.url).pathname,
  });
  const n = train.count + test.count, chw = new Float32Array(n * 3 * 32 * 32);
  chw.set(nhwcToNchw(train.images, train.count, 3, 32 * 32));
  chw.set(nhwcToNchw(test.images, test.count, 3, 32 * 32), train.count * 3 * 32 * 32);
  const labels = [...train.labels!, ...test.labels!];
  const out = classify(c, chw, n);
  let correct = 0;
  for (let j = 0; j < n; j++) {
    const row = Array.from(out.logits.subarray(j * 9, (j + 1) * 9));
    if (row.indexOf(Math.max(...row)) === labels[j]) correct++;
  }
  console.log(`emoji classifier on the committed sample: ${correct}/${n}`);
  assert.ok(correct / n >= 0.8, `${correct}/${n}`);
  assert.ok(c.card.heldOutAccuracy >= 0.8);
});
