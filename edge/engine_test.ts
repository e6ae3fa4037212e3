/** The ε-model on real onnxruntime-web: batching, labels, guidance, backends. */
import assert from "node:assert/strict";
import { Rng } from "../shared/rng.ts";
import { guide } from "../shared/step.ts";
import { createEngine, passes, resolveBackend, warmUp, WARMUP_CALLS } from "./engine.ts";
import { isSoftwareAdapter, mayHaveGpu, requestInWorker } from "./gpu_probe.ts";
import { loadModel } from "./model.ts";
import { generate } from "./sampler.ts";
import { writeTinyModel } from "./testing.ts";

const cond = await loadModel(await writeTinyModel({ T: 50 }));
const engine = await createEngine(cond, { backend: "wasm", threads: 1 });
const SIZE = 64;

const normals = (n: number, seed: number) => new Rng(seed).fillNormal(new Float32Array(n * SIZE));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test("forward: batch items are independent and the null class is numClasses", async () => {
  const x = normals(3, 1);
  const y = Int32Array.of(0, 1, 3);
  const batch = await engine.forward(x, 3, 17, y);
  assert.equal(batch.length, 3 * SIZE);
  for (let i = 0; i < 3; i++) {
    const one = await engine.forward(
      x.slice(i * SIZE, (i + 1) * SIZE),
      1,
      17,
      y.subarray(i, i + 1),
    );
    assert.ok(maxAbsDiff(one, batch.subarray(i * SIZE, (i + 1) * SIZE)) < 1e-5);
  }
  // y = null means the null class for every image.
  const nul = await engine.forward(x, 3, 17, null);
  assert.ok(maxAbsDiff(nul.subarray(2 * SIZE), batch.subarray(2 * SIZE)) < 1e-6);
  assert.ok(maxAbsDiff(nul.subarray(0, SIZE), batch.subarray(0, SIZE)) > 1e-3, "labels matter");
  // So does the timestep.
  assert.ok(maxAbsDiff(await engine.forward(x, 3, 40, y), batch) > 1e-3);
  await assert.rejects(engine.forward(x, 2, 17, null), /want 128/);
});

Deno.test("forward: a batch over maxBatch runs in chunks, yielding to the event loop between", async () => {
  assert.equal(engine.maxBatch, 8, "wasm default");
  const chunked = await createEngine(cond, { backend: "wasm", threads: 1, maxBatch: 2 });
  const x = normals(5, 3);
  const y = Int32Array.of(0, 1, 2, 3, 1);
  const whole = await engine.forward(x, 5, 9, y);
  const order: string[] = [];
  setTimeout(() => order.push("timer"), 0);
  const runs = chunked.runs;
  const parts = await chunked.forward(x, 5, 9, y).finally(() => order.push("forward"));
  assert.deepEqual(order, ["timer", "forward"], "a timer due during the pass ran before its end");
  assert.equal(chunked.runs - runs, 1, "runs counts forward passes, not session runs");
  assert.ok(maxAbsDiff(parts, whole) < 1e-5);
  // Deterministic: same chunks, same bytes.
  assert.deepEqual(await chunked.forward(x, 5, 9, y), parts);
  assert.ok(
    maxAbsDiff(await chunked.forward(x, 5, 9, null), await engine.forward(x, 5, 9, null)) < 1e-5,
  );
});

Deno.test("epsModel: guidance combines cond and uncond from one batched run", async () => {
  const x = normals(2, 2);
  const yc = Int32Array.of(1, 1);
  const ec = await engine.forward(x, 2, 30, yc);
  const eu = await engine.forward(x, 2, 30, null);
  for (const w of [0, 1, 2.5]) {
    const runs = engine.runs;
    const timing = { modelMs: 0, runs: 0 };
    const e = await engine.epsModel(2, 1, w, timing)(x, 30);
    assert.equal(engine.runs - runs, 1, "one session run per step");
    assert.equal(timing.runs, 1);
    assert.ok(maxAbsDiff(e, guide(eu, ec, w, new Float32Array(2 * SIZE))) < 1e-5, `w = ${w}`);
  }
  // Per-image labels.
  const mixed = await engine.epsModel(2, [0, 2], 1)(x, 30);
  assert.ok(maxAbsDiff(mixed, await engine.forward(x, 2, 30, Int32Array.of(0, 2))) < 1e-6);
  assert.throws(() => engine.epsModel(2, [0], 1), /need 2 labels/);
  assert.equal(passes(undefined, 3), 1);
  assert.equal(passes(1, 3), 2);
  assert.equal(passes(1, 1), 1);
});

