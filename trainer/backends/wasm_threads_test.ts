import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { getThreadsCount } from "@tensorflow/tfjs-backend-wasm";
import { initWasmThreads, patchWorkerScript, shutdownWasmThreads } from "./wasm_threads.ts";
import { registerWasmKernels } from "./kernels/register.ts";
import { randomInput, wasmVsCpu } from "./kernels/testing.ts";

const CHILD = "DDPM_WASM_THREADS_CHILD";

// Child mode (this file run by `deno run` from the test below): threaded init in a fresh
// process, conv + GroupNorm and matMul gradients against cpu, then exit without Deno.exit.
if (Deno.env.get(CHILD) !== undefined) {
  await initWasmThreads(2, Deno.env.get(CHILD));
  registerWasmKernels();
  const { groupNormSilu } = await import("./kernels/group_norm_silu.ts");
  const err = await wasmVsCpu(
    (x, w, g, b) =>
      groupNormSilu(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, "same"), g, b, 4, true),
    [
      randomInput([8, 16, 16, 8], 1),
      randomInput([3, 3, 8, 16], 2),
      randomInput([16], 3),
      randomInput([16], 4),
    ],
  );
  // Batched (stock path under threads) and a large transposed batch-1 product (ours).
  const errMm = Math.max(
    await wasmVsCpu(
      (a, b) => tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, false, true),
      [randomInput([3, 7, 5], 5), randomInput([3, 7, 5], 6)],
    ),
    await wasmVsCpu(
      (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, true, false),
      [randomInput([128, 256], 7), randomInput([128, 256], 8)],
    ),
  );
  await tf.setBackend("wasm");
  console.log(JSON.stringify({ threads: getThreadsCount(), err: Math.max(err, errMm) }));
  shutdownWasmThreads();
}

Deno.test("patchWorkerScript loads the glue from a file and refuses an unknown script", () => {
  const worker = "a;var objectUrl=URL.createObjectURL(e.data.urlOrBlob);importScripts(objectUrl);" +
    "URL.revokeObjectURL(objectUrl);Object.assign(global,{x:1})";
  const w = patchWorkerScript(worker, "/c/main.js");
  assert.ok(w.includes('importScripts("/c/main.js")'));
  assert.ok(!w.includes("createObjectURL") && !w.includes("Object.assign(global"));
  assert.throws(() => patchWorkerScript("something else", "/c/main.js"), /changed/);
});

Deno.test("2 wasm threads in a fresh process: kernels match cpu and the process exits", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname],
      env: { [CHILD]: dir },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const line = text.split("\n").find((l) => l.startsWith("{"));
    assert.ok(line, text);
    const r = JSON.parse(line) as { threads: number; err: number };
    assert.equal(r.threads, 2);
    assert.ok(r.err < 1e-4, `relative error ${r.err}`);
    assert.ok((await Deno.stat(`${dir}/worker.cjs`)).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
