import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../backend.ts";
import { randomInput, relErr, wasmVsCpu } from "./testing.ts";
import { dilatedConv, direct, shiftedGridMatMul, tapGemm } from "./conv2d_backprop_filter.ts";
import type { WasmBackend } from "./wasm_util.ts";

await initBackend({ backend: "wasm", threads: 1 });

type Case = { x: number[]; w: number[]; stride: 1 | 2; pad: "same" | "valid" };
const cases: Case[] = [
  // stride 1: small (dilated-conv path) and mid-sized spatial (shifted-grid path, several chunks)
  { x: [2, 6, 6, 3], w: [3, 3, 3, 4], stride: 1, pad: "same" },
  { x: [3, 13, 11, 5], w: [3, 3, 5, 8], stride: 1, pad: "same" },
  { x: [20, 15, 15, 4], w: [3, 3, 4, 9], stride: 1, pad: "same" },
  { x: [2, 9, 9, 4], w: [3, 3, 4, 8], stride: 1, pad: "valid" },
  { x: [2, 10, 10, 6], w: [1, 1, 6, 12], stride: 1, pad: "same" },
  // stride 2, even and odd sizes
  { x: [2, 8, 8, 3], w: [3, 3, 3, 5], stride: 2, pad: "same" },
  { x: [3, 7, 7, 4], w: [3, 3, 4, 4], stride: 2, pad: "same" },
  { x: [2, 9, 6, 2], w: [3, 3, 2, 3], stride: 2, pad: "valid" },
  // the UNet's edge layers (1 input / 1 output channel), 7×7 maps, 1×1 convs, wide outputs
  { x: [3, 7, 7, 1], w: [3, 3, 1, 16], stride: 1, pad: "same" },
  { x: [3, 7, 7, 16], w: [3, 3, 16, 1], stride: 1, pad: "same" },
  { x: [2, 7, 7, 32], w: [1, 1, 32, 96], stride: 1, pad: "same" },
  { x: [2, 7, 7, 9], w: [3, 3, 9, 20], stride: 2, pad: "same" },
  { x: [5, 7, 7, 12], w: [3, 3, 12, 3], stride: 2, pad: "same" },
  // SIMD input gradient: stride-2 phase classes (even/odd sizes, valid padding, even filter,
  // 1×1 stride 2 where some dx pixels get no gradient) and a real UNet downsampling layer
  { x: [2, 8, 8, 4], w: [3, 3, 4, 8], stride: 2, pad: "same" },
  { x: [2, 9, 7, 8], w: [3, 3, 8, 4], stride: 2, pad: "valid" },
  { x: [2, 5, 5, 8], w: [2, 2, 8, 4], stride: 2, pad: "same" },
  { x: [2, 6, 6, 4], w: [1, 1, 4, 8], stride: 2, pad: "same" },
  { x: [3, 28, 28, 16], w: [3, 3, 16, 16], stride: 2, pad: "same" },
  { x: [2, 14, 14, 48], w: [3, 3, 48, 32], stride: 1, pad: "same" },
];

for (const [i, c] of cases.entries()) {
  Deno.test(`conv2d ${c.x} * ${c.w} stride ${c.stride} ${c.pad}: value, dx, dW match cpu`, async () => {
    const err = await wasmVsCpu(
      (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad),
      [randomInput(c.x, 10 + i), randomInput(c.w, 100 + i)],
    );
    assert.ok(err < 1e-4, `relative error ${err}`);
  });
}

Deno.test("fused conv2d with bias: bias gradient (Sum) matches cpu", async () => {
  const err = await wasmVsCpu(
    (x, w, b) =>
      tf.fused.conv2d({
        x: x as tf.Tensor4D,
        filter: w as tf.Tensor4D,
        bias: b,
        strides: 2,
        pad: "same",
      }),
    [randomInput([2, 7, 7, 3], 1), randomInput([3, 3, 3, 4], 2), randomInput([4], 3)],
  );
  assert.ok(err < 1e-4, `relative error ${err}`);
});

Deno.test("each weight-gradient formulation alone matches the cpu gradient", async () => {
  type F = (...a: Parameters<typeof tapGemm>) => ReturnType<typeof direct>;
  const shapes: { x: number[]; w: number[]; stride: 1 | 2; forms: [string, F][] }[] = [
    // several chunks, the last one partial (64 input channels → 2048-column chunks of 12 images)
    {
      x: [30, 12, 10, 64],
      w: [3, 3, 64, 8],
      stride: 1,
      forms: [["tap", tapGemm], ["grid", shiftedGridMatMul], ["direct", direct]],
    },
    {
      x: [40, 12, 10, 8],
      w: [3, 3, 8, 8],
      stride: 1,
      forms: [["tap", tapGemm], ["grid", shiftedGridMatMul], ["dil", dilatedConv], [
        "direct",
        direct,
      ]],
    },
    {
      x: [3, 9, 7, 3],
      w: [3, 3, 3, 5],
      stride: 1,
      forms: [["tap", tapGemm], ["grid", shiftedGridMatMul], ["dil", dilatedConv]],
    },
    { x: [3, 9, 7, 3], w: [3, 3, 3, 5], stride: 2, forms: [["dil", dilatedConv]] },
    // direct, vectorised over Co (stride 2, odd sizes) and over Ci (Co = 1, 3)
    { x: [4, 7, 9, 5], w: [3, 3, 5, 12], stride: 2, forms: [["direct", direct]] },
    { x: [3, 8, 7, 16], w: [3, 3, 16, 1], stride: 1, forms: [["direct", direct]] },
    { x: [3, 8, 7, 8], w: [3, 3, 8, 3], stride: 2, forms: [["direct", direct]] },
  ];
  for (const [i, s] of shapes.entries()) {
    const x = randomInput(s.x, 200 + i);
    const n = s.x[0], ho = Math.ceil(s.x[1] / s.stride), wo = Math.ceil(s.x[2] / s.stride);
    const dy = randomInput([n, ho, wo, s.w[3]], 300 + i);
    await tf.setBackend("cpu");
    const want = tf.tidy(() =>
      tf.grad((w: tf.Tensor) =>
        tf.conv2d(
          tf.tensor4d(x.data, x.shape as [number, number, number, number]),
          w as tf.Tensor4D,
          s.stride,
          "same",
        )
      )(
        tf.zeros(s.w),
        tf.tensor(dy.data, dy.shape),
      ).dataSync() as Float32Array
    );
    await tf.setBackend("wasm");
    const backend = tf.backend() as unknown as WasmBackend;
    const info = tf.backend_util.computeConv2DInfo(
      s.x as [number, number, number, number],
      s.w as [number, number, number, number],
      s.stride,
      1,
      "same",
      undefined,
      false,
      "channelsLast",
    );
    const xt = tf.tensor(x.data, x.shape), dyt = tf.tensor(dy.data, dy.shape);
    for (const [name, f] of s.forms) {
      const outInfo = f(backend, xt, dyt, info);
      assert.ok(outInfo !== null, `${name} declined ${s.x} * ${s.w}`);
      const got = tf.engine().makeTensorFromTensorInfo(outInfo);
      assert.deepEqual(got.shape, s.w);
      const e = relErr(got.dataSync() as Float32Array, want);
      assert.ok(e < 1e-4, `${name} on ${s.x}: relative error ${e}`);
      got.dispose();
    }
    xt.dispose();
    dyt.dispose();
  }
});
