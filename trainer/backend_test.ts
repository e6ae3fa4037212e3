import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "./backend.ts";
import { WASM_KERNELS } from "./kernels/register.ts";

Deno.test("auto without native bindings picks wasm with the project's kernels registered", async () => {
  assert.equal(tf.getKernel("Conv2DBackpropFilter", "wasm"), undefined);
  const info = await initBackend({ backend: "auto", threads: 1 });
  assert.deepEqual(info, { name: "wasm", threads: 1 });
  assert.equal(tf.getBackend(), "wasm");
  for (const k of WASM_KERNELS) assert.ok(tf.getKernel(k, "wasm") !== undefined, k);
  // A conv weight gradient now runs on wasm.
  const g = tf.grad((w: tf.Tensor) =>
    tf.sum(tf.conv2d(tf.ones([1, 4, 4, 1]) as tf.Tensor4D, w as tf.Tensor4D, 1, "same"))
  );
  assert.deepEqual([...g(tf.zeros([3, 3, 1, 1])).dataSync()], [9, 12, 9, 12, 16, 12, 9, 12, 9]);
});

Deno.test("cpu only when asked; re-initialising is allowed", async () => {
  assert.deepEqual(await initBackend({ backend: "cpu", threads: 1 }), { name: "cpu", threads: 1 });
  assert.equal(tf.getBackend(), "cpu");
  assert.deepEqual(await initBackend({ backend: "wasm", threads: 1 }), {
    name: "wasm",
    threads: 1,
  });
  assert.equal(tf.getBackend(), "wasm");
});
