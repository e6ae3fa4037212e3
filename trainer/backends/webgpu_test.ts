/**
 * The WebGPU training backend against wasm, on real MNIST batches and real trainer runs. Runs
 * wherever navigator.gpu gives an adapter (Mesa's lavapipe does on CPU-only machines:
 * `apt-get install mesa-vulkan-drivers`); skipped with the reason printed otherwise. Sizes are
 * tiny because lavapipe is a CPU renderer (~100× slower than a GPU).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { makeSchedule } from "../../shared/schedule.ts";
import { initBackend } from "./backend.ts";
import { readCheckpoint, savedStateOf } from "../training/checkpoint.ts";
import { loadDataset, subset } from "../data/datasets.ts";
import {
  ADAM_DEFAULTS,
  disposeState,
  freshState,
  restoreState,
  saveState,
  trainStep,
} from "../training/loop.ts";
import { tinyUNet } from "../export/test_models.ts";
import { runCli, TINY_MNIST_FLAGS, TRAIN_CLI } from "../training/cli_testing.ts";
import { webgpuSkipReason } from "./webgpu_testing.ts";

const skip = await webgpuSkipReason("webgpu_test");

/** Max |a − b| over a tensor set, and max |b| (the scale it is judged against). */
function maxDiff(a: Float32Array, b: Float32Array): { diff: number; scale: number } {
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { diff, scale };
}

Deno.test({
  name: "one training step on WebGPU: loss, grad norm and every gradient match wasm (float32)",
  ignore: skip !== null,
  fn: async () => {
    // A conditional tiny UNet (8×8, c = 8, attention) on real MNIST digits, three wasm steps in
    // so that no gradient is zero by construction (the zero-initialised convs have moved).
    const split = await loadDataset("mnist", { imageSize: 8, channels: 1 });
    const data = subset(split.train, 64);
    const unet = tinyUNet({ numClasses: 10 });
    const sched = makeSchedule("linear", 1000);
    const opt = { lr: 2e-3, warmup: 0, ema: 0.99, gradClip: 0, condDrop: 0.1 };
    await initBackend({ backend: "wasm", threads: 1 });
    const st0 = freshState(unet, 4, data.count);
    for (let i = 0; i < 3; i++) await trainStep(st0, data, sched, unet, 8, opt);
    const start = await saveState(st0);
    disposeState(st0);

    /** One step from `start` on `backend`: its result and the new Adam first moments. */
    const stepOn = async (backend: "wasm" | "webgpu") => {
      await initBackend({ backend, threads: 1 });
      assert.equal(tf.getBackend(), backend);
      const st = restoreState(unet, start, data.count);
      const r = await trainStep(st, data, sched, unet, 8, opt);
      const saved = await saveState(st);
      disposeState(st);
      return { r, m: saved.adamM };
    };
    const gpu = await stepOn("webgpu");
    const cpu = await stepOn("wasm");
    console.log(
      `loss wasm ${cpu.r.loss} webgpu ${gpu.r.loss}; norm ${cpu.r.gradNorm} / ${gpu.r.gradNorm}`,
    );
    assert.ok(cpu.r.loss > 0.05 && cpu.r.gradNorm > 0.05, "a non-trivial step");
    assert.ok(Math.abs(gpu.r.loss - cpu.r.loss) <= 1e-5 * cpu.r.loss, "loss");
    assert.ok(Math.abs(gpu.r.gradNorm - cpu.r.gradNorm) <= 1e-4 * cpu.r.gradNorm, "grad norm");
    // m' = β1·m + (1 − β1)·g from the same m, so m'_gpu − m'_wasm = (1 − β1)(g_gpu − g_wasm).
    const b1 = ADAM_DEFAULTS.beta1;
    let worst = 0, worstName = "";
    for (const [name, mOld] of start.adamM) {
      const mc = cpu.m.get(name)!, mg = gpu.m.get(name)!;
      const g = mc.map((v, i) => (v - b1 * mOld[i]) / (1 - b1));
      const { diff } = maxDiff(mg, mc), { scale } = maxDiff(g.map(() => 0), g);
      assert.ok(scale > 0, `${name}: gradient is zero`);
      const rel = diff / (1 - b1) / scale;
      if (rel > worst) [worst, worstName] = [rel, name];
    }
    console.log(`worst gradient difference ${worst.toExponential(2)} × max |g| (${worstName})`);
    assert.ok(worst < 1e-4, `${worstName}: gradients differ by ${worst} of their max`);
  },
});

const ARGS = [
  ...TINY_MNIST_FLAGS,
  "--image-size",
  "16",
  "--lr",
  "3e-3",
  "--warmup",
  "2",
  "--sample-every",
  "0",
  "--log-every",
  "1",
  "--seed",
  "3",
];

async function train(args: string[]): Promise<string> {
  const r = await runCli(TRAIN_CLI, args);
  assert.equal(r.code, 0, `${r.out}\n${r.err}`);
  return r.out;
}

async function losses(run: string): Promise<Map<number, number>> {
  const text = await Deno.readTextFile(join(run, "metrics.jsonl"));
  return new Map(
    text.trim().split("\n").map((l) => JSON.parse(l) as { step: number; loss: number })
      .map((m) => [m.step, m.loss]),
  );
}