Deno.test("generate: deterministic, in [−1, 1], cancellable", async () => {
  const o = { seed: 11, steps: 5, eta: 1, n: 2, label: 0, guidance: 2 };
  const a = await generate(engine, o);
  assert.deepEqual(await generate(engine, o), a);
  assert.equal(a.length, 2 * SIZE);
  assert.ok(a.every((v) => v >= -1 && v <= 1));
  assert.notDeepEqual(await generate(engine, { ...o, seed: 12 }), a);
  const ctl = new AbortController();
  let steps = 0;
  const err = await generate(engine, {
    ...o,
    steps: 20,
    onStep: (done) => {
      steps = done;
      if (done === 3) ctl.abort(new Error("stop"));
    },
  }, ctl.signal).catch((e) => e);
  assert.match(String(err), /stop/);
  assert.equal(steps, 3);
});

Deno.test("an unconditional model takes no labels", async () => {
  const m = await loadModel(await writeTinyModel({ numClasses: 0 }));
  const e = await createEngine(m, { backend: "wasm", threads: 1 });
  const x = await generate(e, { seed: 1, steps: 3, eta: 0, n: 2 });
  assert.equal(x.length, 2 * SIZE);
  assert.throws(() => e.epsModel(1, 0, 1), /unconditional/);
});

Deno.test("auto picks wasm unless a hardware GPU adapter exists", async () => {
  assert.equal(await resolveBackend("wasm"), "wasm");
  assert.equal(await resolveBackend("webgpu"), "webgpu");
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  const hardware = adapter != null &&
    !(adapter.info as { isFallbackAdapter?: boolean }).isFallbackAdapter &&
    !/llvmpipe|lavapipe|swiftshader/i.test(adapter.info.description);
  assert.equal(await resolveBackend("auto"), hardware ? "webgpu" : "wasm");
});

Deno.test("auto: device nodes decide without WebGPU on Linux; elsewhere or unlistable, ask", () => {
  const fs = (tree: Record<string, string[] | null>) => (dir: string) =>
    dir in tree ? tree[dir] : [];
  assert.equal(mayHaveGpu("linux", fs({ "/dev": ["null", "tty0", "kvm"] })), false);
  assert.equal(mayHaveGpu("linux", fs({ "/dev": ["dri"], "/dev/dri": ["renderD128"] })), true);
  assert.equal(mayHaveGpu("linux", fs({ "/dev": ["dri"], "/dev/dri": ["by-path"] })), false);
  assert.equal(mayHaveGpu("linux", fs({ "/dev": ["nvidia0", "nvidiactl"] })), true);
  assert.equal(mayHaveGpu("linux", fs({ "/dev": ["nvidiactl"] })), false);
  assert.equal(mayHaveGpu("linux", fs({ "/dev": ["dxg"] })), true);
  assert.equal(mayHaveGpu("linux", fs({ "/dev": null })), true, "no permission: cannot tell");
  assert.equal(mayHaveGpu("darwin", fs({})), true);
  const info = (description: string, isFallbackAdapter = false) =>
    ({ vendor: "", architecture: "", device: "", description, isFallbackAdapter }) as
      & GPUAdapterInfo
      & { isFallbackAdapter: boolean };
  assert.ok(isSoftwareAdapter(info("llvmpipe (LLVM 15.0.6, 256 bits)")));
  assert.ok(isSoftwareAdapter(info("NVIDIA H200", true)));
  assert.ok(!isSoftwareAdapter(info("NVIDIA H200")));
});

Deno.test("auto takes an answer probed outside the process; explicit choices win", async () => {
  assert.equal(await resolveBackend("auto", "webgpu"), "webgpu");
  assert.equal(await resolveBackend("auto", "wasm"), "wasm");
  assert.equal(await resolveBackend("wasm", "webgpu"), "wasm");
  assert.equal(await resolveBackend("native", "wasm"), "native");
});

Deno.test("the Worker probe answers like an in-process request", async () => {
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  const hardware = adapter != null && !isSoftwareAdapter(adapter.info);
  assert.equal(await requestInWorker(), hardware);
});

Deno.test("the probe CLI prints auto's answer, and nothing when ORT_BACKEND is explicit", async () => {
  const run = async (env: Record<string, string>) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-env=ORT_BACKEND", new URL("./gpu_probe.ts", import.meta.url).href],
      env,
      stderr: "null",
    }).output();
    assert.ok(out.success);
    return new TextDecoder().decode(out.stdout).trim();
  };
  assert.match(await run({}), /^(wasm|webgpu)$/);
  assert.equal(await run({ ORT_BACKEND: "wasm" }), "");
});

Deno.test("warmUp runs WARMUP_CALLS forward passes and changes no output", async () => {
  const e = await createEngine(cond, { backend: "wasm", threads: 1, release: true });
  assert.equal(e.model.onnx.length, 0);
  const o = { seed: 4, steps: 3, eta: 1, n: 2, label: 1, guidance: 2 };
  const before = await generate(e, o);
  const runs = e.runs;
  await warmUp(e);
  assert.equal(e.runs - runs, WARMUP_CALLS);
  assert.deepEqual(await generate(e, o), before);
});
