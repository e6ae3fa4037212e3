import assert from "node:assert/strict";
import * as ort from "onnxruntime-web";
import { Rng } from "../../shared/rng.ts";
import { DataType, decodeModel, GraphBuilder } from "./onnx_graph.ts";
import {
  addWeight,
  dequantizeInt8PerChannel,
  type Quantization,
  quantizeInt8PerChannel,
  toFloat16,
} from "./quantize.ts";

ort.env.wasm.numThreads = 1;

Deno.test("int8 per-channel: symmetric scales, error ≤ scale/2, zero rows stay zero", () => {
  const rows = 3, per = 50;
  const w = new Rng(1).fillNormal(new Float32Array(rows * per));
  for (let i = 0; i < per; i++) w[per + i] *= 100; // row 1: a much larger range
  w.fill(0, 2 * per); // row 2: all zero
  const p = quantizeInt8PerChannel(w, rows);
  const d = dequantizeInt8PerChannel(p);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let i = 0; i < per; i++) m = Math.max(m, Math.abs(w[r * per + i]));
    if (m > 0) assert.ok(Math.abs(p.scales[r] - m / 127) <= 1e-6 * m, `scale ${r}`);
    assert.ok(p.q.subarray(r * per, (r + 1) * per).some((q) => Math.abs(q) === 127) || m === 0);
    for (let i = r * per; i < (r + 1) * per; i++) {
      assert.ok(Math.abs(d[i] - w[i]) <= p.scales[r] / 2 + 1e-7 * Math.abs(w[i]), `w[${i}]`);
    }
  }
  assert.equal(p.scales[2], 1);
  assert.ok(d.subarray(2 * per).every((v) => v === 0));
  assert.throws(() => quantizeInt8PerChannel(new Float32Array(7), 2));
});

Deno.test("fp16 rounding: relative error ≤ 2^-11 in the normal range", () => {
  const w = new Rng(2).fillNormal(new Float32Array(1000));
  const h = toFloat16(w);
  for (let i = 0; i < w.length; i++) {
    if (Math.abs(w[i]) > 1e-4) assert.ok(Math.abs(h[i] - w[i]) <= Math.abs(w[i]) * 2 ** -11);
  }
});

/** A graph whose output is the stored weight itself: what ORT sees for each storage. */
async function roundTrip(w: Float32Array, dims: number[], quant: Quantization) {
  const g = new GraphBuilder();
  const name = addWeight(g, "w", dims, w, quant);
  const zero = g.input("z", DataType.FLOAT, [1]);
  g.node("Add", [name, zero], {}, "out");
  g.output("out", DataType.FLOAT, dims);
  const bytes = g.toBytes({ name: "weight", opset: 17 });
  const s = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  try {
    const r = await s.run({ z: new ort.Tensor("float32", new Float32Array(1), [1]) });
    return { out: r.out.data as Float32Array, bytes };
  } finally {
    await s.release();
  }
}

Deno.test("addWeight: ORT reproduces each storage exactly (int8 via DequantizeLinear axis 0)", async () => {
  const dims = [4, 2, 3, 3];
  const w = new Rng(3).fillNormal(new Float32Array(72));
  for (let i = 0; i < 18; i++) w[18 + i] *= 0.01; // output channel 1 much smaller
  const f32 = await roundTrip(w, dims, "fp32");
  assert.deepEqual(f32.out, w);
  const f16 = await roundTrip(w, dims, "fp16");
  assert.deepEqual(f16.out, Float32Array.from(toFloat16(w)));
  const i8 = await roundTrip(w, dims, "int8");
  assert.deepEqual(i8.out, dequantizeInt8PerChannel(quantizeInt8PerChannel(w, 4)));
  const m = decodeModel(i8.bytes);
  const types = Object.fromEntries(m.graph!.initializer!.map((t) => [t.name, t.dataType]));
  assert.deepEqual(types, {
    "w.q": DataType.INT8,
    "w.scale": DataType.FLOAT,
    "w.zp": DataType.INT8,
  });
  const dq = m.graph!.node!.find((n) => n.opType === "DequantizeLinear")!;
  assert.equal(Number(dq.attribute![0].i), 0);
});
