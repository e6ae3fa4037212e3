/**
 * The gradient graph on random weights, in onnxruntime-web (wasm) against tfjs `tf.grad` on the
 * cpu backend: every op's derivative, odd feature-map sizes, several classes and timesteps.
 * (The shipped classifier on real digits: parity_test.ts.)
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-web";
import { Rng } from "../../shared/rng.ts";
import { decodeModel } from "../export/onnx_graph.ts";
import { type ClassifierConfig, classifierParamSpecs } from "./net.ts";
import { buildClassifierGradOnnx, CLASSIFIER_OPSET } from "./onnx_grad.ts";
import { classifierGrad, paramTensors } from "./tfjs.ts";
import { runClassifierOnnx } from "./export.ts";

ort.env.wasm.numThreads = 1;
await tf.setBackend("cpu");

/** Every parameter non-zero (γ ≈ 1), so every path carries gradient. */
function randomWeights(cfg: ClassifierConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed), out = new Map<string, Float32Array>();
  for (const s of classifierParamSpecs(cfg)) {
    const v = rng.fillNormal(new Float32Array(s.shape.reduce((a, b) => a * b, 1)));
    const std = s.shape.length > 1 ? 1 / Math.sqrt(s.fanIn) : 0.2;
    out.set(s.name, v.map((x) => x * std + (s.init === "one" ? 1 : 0)));
  }
  return out;
}

/** NHWC → NCHW for C channels. */
function toNchw(x: Float32Array, n: number, hw: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < hw; p++) {
      for (let k = 0; k < c; k++) out[(i * c + k) * hw + p] = x[(i * hw + p) * c + k];
    }
  }
  return out;
}

async function compare(cfg: ClassifierConfig, seed: number) {
  const w = randomWeights(cfg, seed);
  const n = 4, S = cfg.imageSize, C = cfg.inChannels;
  const x = new Rng(seed + 1).fillNormal(new Float32Array(n * S * S * C));
  const t = [0, 137, 512, 999], y = [0, 1, cfg.numClasses - 1, 1];
  const ref = tf.tidy(() => {
    const r = classifierGrad(
      paramTensors(cfg, w),
      cfg,
      tf.tensor4d(x, [n, S, S, C]),
      tf.tensor1d(t),
      tf.tensor1d(y),
    );
    return {
      grad: toNchw(r.grad.dataSync() as Float32Array, n, S * S, C),
      logits: r.logits.dataSync(),
    };
  });
  const got = await runClassifierOnnx(
    buildClassifierGradOnnx(cfg, w, { quant: "fp32" }),
    cfg,
    toNchw(x, n, S * S, C),
    t,
    y,
  );
  let maxRef = 0, maxDiff = 0, maxLogit = 0;
  for (let i = 0; i < ref.grad.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(ref.grad[i]));
    maxDiff = Math.max(maxDiff, Math.abs(got.grad[i] - ref.grad[i]));
  }
  for (let i = 0; i < ref.logits.length; i++) {
    maxLogit = Math.max(maxLogit, Math.abs(got.logits[i] - ref.logits[i]));
  }
  return { maxRef, rel: maxDiff / maxRef, maxLogit };
}

Deno.test("gradient graph (fp32, wasm) = tf.grad of log softmax[y]: 12×12, two levels, batch 4", async () => {
  const r = await compare({
    imageSize: 12,
    inChannels: 1,
    channels: 8,
    channelMult: [1, 2],
    numResBlocks: 1,
    groups: 4,
    numClasses: 3,
  }, 7);
  assert.ok(r.maxRef > 1e-3, `the gradient is not trivially small (${r.maxRef})`);
  assert.ok(r.rel < 1e-4, `max |Δ∇| / max |∇| = ${r.rel}`);
  assert.ok(r.maxLogit < 1e-4, `logits differ by ${r.maxLogit}`);
});

Deno.test("gradient graph: odd sizes (10 → 5 → 3), two res blocks, RGB, skip convs", async () => {
  const r = await compare({
    imageSize: 10,
    inChannels: 3,
    channels: 4,
    channelMult: [1, 2, 3],
    numResBlocks: 2,
    groups: 2,
    numClasses: 4,
  }, 11);
  assert.ok(r.rel < 1e-4, `max |Δ∇| / max |∇| = ${r.rel}`);
  assert.ok(r.maxLogit < 1e-4, `logits differ by ${r.maxLogit}`);
});

Deno.test("gradient graph: the contract's inputs and outputs, opset 17, forward ops only", () => {
  const cfg: ClassifierConfig = {
    imageSize: 8,
    inChannels: 1,
    channels: 4,
    channelMult: [1, 2],
    numResBlocks: 1,
    groups: 2,
    numClasses: 10,
  };
  const m = decodeModel(buildClassifierGradOnnx(cfg, randomWeights(cfg, 1), { quant: "int8" }));
  type Io = {
    name?: string | null;
    type?: {
      tensorType?: {
        elemType?: number | null;
        shape?: { dim?: { dimParam?: string | null; dimValue?: unknown }[] | null } | null;
      } | null;
    } | null;
  };
  const io = (v: Io[]) =>
    v.map((i) => [
      i.name,
      i.type!.tensorType!.elemType,
      i.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue)),
    ]);
  assert.deepEqual(io(m.graph!.input!), [
    ["x", 1, ["N", 1, 8, 8]],
    ["t", 7, ["N"]],
    ["y", 7, ["N"]],
  ]);
  assert.deepEqual(io(m.graph!.output!), [["grad", 1, ["N", 1, 8, 8]], ["logits", 1, ["N", 10]]]);
  assert.equal(Number(m.opsetImport![0].version), CLASSIFIER_OPSET);
  const ops = new Set(m.graph!.node!.map((n: { opType?: string | null }) => n.opType));
  assert.ok(ops.has("ConvTranspose") && ops.has("DequantizeLinear"));
  assert.ok(!ops.has("Gradient"));
});

Deno.test("buildClassifierGradOnnx: missing or extra weights are named", () => {
  const cfg: ClassifierConfig = {
    imageSize: 8,
    inChannels: 1,
    channels: 4,
    channelMult: [1],
    numResBlocks: 1,
    groups: 2,
    numClasses: 2,
  };
  const w = randomWeights(cfg, 1);
  w.delete("head.w");
  assert.throws(
    () => buildClassifierGradOnnx(cfg, w, { quant: "fp32" }),
    /missing classifier parameter head\.w/,
  );
  const extra = randomWeights(cfg, 1).set("stray", new Float32Array(1));
  assert.throws(
    () => buildClassifierGradOnnx(cfg, extra, { quant: "fp32" }),
    /unexpected parameters: stray/,
  );
});
