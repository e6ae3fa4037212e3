import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { describeBackend, initBackend } from "./backend.ts";
import { WASM_KERNELS } from "./kernels/register.ts";
import { WEBGPU_KERNELS } from "./kernels/webgpu/register.ts";
import { probeAdapter } from "./webgpu.ts";
import { webgpuSkipReason } from "./webgpu_testing.ts";

const probe = await probeAdapter();
const hardwareGpu = probe.ok && !probe.software;
const noWebgpu = await webgpuSkipReason("backend_test");

Deno.test({
  name: "auto without native bindings or a hardware GPU picks wasm, saying why it skipped each",
  ignore: hardwareGpu,
  fn: async () => {
    assert.equal(tf.getKernel("Conv2DBackpropFilter", "wasm"), undefined);
    const info = await initBackend({ backend: "auto", threads: 1 });
    assert.equal(info.name, "wasm");
    assert.equal(info.threads, 1);
    assert.equal(tf.getBackend(), "wasm");
    assert.equal(info.skipped.length, 3, info.skipped.join("\n"));
    assert.match(info.skipped[0], /^tfjs-node-gpu: not installed/);
    assert.match(
      info.skipped[1],
      probe.ok ? /^webgpu: the adapter ".+" is a software renderer/ : /^webgpu: .+/,
    );
    assert.match(info.skipped[2], /^tfjs-node: not installed/);
    const lines = describeBackend(info);
    assert.equal(lines[0], "backend wasm (1 thread)");
    assert.deepEqual(lines.slice(1), info.skipped.map((s) => `  skipped ${s}`));
    for (const k of WASM_KERNELS) assert.ok(tf.getKernel(k, "wasm") !== undefined, k);
    // A conv weight gradient now runs on wasm.
    const g = tf.grad((w: tf.Tensor) =>
      tf.sum(tf.conv2d(tf.ones([1, 4, 4, 1]) as tf.Tensor4D, w as tf.Tensor4D, 1, "same"))
    );
    assert.deepEqual([...g(tf.zeros([3, 3, 1, 1])).dataSync()], [9, 12, 9, 12, 16, 12, 9, 12, 9]);
  },
});

Deno.test({
  name: "auto takes WebGPU on a hardware adapter (after tfjs-node-gpu)",
  ignore: !hardwareGpu,
  fn: async () => {
    const info = await initBackend({ backend: "auto", threads: 1 });
    assert.equal(info.name, "webgpu");
    assert.match(info.skipped[0], /^tfjs-node-gpu: /);
  },
});

Deno.test("cpu only when asked; re-initialising is allowed", async () => {
  assert.deepEqual(await initBackend({ backend: "cpu", threads: 1 }), {
    name: "cpu",
    threads: 1,
    skipped: [],
  });
  assert.equal(tf.getBackend(), "cpu");
  assert.deepEqual(await initBackend({ backend: "wasm", threads: 1 }), {
    name: "wasm",
    threads: 1,
    skipped: [],
  });
  assert.equal(tf.getBackend(), "wasm");
});

Deno.test({
  name: "--backend webgpu takes any adapter, a software one included, with our kernels",
  ignore: noWebgpu !== null,
  fn: async () => {
    const info = await initBackend({ backend: "webgpu", threads: 1 });
    assert.equal(info.name, "webgpu");
    assert.equal(info.adapter, (probe as { description: string }).description);
    assert.equal(tf.getBackend(), "webgpu");
    assert.equal(describeBackend(info)[0], `backend webgpu (adapter ${info.adapter})`);
    for (const k of WEBGPU_KERNELS) assert.ok(tf.getKernel(k, "webgpu") !== undefined, k);
    // Back to wasm in the same process.
    assert.equal((await initBackend({ backend: "wasm", threads: 1 })).name, "wasm");
  },
});
