import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { makeSchedule } from "../../shared/schedule.ts";
import { initBackend } from "../backends/backend.ts";
import { type Dataset, loadDataset, subset } from "../data/datasets.ts";
import {
  disposeState,
  drawBatch,
  emaDecayAt,
  freshState,
  lrAt,
  NonFiniteError,
  type OptimConfig,
  optimLr,
  restoreState,
  saveState,
  trainStep,
} from "./loop.ts";
import { tinyUNet } from "../export/test_models.ts";
import { target } from "../../shared/prediction.ts";
import { scheduledLr } from "./lr_schedule.ts";

await initBackend({ backend: "wasm", threads: 1 });

const unet = tinyUNet({ imageSize: 28, channelMult: [1, 2, 2], numClasses: 10 });
const opt: OptimConfig = { lr: 2e-3, warmup: 5, ema: 0.999, gradClip: 1, condDrop: 0.1 };
const sched = makeSchedule("linear", 1000);
const data: Dataset = subset((await loadDataset("mnist")).train, 256);
const B = 16;

Deno.test("lr warm-up and EMA ramp", () => {
  assert.equal(lrAt(1, 1e-3, 100), 1e-5);
  assert.equal(lrAt(100, 1e-3, 100), 1e-3);
  assert.equal(lrAt(500, 1e-3, 100), 1e-3);
  assert.equal(lrAt(1, 1e-3, 0), 1e-3);
  assert.equal(emaDecayAt(1, 0.999), 2 / 11);
  assert.equal(emaDecayAt(1e6, 0.999), 0.999);
});

Deno.test("drawBatch: x_t from the schedule; dropped labels become the null class", () => {
  const st = freshState(unet, 1, data.count);
  const b = drawBatch(st, data, sched, 64, unet, 0.5);
  assert.equal(b.xt.length, 64 * 784);
  assert.ok(b.t.every((t) => Number.isInteger(t) && t >= 0 && t < 1000));
  const nulls = b.y!.filter((y) => y === 10).length;
  assert.ok(nulls > 16 && nulls < 48, `${nulls} null labels of 64 at p = 0.5`);
  disposeState(st);
});

Deno.test("40 steps on 256 MNIST digits: loss falls, EMA moves, no tensor leak", async () => {
  const st = freshState(unet, 0, data.count);
  const ema0 = (await st.ema["in.w"].data()).slice();
  const label0 = (await st.params["label.w"].data()).slice();
  const losses: number[] = [];
  const tensors0 = tf.memory().numTensors;
  for (let i = 0; i < 40; i++) losses.push((await trainStep(st, data, sched, unet, B, opt)).loss);
  assert.equal(tf.memory().numTensors, tensors0);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const first = mean(losses.slice(0, 10)), last = mean(losses.slice(-10));
  assert.ok(last < 0.85 * first, `loss ${first} → ${last}`);
  const ema1 = await st.ema["in.w"].data();
  assert.ok(ema1.some((v, i) => v !== ema0[i]));
  // The class embedding learns (rows of seen labels and of the null class move).
  const label1 = await st.params["label.w"].data();
  const dim = label1.length / 11;
  for (const row of [0, 10]) {
    assert.ok(
      label1.subarray(row * dim, (row + 1) * dim).some((v, i) => v !== label0[row * dim + i]),
      `row ${row}`,
    );
  }
  disposeState(st);
});

Deno.test("20 steps + save/restore + 20 steps == 40 straight (bit-exact, 1 thread)", async () => {
  const straight = freshState(unet, 7, data.count);
  for (let i = 0; i < 40; i++) await trainStep(straight, data, sched, unet, B, opt);
  const a = await saveState(straight);
  disposeState(straight);

  const first = freshState(unet, 7, data.count);
  for (let i = 0; i < 20; i++) await trainStep(first, data, sched, unet, B, opt);
  const mid = structuredClone(await saveState(first));
  disposeState(first);
  const resumed = restoreState(unet, mid, data.count);
  for (let i = 0; i < 20; i++) await trainStep(resumed, data, sched, unet, B, opt);
  const b = await saveState(resumed);
  disposeState(resumed);

  assert.equal(b.step, 40);
  assert.deepEqual(b.noise, a.noise);
  assert.deepEqual(b.sampler, a.sampler);
  for (const k of ["params", "ema", "adamM", "adamV"] as const) assert.deepEqual(b[k], a[k], k);
});

Deno.test("a non-finite loss throws NonFiniteError naming the step and leaves the weights", async () => {
  const bad: Dataset = { ...data, images: data.images.slice().fill(NaN) };
  const st = freshState(unet, 0, data.count);
  await trainStep(st, data, sched, unet, B, opt);
  const before = (await saveState(st)).params;
  await assert.rejects(
    trainStep(st, bad, sched, unet, B, opt),
    (e: Error) => e instanceof NonFiniteError && e.step === 2 && /step 2/.test(e.message),
  );
  assert.equal(st.step, 1);
  assert.deepEqual((await saveState(st)).params, before);
  disposeState(st);
});

