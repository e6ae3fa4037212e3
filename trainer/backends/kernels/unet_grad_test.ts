/** Integration: loss and every parameter gradient of a small UNet, wasm + our kernels vs cpu. */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../backend.ts";
import { paramSpecs } from "../../network/unet.ts";
import { forward } from "../../network/tfjs_ops.ts";
import { tinyUNet } from "../../export/test_models.ts";
import { installExactCpuResizeGrad, randomInput, relErr } from "./testing.ts";

await initBackend({ backend: "wasm", threads: 1 });
installExactCpuResizeGrad();

// 12 → 6 → 3: odd sizes at the bottom, stride-2 convs, upsampling, attention, labels.
const cfg = tinyUNet({ imageSize: 12, channelMult: [1, 2, 2], numClasses: 3 });
const N = 2;
const specs = paramSpecs(cfg);
// Every parameter non-trivial (no zero convs, γ ≠ 1) so every path carries gradient.
const weights = specs.map((s, i) => {
  const r = randomInput(s.shape, 1000 + i);
  const scale = s.init === "he" ? Math.sqrt(1 / s.fanIn) : 0.2;
  r.data.forEach((v, j) => (r.data[j] = (s.init === "one" ? 1 : 0) + scale * v));
  return r;
});
const x = randomInput([N, 12, 12, 1], 1), eps = randomInput([N, 12, 12, 1], 2);
const t = [17, 803], y = [0, 3];

async function lossAndGrads(backend: "cpu" | "wasm") {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const ps = weights.map((w) => tf.tensor(w.data, w.shape));
    const xt = tf.tensor4d(x.data, [N, 12, 12, 1]), e = tf.tensor4d(eps.data, [N, 12, 12, 1]);
    const tt = tf.tensor1d(t), yt = tf.tensor1d(y);
    const f = (...p: tf.Tensor[]) => {
      const params = Object.fromEntries(specs.map((s, i) => [s.name, p[i]]));
      return tf.mean(tf.square(tf.sub(forward(params, cfg, xt, tt, yt), e)));
    };
    const { value, grads } = tf.valueAndGrads(f)(ps);
    return { loss: value.dataSync()[0], grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

Deno.test("UNet (c=8, batch 2) loss and all parameter gradients: wasm + kernels match cpu", async () => {
  const ref = await lossAndGrads("cpu");
  const got = await lossAndGrads("wasm");
  assert.ok(Math.abs(got.loss - ref.loss) <= 1e-4 * ref.loss, `loss ${got.loss} vs ${ref.loss}`);
  const errs = specs.map((s, i) => ({ name: s.name, e: relErr(got.grads[i], ref.grads[i]) }));
  const worst = errs.sort((a, b) => b.e - a.e).slice(0, 3);
  console.log(`worst relative gradient errors: ${JSON.stringify(worst)}`);
  assert.ok(worst[0].e < 1e-4, `worst: ${JSON.stringify(worst)}`);
  // The gradients are not trivially zero.
  assert.ok(ref.grads.every((g) => g.some((v) => v !== 0)));
});