/** `steps` wasm steps in this process from a run's checkpoint: the losses and final state. */
async function continueOnWasm(run: string, steps: number) {
  const ck = await readCheckpoint(run);
  const split = await loadDataset("mnist", { imageSize: 16, channels: 1 });
  const data = subset(split.train, 64);
  const cfg = ck.meta.config as { lr: number; warmup: number; ema: number; gradClip: number };
  await initBackend({ backend: "wasm", threads: 1 });
  const st = restoreState(ck.meta.unet, savedStateOf(ck), data.count);
  const sched = makeSchedule(ck.meta.schedule.kind, ck.meta.schedule.T);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    out.push((await trainStep(st, data, sched, ck.meta.unet, 8, { ...cfg, condDrop: 0 })).loss);
  }
  const saved = await saveState(st);
  disposeState(st);
  return { losses: out, saved };
}

Deno.test({
  name: "train --backend webgpu on MNIST: loss falls; resumes on wasm and back exactly at its step",
  ignore: skip !== null,
  fn: async () => {
    const run = await Deno.makeTempDir({ prefix: "webgpu-run-" });
    // 1. WebGPU, steps 1–20: the loss falls.
    const out = await train([...ARGS, "--backend", "webgpu", "--steps", "20", "--out", run]);
    assert.match(out, /^backend webgpu \(adapter .+\)$/m);
    const l1 = await losses(run);
    assert.deepEqual([...l1.keys()], Array.from({ length: 20 }, (_, i) => i + 1));
    const mean = (a: number, b: number) => {
      let s = 0;
      for (let k = a; k <= b; k++) s += l1.get(k)!;
      return s / (b - a + 1);
    };
    console.log(
      `webgpu loss: steps 1–5 ${mean(1, 5).toFixed(3)}, 16–20 ${mean(16, 20).toFixed(3)}`,
    );
    assert.ok(mean(16, 20) < 0.8 * mean(1, 5), `loss did not fall: ${[...l1.values()]}`);
    const ck1 = await readCheckpoint(run);
    assert.equal(ck1.meta.step, 20);
    assert.match(ck1.meta.backend, /^webgpu on ./);

    // 2. Resume that checkpoint on wasm for steps 21–23: exactly what wasm computes from it here.
    const want = await continueOnWasm(run, 3);
    await train(["--resume", "--out", run, "--backend", "wasm", "--threads", "1", "--steps", "23"]);
    const l2 = await losses(run);
    assert.deepEqual([...l2.keys()], Array.from({ length: 23 }, (_, i) => i + 1));
    for (let k = 1; k <= 20; k++) assert.equal(l2.get(k), l1.get(k), "history kept");
    assert.deepEqual([21, 22, 23].map((k) => l2.get(k)), want.losses.map((l) => Math.fround(l)));
    const ck2 = await readCheckpoint(run);
    assert.equal(ck2.meta.step, 23);
    assert.equal(ck2.meta.backend, "wasm");
    for (const [name, v] of want.saved.params) assert.deepEqual(ck2.params.get(name), v, name);
    for (const [name, v] of want.saved.adamV) assert.deepEqual(ck2.adamV.get(name), v, name);
    assert.deepEqual(ck2.meta.rng, { sampler: want.saved.sampler, noise: want.saved.noise });

    // 3. And back to WebGPU for steps 24–26: it starts from that wasm checkpoint's state.
    const back = await continueOnWasm(run, 3);
    await train(["--resume", "--out", run, "--backend", "webgpu", "--steps", "26"]);
    const l3 = await losses(run);
    assert.deepEqual([...l3.keys()], Array.from({ length: 26 }, (_, i) => i + 1));
    const ck3 = await readCheckpoint(run);
    assert.equal(ck3.meta.step, 26);
    assert.equal(ck3.meta.commands.length, 3);
    assert.match(ck3.meta.backend, /^webgpu on ./);
    assert.deepEqual(ck3.meta.rng, { sampler: back.saved.sampler, noise: back.saved.noise });
    [24, 25, 26].forEach((k, i) => {
      const rel = Math.abs(l3.get(k)! - back.losses[i]) / back.losses[i];
      assert.ok(rel < 1e-4, `step ${k}: webgpu loss ${l3.get(k)} vs wasm ${back.losses[i]}`);
    });
    // Adam divides by √v, so float32 gradient rounding moves a weight by a small fraction of
    // one step's size (lr), not of the weight.
    const lr = (ck3.meta.config as { lr: number }).lr;
    let worst = 0;
    for (const [name, v] of back.saved.params) {
      worst = Math.max(worst, maxDiff(ck3.params.get(name)!, v).diff / lr);
    }
    console.log(
      `webgpu vs wasm after 3 resumed steps: max weight difference ${worst.toExponential(2)} lr`,
    );
    assert.ok(worst < 0.05, `weights differ by ${worst} × lr`);
    await Deno.remove(run, { recursive: true });
  },
});

Deno.test({
  name: "train --backend webgpu: 3 steps + resume to 6 == 6 straight (bit-exact checkpoint)",
  ignore: skip !== null,
  fn: async () => {
    const a = await Deno.makeTempDir({ prefix: "webgpu-straight-" });
    const b = await Deno.makeTempDir({ prefix: "webgpu-resumed-" });
    await train([...ARGS, "--backend", "webgpu", "--steps", "6", "--out", a]);
    await train([...ARGS, "--backend", "webgpu", "--steps", "3", "--out", b]);
    await train(["--resume", "--out", b, "--steps", "6"]); // the stored backend: webgpu
    const ca = await readCheckpoint(a), cb = await readCheckpoint(b);
    assert.match(cb.meta.backend, /^webgpu on ./);
    for (const set of ["params", "ema", "adamM", "adamV"] as const) {
      for (const [name, v] of ca[set]) assert.deepEqual(cb[set].get(name), v, `${set} ${name}`);
    }
    assert.deepEqual(await losses(b), await losses(a));
    for (const d of [a, b]) await Deno.remove(d, { recursive: true });
  },
});