Deno.test("lr schedules: warm-up, then constant, cosine or linear to the floor, held after", () => {
  const s = { lr: 1e-3, warmup: 10, min: 1e-4, decaySteps: 110 };
  for (const kind of ["constant", "cosine", "linear"] as const) {
    // The warm-up is the one lrAt always had, to the bit (old runs resume unchanged).
    for (const n of [1, 5, 9, 10]) assert.equal(scheduledLr(n, { ...s, kind }), lrAt(n, 1e-3, 10));
  }
  assert.equal(scheduledLr(500, { ...s, kind: "constant" }), 1e-3);
  assert.ok(Math.abs(scheduledLr(60, { ...s, kind: "cosine" }) - 5.5e-4) < 1e-15);
  assert.ok(Math.abs(scheduledLr(60, { ...s, kind: "linear" }) - 5.5e-4) < 1e-15);
  assert.ok(scheduledLr(35, { ...s, kind: "cosine" }) > scheduledLr(35, { ...s, kind: "linear" }));
  for (const kind of ["cosine", "linear"] as const) {
    assert.equal(scheduledLr(110, { ...s, kind }), 1e-4);
    assert.equal(scheduledLr(5000, { ...s, kind }), 1e-4);
    for (let n = 11; n < 110; n++) {
      assert.ok(scheduledLr(n + 1, { ...s, kind }) <= scheduledLr(n, { ...s, kind }), `${n}`);
    }
  }
  // No OptimConfig schedule fields = the constant schedule.
  assert.equal(optimLr(3, opt), lrAt(3, opt.lr, opt.warmup));
});

Deno.test("drawBatch: v and x0 targets from shared/prediction.ts; epsilon's target is ε", () => {
  const px = 784;
  for (const prediction of ["epsilon", "v", "x0"] as const) {
    const st = freshState(unet, 3, data.count);
    const b = drawBatch(st, data, sched, 4, unet, 0.1, prediction);
    if (prediction === "epsilon") assert.equal(b.target, b.eps);
    // x0 = (x_t − σ ε)/α recovers the clean image the target was built from.
    for (const i of [0, 3]) {
      const t = b.t[i], a = sched.sqrtAlphasCumprod[t], s = sched.sqrtOneMinusAlphasCumprod[t];
      for (const p of [0, 400, 783]) {
        const x0 = (b.xt[i * px + p] - s * b.eps[i * px + p]) / a;
        const want = target(prediction, x0, b.eps[i * px + p], a, s);
        assert.ok(Math.abs(b.target[i * px + p] - want) < 1e-3, `${prediction} ${i} ${p}`);
      }
    }
    disposeState(st);
  }
});

/** Space-to-depth stem, per-level blocks, conv-then-upsample: the lean layout options. */
const lean = tinyUNet({
  imageSize: 28,
  channelMult: [1, 2],
  spaceToDepth: 2,
  levelBlocks: [1, 2],
  upsample: "conv-resize",
  numClasses: 10,
});
const leanOpt: OptimConfig = {
  ...opt,
  lrSchedule: "cosine",
  lrMin: 1e-4,
  lrDecaySteps: 30,
  loss: "l1",
  prediction: "v",
};

Deno.test("lean layout, v-prediction, l1, cosine lr: loss falls; lr follows the schedule", async () => {
  const st = freshState(lean, 0, data.count);
  const losses: number[] = [], lrs: number[] = [];
  for (let i = 0; i < 30; i++) {
    const r = await trainStep(st, data, sched, lean, B, leanOpt);
    losses.push(r.loss);
    lrs.push(r.lr);
  }
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  assert.ok(mean(losses.slice(-8)) < 0.9 * mean(losses.slice(0, 8)), `${losses}`);
  assert.equal(lrs[29], 1e-4);
  assert.equal(lrs[4], 2e-3);
  disposeState(st);
});

Deno.test("lean/v/l1/cosine: 10 steps + save/restore + 10 == 20 straight (bit-exact)", async () => {
  const straight = freshState(lean, 5, data.count);
  for (let i = 0; i < 20; i++) await trainStep(straight, data, sched, lean, B, leanOpt);
  const a = await saveState(straight);
  disposeState(straight);
  const first = freshState(lean, 5, data.count);
  for (let i = 0; i < 10; i++) await trainStep(first, data, sched, lean, B, leanOpt);
  const mid = structuredClone(await saveState(first));
  disposeState(first);
  const resumed = restoreState(lean, mid, data.count);
  for (let i = 0; i < 10; i++) await trainStep(resumed, data, sched, lean, B, leanOpt);
  const b = await saveState(resumed);
  disposeState(resumed);
  for (const k of ["params", "ema", "adamM", "adamV"] as const) assert.deepEqual(b[k], a[k], k);
});
