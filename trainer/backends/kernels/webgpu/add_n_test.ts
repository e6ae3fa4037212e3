import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { webgpuSkipReason } from "../../webgpu_testing.ts";
import { initWebgpu } from "../../webgpu.ts";
import { maxAddNInputs } from "./add_n.ts";
import { Rng } from "../../../../shared/rng.ts";

const skip = await webgpuSkipReason("add_n_test");

/** AddN of `count` seeded tensors of `shape` on the current backend. */
async function addN(count: number, shape: number[]): Promise<Float32Array> {
  const rng = new Rng(count * 31 + shape.length);
  const size = shape.reduce((a, b) => a * b, 1);
  const ts = Array.from(
    { length: count },
    () => tf.tensor(rng.fillNormal(new Float32Array(size)), shape),
  );
  const r = tf.addN(ts);
  const out = (await r.data()) as Float32Array;
  tf.dispose([r, ...ts]);
  return out;
}

Deno.test({
  name: "webgpu AddN matches cpu for more inputs than one shader can bind",
  ignore: skip !== null,
  fn: async () => {
    await initWebgpu();
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    const max = maxAddNInputs(device);
    const cases: [number, number[]][] = [
      [1, [3]],
      [2, []],
      [max, [5]],
      [max + 1, []],
      [86, []], // the trainer's grad norm on the tiny UNet: one scalar per parameter tensor
      [3 * max * max + 2, [2, 3]],
    ];
    const got = [];
    for (const [n, shape] of cases) got.push(await addN(n, shape));
    await tf.setBackend("cpu");
    for (const [i, [n, shape]] of cases.entries()) {
      const want = await addN(n, shape);
      assert.equal(got[i].length, want.length);
      for (let j = 0; j < want.length; j++) {
        assert.ok(
          Math.abs(got[i][j] - want[j]) <= 1e-5 * Math.max(1, Math.abs(want[j])),
          `${n} inputs of [${shape}]: [${j}] ${got[i][j]} vs ${want[j]}`,
        );
      }
    }
  },
});
