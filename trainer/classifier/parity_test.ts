/**
 * Parity of the shipped MNIST classifier (fixtures/models/mnist/classifier.onnx, trained by the
 * run in fixtures/models/mnist/classifier_run/) on real held-out digits noised at several t:
 *   - its gradient graph at fp32, run in onnxruntime-web (wasm) as the edge runs it, against
 *     tfjs `tf.grad` of log softmax(f(x_t, t))[y] with the same (EMA) weights: max |Δ∇| within
 *     1e-4 of max |∇| at every t;
 *   - the shipped int8 graph against that fp32 graph: cosine ≥ 0.99 and relative L2 error ≤ 0.15
 *     at every t (measured values are printed);
 *   - the shipped file is exactly what the exporter builds from the run, and the card names it.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-web";
import { Rng } from "../../shared/rng.ts";
import { makeSchedule } from "../../shared/schedule.ts";
import { loadHeldOut, subset } from "../data/datasets.ts";
import { noisedImages } from "../training/loop.ts";
import { initBackend } from "../backends/backend.ts";
import { readClassifierCheckpoint } from "./checkpoint.ts";
import { buildClassifierGradOnnx } from "./onnx_grad.ts";
import { runClassifierOnnx } from "./export.ts";
import { classifierGrad, paramTensors } from "./tfjs.ts";

ort.env.wasm.numThreads = 1;
// tfjs on wasm with the project's kernels (tested against the cpu backend in backends/kernels/).
await initBackend({ backend: "wasm", threads: 1 });

const MODEL = new URL("../../fixtures/models/mnist/", import.meta.url).pathname;
const ck = await readClassifierCheckpoint(`${MODEL}classifier_run`);
const cfg = ck.meta.classifier;
const sched = makeSchedule(ck.meta.schedule.kind, ck.meta.schedule.T);
const TS = [0, 150, 300, 500, 700, 900];
/** One held-out digit of each class; every row asks for its own class or another one. */
const digits = subset(await loadHeldOut("mnist"), 10);

/** x_t (NHWC = NCHW for one channel), t and y of the 10 digits at timestep `t`. */
function batchAt(t: number) {
  const ts = new Float32Array(10).fill(t);
  const idx = Int32Array.from({ length: 10 }, (_, i) => i);
  const eps = new Rng(1000 + t).fillNormal(new Float32Array(10 * 28 * 28));
  const y = Array.from(idx, (i) => i % 2 === 0 ? digits.labels![i] : (digits.labels![i] + 3) % 10);
  return { x: noisedImages(sched, digits, idx, ts, eps), t: Array.from(ts), y };
}

const stats = (a: Float32Array, b: Float32Array) => {
  let dot = 0, na = 0, nb = 0, d2 = 0, maxB = 0, maxD = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
    d2 += (a[i] - b[i]) ** 2;
    maxB = Math.max(maxB, Math.abs(b[i]));
    maxD = Math.max(maxD, Math.abs(a[i] - b[i]));
  }
  return { cos: dot / Math.sqrt(na * nb), relL2: Math.sqrt(d2 / nb), relMax: maxD / maxB };
};

Deno.test("shipped classifier: fp32 gradient graph (wasm) = tf.grad on real digits at several t; int8 close to fp32", async () => {
  const fp32 = buildClassifierGradOnnx(cfg, ck.ema, { quant: "fp32" });
  const int8 = await Deno.readFile(`${MODEL}classifier.onnx`);
  const params = paramTensors(cfg, ck.ema);
  const rows: string[] = [];
  for (const t of TS) {
    const b = batchAt(t);
    const ref = tf.tidy(() => {
      const r = classifierGrad(
        params,
        cfg,
        tf.tensor4d(b.x, [10, 28, 28, 1]),
        tf.tensor1d(b.t),
        tf.tensor1d(b.y),
      );
      return r.grad.dataSync() as Float32Array;
    });
    const g32 = await runClassifierOnnx(fp32, cfg, b.x, b.t, b.y);
    const g8 = await runClassifierOnnx(int8, cfg, b.x, b.t, b.y);
    const p = stats(g32.grad, ref), q = stats(g8.grad, g32.grad);
    rows.push(
      `t=${t}: fp32 vs tf.grad max rel ${p.relMax.toExponential(1)}; int8 vs fp32 cos ` +
        `${q.cos.toFixed(4)}, rel L2 ${q.relL2.toFixed(3)}`,
    );
    assert.ok(p.relMax < 1e-4, `t=${t}: fp32 graph vs tf.grad max |Δ| / max |∇| = ${p.relMax}`);
    assert.ok(q.cos >= 0.99 && q.relL2 <= 0.15, `t=${t}: int8 vs fp32 ${JSON.stringify(q)}`);
  }
  tf.dispose(Object.values(params));
  console.log(rows.join("\n"));
});

Deno.test("shipped classifier: the file is the exporter's int8 build of the run, named by the card", async () => {
  const bytes = await Deno.readFile(`${MODEL}classifier.onnx`);
  const card = JSON.parse(await Deno.readTextFile(`${MODEL}model.json`));
  const built = buildClassifierGradOnnx(cfg, ck.ema, {
    quant: "int8",
    name: `${card.name}-classifier`,
  });
  assert.ok(built.length === bytes.length && built.every((v, i) => v === bytes[i]));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  assert.equal(
    card.classifier.sha256,
    Array.from(digest, (x) => x.toString(16).padStart(2, "0")).join(""),
  );
  assert.equal(card.classifier.file, "classifier.onnx");
  assert.deepEqual(card.classifier.labels, card.labels);
  assert.deepEqual(card.schedule, ck.meta.schedule);
});

Deno.test("shipped classifier: reads clean and lightly noised held-out digits (logits of the int8 graph)", async () => {
  const int8 = await Deno.readFile(`${MODEL}classifier.onnx`);
  const test = await loadHeldOut("mnist");
  let right = 0;
  for (let s = 0; s < test.count; s += 250) {
    const n = Math.min(250, test.count - s);
    const idx = Int32Array.from({ length: n }, (_, i) => s + i);
    const t = new Float32Array(n).fill(50);
    const x = noisedImages(sched, test, idx, t, new Rng(s).fillNormal(new Float32Array(n * 784)));
    const { logits } = await runClassifierOnnx(int8, cfg, x, t, new Array(n).fill(0));
    for (let i = 0; i < n; i++) {
      const row = logits.subarray(i * 10, i * 10 + 10);
      if (row.indexOf(Math.max(...row)) === test.labels![s + i]) right++;
    }
  }
  const acc = right / test.count;
  console.log(`held-out accuracy at t = 50 (int8 graph): ${(100 * acc).toFixed(1)} %`);
  assert.ok(acc >= 0.95, `accuracy ${acc}`);
});
