import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-web";
import type { UNetConfig } from "../../shared/model_card.ts";
import { Rng } from "../../shared/rng.ts";
import { forward } from "../network/tfjs_ops.ts";
import { buildOnnxModel, hwioToOihw, samePads, transpose2d } from "./onnx_ops.ts";
import { DataType, decodeModel } from "./onnx_graph.ts";
import { randomWeights } from "./model.ts";
import type { Quantization } from "./quantize.ts";
import { paramSpecs } from "../network/unet.ts";
import { tinyUNet } from "./test_models.ts";

await tf.setBackend("cpu");
ort.env.wasm.numThreads = 1;

/** Unconditional, 2 input channels (exercises the NHWC ↔ NCHW layout), 8 → 4 pixels. */
const UNCOND = tinyUNet({ inChannels: 2 });
/** Conditional, 14 → 7 pixels (odd lowest level), two res blocks per level. */
const COND = tinyUNet({ imageSize: 14, numResBlocks: 2, groups: 2, numClasses: 3 });
/**
 * The lean layout options together: a space-to-depth stem on 2 input channels (16 → 8 → 4
 * pixels; exercises the channel order of SpaceToDepth/DepthToSpace), res blocks per level,
 * conv-then-upsample in the decoder.
 */
const LEAN = tinyUNet({
  imageSize: 16,
  inChannels: 2,
  spaceToDepth: 2,
  levelBlocks: [1, 2],
  upsample: "conv-resize",
  numClasses: 3,
});

const N = 2;
const T_VALUES = [3, 917.5];

interface Inputs {
  /** NCHW. */
  x: Float32Array;
  t: Float32Array;
  y?: BigInt64Array;
}

function nchwToNhwc(a: Float32Array, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(a.length), per = c * h * w;
  for (let n = 0; n < a.length / per; n++) {
    for (let ch = 0; ch < c; ch++) {
      for (let p = 0; p < h * w; p++) out[n * per + p * c + ch] = a[n * per + ch * h * w + p];
    }
  }
  return out;
}

function randomInputs(cfg: UNetConfig, seed: number): Inputs {
  const rng = new Rng(seed);
  const x = rng.fillNormal(new Float32Array(N * cfg.inChannels * cfg.imageSize ** 2));
  const t = Float32Array.from(T_VALUES);
  // The second label is the null class (classifier-free guidance's unconditional branch).
  const y = cfg.numClasses > 0 ? BigInt64Array.of(1n, BigInt(cfg.numClasses)) : undefined;
  return { x, t, y };
}

/** tfjs reference ε̂, returned as NCHW. */
function tfjsEps(cfg: UNetConfig, weights: Map<string, Float32Array>, inp: Inputs): Float32Array {
  const { imageSize: s, inChannels: c } = cfg;
  return tf.tidy(() => {
    const params: Record<string, tf.Tensor> = {};
    for (const spec of paramSpecs(cfg)) {
      params[spec.name] = tf.tensor(weights.get(spec.name)!, spec.shape);
    }
    const x = tf.tensor4d(nchwToNhwc(inp.x, c, s, s), [N, s, s, c]);
    const t = tf.tensor1d(inp.t);
    const y = inp.y ? tf.tensor1d(Array.from(inp.y, Number), "int32") : undefined;
    const out = forward(params, cfg, x, t, y);
    return tf.transpose(out, [0, 3, 1, 2]).dataSync() as Float32Array;
  });
}

async function ortEps(
  model: Uint8Array,
  cfg: UNetConfig,
  inp: Inputs,
  level: "disabled" | "all",
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: level,
  });
  try {
    const { imageSize: s, inChannels: c } = cfg;
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor("float32", inp.x, [N, c, s, s]),
      t: new ort.Tensor("float32", inp.t, [N]),
    };
    if (inp.y) feeds.y = new ort.Tensor("int64", inp.y, [N]);
    const out = await session.run(feeds);
    assert.deepEqual(out.eps.dims, [N, c, s, s]);
    return out.eps.data as Float32Array;
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

Deno.test("layout helpers: HWIO→OIHW, transpose, TF 'same' pads", () => {
  // HWIO [2,2,1,2]: w[y][x][0][o] = 10·o + 2y + x.
  const hwio = Float32Array.from([0, 10, 1, 11, 2, 12, 3, 13]);
  assert.deepEqual(Array.from(hwioToOihw(hwio, 2, 1, 2)), [0, 1, 2, 3, 10, 11, 12, 13]);
  assert.deepEqual(Array.from(transpose2d(Float32Array.of(1, 2, 3, 4, 5, 6), 2, 3)), [
    1,
    4,
    2,
    5,
    3,
    6,
  ]);
  assert.deepEqual(samePads(8, 3, 1), [1, 1]);
  assert.deepEqual(samePads(8, 3, 2), [0, 1]);
  assert.deepEqual(samePads(7, 3, 2), [1, 1]);
  assert.deepEqual(samePads(8, 1, 1), [0, 0]);
});

Deno.test("graph declares x, t (float32), y (int64 iff conditional) with symbolic N", () => {
  for (const cfg of [UNCOND, COND]) {
    const m = decodeModel(buildOnnxModel(cfg, randomWeights(cfg, 1), { quant: "fp32" }));
    const inputs = m.graph!.input!.map((i) => i.name);
    assert.deepEqual(inputs, cfg.numClasses > 0 ? ["x", "t", "y"] : ["x", "t"]);
    assert.equal(m.graph!.output![0].name, "eps");
    assert.equal(m.graph!.input![0].type!.tensorType!.shape!.dim![0].dimParam, "N");
    assert.equal(Number(m.opsetImport![0].version), 17);
  }
});

Deno.test("buildOnnxModel rejects missing weights and bad opsets", () => {
  const w = randomWeights(UNCOND, 1);
  w.delete("out.b");
  assert.throws(() => buildOnnxModel(UNCOND, w, { quant: "fp32" }), /out\.b/);
  assert.throws(
    () => buildOnnxModel(UNCOND, randomWeights(UNCOND, 1), { quant: "fp32", opset: 11 }),
    /opset/,
  );
});

for (
  const [label, cfg] of [["unconditional", UNCOND], ["conditional", COND], ["lean", LEAN]] as const
) {
  Deno.test(`fp32 ONNX in onnxruntime-web matches tfjs forward (${label})`, async () => {
    const weights = randomWeights(cfg, 11);
    const inp = randomInputs(cfg, 12);
    const ref = tfjsEps(cfg, weights, inp);
    assert.ok(maxAbs(ref) > 0.1, "reference output is not trivially small");
    const model = buildOnnxModel(cfg, weights, { quant: "fp32" });
    for (const level of ["disabled", "all"] as const) {
      const err = maxAbsDiff(await ortEps(model, cfg, inp, level), ref);
      console.log(
        `  ${label} fp32 (${level}): max |Δ| = ${err.toExponential(2)}, ` +
          `max |ε̂| = ${maxAbs(ref).toFixed(3)}`,
      );
      assert.ok(err < 1e-4, `${label} ${level}: max abs error ${err}`);
    }
  });
}

/**
 * Weight-storage error relative to the output scale, measured on these random weights (c = 8,
 * seed 11): int8 2.6e-2, fp16 5.6e-4 of max|ε̂|. The bounds leave 2–3× room.
 */
const REL_TOL: Record<Exclude<Quantization, "fp32">, number> = { int8: 0.06, fp16: 2e-3 };

for (const [quant, cfg] of [["int8", COND], ["fp16", COND], ["int8", LEAN]] as const) {
  const label = cfg === LEAN ? "lean" : "conditional";
  Deno.test(`${quant} ONNX stays close to the fp32 reference (${label})`, async () => {
    const weights = randomWeights(cfg, 11);
    const inp = randomInputs(cfg, 12);
    const ref = tfjsEps(cfg, weights, inp);
    const model = buildOnnxModel(cfg, weights, { quant });
    const got = await ortEps(model, cfg, inp, "all");
    const rel = maxAbsDiff(got, ref) / maxAbs(ref);
    console.log(`  ${quant}: max |Δ| / max |ε̂| = ${rel.toExponential(2)}`);
    assert.ok(rel < REL_TOL[quant], `${quant}: relative error ${rel}`);
    assert.ok(rel > 0, "quantised weights should change the output a little");
  });
}

Deno.test("floatLayers: the named layers stay float32 under int8, the rest quantised, unknown names refused", async () => {
  const cfg = LEAN;
  const weights = randomWeights(cfg, 11);
  const inp = randomInputs(cfg, 12);
  const ref = tfjsEps(cfg, weights, inp);
  const mixed = buildOnnxModel(cfg, weights, { quant: "int8", floatLayers: ["in", "out"] });
  const types = new Map(decodeModel(mixed).graph!.initializer!.map((t) => [t.name, t.dataType]));
  assert.equal(types.get("in.w"), DataType.FLOAT);
  assert.equal(types.get("out.w"), DataType.FLOAT);
  assert.ok(!types.has("in.w.q") && !types.has("out.w.q"));
  assert.equal(types.get("temb.1.w.q"), DataType.INT8, "other layers are still int8");
  // on these weights, keeping the two image-side convs float takes some int8 error away
  const all8 = await ortEps(buildOnnxModel(cfg, weights, { quant: "int8" }), cfg, inp, "all");
  const err8 = maxAbsDiff(all8, ref);
  const errMixed = maxAbsDiff(await ortEps(mixed, cfg, inp, "all"), ref);
  console.log(
    `  int8 max |Δ| ${err8.toExponential(2)}; in, out fp32: ${errMixed.toExponential(2)}`,
  );
  assert.ok(errMixed > 0 && errMixed < err8, `${errMixed} vs ${err8}`);
  for (const bad of ["label", "down0.res0.gn1", "nope"]) {
    assert.throws(
      () => buildOnnxModel(cfg, weights, { quant: "int8", floatLayers: [bad] }),
      new RegExp(`no conv or dense layer "${bad.replaceAll(".", "\\.")}"`),
    );
  }
});

Deno.test("opsets 13 and 21 give the same ε̂ as the default 17 (int8)", async () => {
  const cfg = COND;
  const weights = randomWeights(cfg, 11);
  const inp = randomInputs(cfg, 12);
  const ref = await ortEps(buildOnnxModel(cfg, weights, { quant: "int8" }), cfg, inp, "all");
  for (const opset of [13, 21]) {
    const got = await ortEps(
      buildOnnxModel(cfg, weights, { quant: "int8", opset }),
      cfg,
      inp,
      "all",
    );
    assert.ok(maxAbsDiff(got, ref) < 1e-5, `opset ${opset}`);
  }
});
