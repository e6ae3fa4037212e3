/**
 * Trainer throughput benchmark for BENCHMARKS.md: images per second of one Adam step
 * (ε-MSE on a 28×28×1 batch by default, the MNIST UNet: levels c@28², 2c@14², 2c@7², one res
 * block per level, attention at 7×7, 10 classes; `--size 32 --channels-in 3 --classes 9` is the
 * emoji shape, `--space-to-depth 2` its lean stem) on the tfjs wasm backend with this project's kernels
 * (or another trainer backend: --backend webgpu, auto, …), for several base widths c and thread
 * counts, each in its own child process (the wasm thread count is fixed per process):
 *
 *   deno run -A scripts/bench_train.ts [--c 16,32] [--batch 64] [--threads 1,2] [--steps 5]
 *     [--size 28] [--channels-in 1] [--classes 10] [--space-to-depth 1]
 *     [--warmup 2] [--markdown out.md] [--profile] [--bpf auto|direct|tap|grid|dilated]
 *     [--backend wasm|webgpu|auto|tfjs-node-gpu|tfjs-node|cpu]
 *
 * The table's backend column says what ran (for WebGPU with the adapter, e.g. "webgpu on
 * llvmpipe …": a software renderer, numbers for correctness runs only); --threads applies to
 * wasm alone (other backends run once per c and batch, threads 0).
 *
 * Reports the median step; "other load" is the CPU (in cores) used by other processes during
 * the timed steps, so a contended machine is visible in the table, and "img per CPU-s" divides
 * throughput by the CPU this process actually got (≈ img/s on an idle machine for 1 thread).
 * --profile adds, per configuration, a table of CPU time per step by kernel. --bpf forces one
 * Conv2DBackpropFilter formulation (default: the SIMD `direct` one where it applies).
 *
 * This machine's 2 vCPUs are shared and noisy: compare configurations in alternating runs
 * pinned to the same core (`taskset -c 1 …`), and read "img per CPU-s" next to img/s.
 */
import { parseCli, runCli } from "./cli_args.ts";
import process from "node:process";
import * as tf from "@tensorflow/tfjs";
import type { UNetConfig } from "../shared/model_card.ts";
import {
  type BackendChoice,
  initBackend,
  shutdownWasmThreads,
} from "../trainer/backends/backend.ts";
import { BACKENDS } from "../trainer/backends/choice.ts";
import { forward, initParams } from "../trainer/network/tfjs_ops.ts";
import { forwardFlops, paramSpecs } from "../trainer/network/unet.ts";
import { Rng } from "../shared/rng.ts";
import {
  type BackpropFilterMethod,
  setBackpropFilterMethod,
} from "../trainer/backends/kernels/conv2d_backprop_filter.ts";

/** One measured configuration. */
export interface BenchRow {
  c: number;
  /** The image shape, e.g. "28×28×1", and the space-to-depth block (1 = off). */
  shape: string;
  spaceToDepth: number;
  batch: number;
  threads: number;
  /** What ran, e.g. "wasm" or "webgpu on NVIDIA …". */
  backend: string;
  params: number;
  fwdMflopPerImage: number;
  msPerStep: number;
  imgPerSec: number;
  /** Cores used by this process / by everything else during the timed steps. */
  ownCpu: number;
  otherCpu: number;
  /** With --profile: CPU ms per step spent in each kernel (top level), largest first. */
  kernels?: { name: string; cpuMs: number }[];
}

/** The image and stem a benchmark runs at (default: MNIST's). */
export interface BenchShape {
  imageSize: number;
  inChannels: number;
  numClasses: number;
  spaceToDepth: number;
}
export const MNIST_SHAPE: BenchShape = {
  imageSize: 28,
  inChannels: 1,
  numClasses: 10,
  spaceToDepth: 1,
};

/** The benchmarked architecture at base width c. */
export function benchConfig(c: number, shape: BenchShape = MNIST_SHAPE): UNetConfig {
  return {
    imageSize: shape.imageSize,
    inChannels: shape.inChannels,
    channels: c,
    channelMult: [1, 2, 2],
    numResBlocks: 1,
    attention: true,
    groups: 8,
    numClasses: shape.numClasses,
    ...(shape.spaceToDepth > 1 ? { spaceToDepth: shape.spaceToDepth } : {}),
  };
}

/** Busy CPU milliseconds of the whole machine (all cores) from /proc/stat. */
function machineBusyMs(): number {
  const f = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1).map(
    Number,
  );
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * 10; // user nice system irq softirq steal
}

/** CPU milliseconds of this process (all threads) from /proc/self/stat. */
function processCpuMs(): number {
  const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

/**
 * Wraps every kernel of `backend` to add its CPU time (ms, outermost calls only) to `into`.
 * Costs ~1 µs per kernel call.
 */
function profileKernels(backend: string, into: Map<string, number>): void {
  let depth = 0;
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  for (const k of tf.getKernelsForBackend(backend)) {
    const inner = k.kernelFunc;
    tf.unregisterKernel(k.kernelName, backend);
    tf.registerKernel({
      ...k,
      kernelFunc: (args) => {
        depth++;
        const t0 = cpuMs();
        try {
          return inner(args);
        } finally {
          depth--;
          if (depth === 0) into.set(k.kernelName, (into.get(k.kernelName) ?? 0) + cpuMs() - t0);
        }
      },
    });
  }
}

/** Measures one configuration in this process (backend initialised here). */
export async function measure(
  c: number,
  batch: number,
  threads: 1 | 2,
  steps: number,
  warmup: number,
  profile = false,
  backend: BackendChoice = "wasm",
  shape: BenchShape = MNIST_SHAPE,
): Promise<BenchRow> {
  const info = await initBackend({ backend, threads });
  const kernelMs = new Map<string, number>();
  if (profile) profileKernels(tf.getBackend(), kernelMs);
  const cfg = benchConfig(c, shape);
  const S = shape.imageSize, C = shape.inChannels;
  const params = initParams(cfg, 0);
  const vars = Object.values(params);
  const opt = tf.train.adam(2e-4);
  const rng = new Rng(1);
  const n = batch * S * S * C;
  const x = new Float32Array(n), eps = new Float32Array(n);
  const step = async () => {
    rng.fillNormal(x);
    rng.fillNormal(eps);
    const t = Float32Array.from({ length: batch }, () => rng.int(1000));
    const y = Float32Array.from({ length: batch }, () => rng.int(shape.numClasses + 1));
    const loss = tf.tidy(() => {
      const xt = tf.tensor4d(x, [batch, S, S, C]), e = tf.tensor4d(eps, [batch, S, S, C]);
      const tt = tf.tensor1d(t), yt = tf.tensor1d(y);
      return opt.minimize(
        () => tf.mean(tf.square(tf.sub(forward(params, cfg, xt, tt, yt), e))) as tf.Scalar,
        true,
        vars,
      )!;
    });
    await loss.data();
    loss.dispose();
  };
  for (let i = 0; i < warmup; i++) await step();
  kernelMs.clear();
  const times: number[] = [];
  const busy0 = machineBusyMs(), own0 = processCpuMs(), wall0 = performance.now();
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await step();
    times.push(performance.now() - t0);
  }
  const wall = performance.now() - wall0, own = processCpuMs() - own0;
  const other = Math.max(0, machineBusyMs() - busy0 - own);
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  const row: BenchRow = {
    c,
    shape: `${S}×${S}×${C}`,
    spaceToDepth: shape.spaceToDepth,
    batch,
    threads: info.threads,
    backend: info.adapter !== undefined ? `${info.name} on ${info.adapter}` : info.name,
    params: paramSpecs(cfg).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0),
    fwdMflopPerImage: forwardFlops(cfg) / 1e6,
    msPerStep: ms,
    imgPerSec: (batch * 1000) / ms,
    ownCpu: own / wall,
    otherCpu: other / wall,
  };
  if (profile) {
    row.kernels = [...kernelMs].map(([name, ms]) => ({ name, cpuMs: ms / steps }))
      .sort((a, b) => b.cpuMs - a.cpuMs);
  }
  vars.forEach((v) => v.dispose());
  opt.dispose();
  return row;
}

/** Markdown table of measured rows. */
export function markdownTable(rows: BenchRow[]): string {
  const head =
    "| image | s2d | c | batch | params | fwd MFLOP/img | backend | threads | ms/step | " +
    "img/s | img per CPU-s | own CPU (cores) | other load (cores) |\n" +
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  return head +
    rows.map((r) =>
      `| ${r.shape} | ${r.spaceToDepth} | ${r.c} | ${r.batch} | ${
        r.params.toLocaleString("en-US")
      } | ${r.fwdMflopPerImage.toFixed(0)} | ` +
      `${r.backend} | ${r.threads} | ${r.msPerStep.toFixed(0)} | ${r.imgPerSec.toFixed(1)} | ` +
      `${(r.imgPerSec / Math.max(r.ownCpu, 1e-9)).toFixed(1)} | ` +
      `${r.ownCpu.toFixed(2)} | ${r.otherCpu.toFixed(2)} |`
    ).join("\n") + "\n";
}

/** Markdown table of where a row's step CPU time goes (needs --profile). */
export function profileTable(row: BenchRow, top = 10): string {
  const kernels = row.kernels ?? [];
  const total = kernels.reduce((a, k) => a + k.cpuMs, 0);
  const lines = kernels.slice(0, top).map((k) =>
    `| ${k.name} | ${k.cpuMs.toFixed(0)} | ${(100 * k.cpuMs / Math.max(total, 1e-9)).toFixed(1)}% |`
  );
  return `${row.shape}, s2d ${row.spaceToDepth}, c=${row.c}, batch ${row.batch}, ` +
    `${row.threads} thread(s): ${total.toFixed(0)} CPU ms ` +
    `per step in kernels\n\n| kernel | CPU ms/step | share |\n|---|---|---|\n${lines.join("\n")}\n`;
}

function numbers(s: string, min = 1): number[] {
  return s.split(",").map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`not a list of integers ≥ ${min}: ${s}`);
    return n;
  });
}

async function main() {
  const { values } = parseCli({
    args: Deno.args,
    options: {
      c: { type: "string", default: "16,32" },
      batch: { type: "string", default: "64" },
      threads: { type: "string", default: "1,2" },
      steps: { type: "string", default: "5" },
      warmup: { type: "string", default: "2" },
      markdown: { type: "string" },
      profile: { type: "boolean", default: false },
      bpf: { type: "string", default: "auto" },
      child: { type: "boolean", default: false },
      backend: { type: "string", default: "wasm" },
      size: { type: "string", default: "28" },
      "channels-in": { type: "string", default: "1" },
      classes: { type: "string", default: "10" },
      "space-to-depth": { type: "string", default: "1" },
    },
  }, {
    name: "bench_train",
    summary:
      "trainer throughput: images per second of one Adam step, per base width and thread count",
    help: {
      child: "internal: measure one configuration in this process",
      size: "image side (32 for emoji)",
      "channels-in": "1 gray | 3 RGB",
      classes: "class count of the conditional UNet (emoji: 9)",
      "space-to-depth": "the lean stem's block b (1 = off)",
    },
  });
  const [size] = numbers(values.size), [inChannels] = numbers(values["channels-in"]);
  const [numClasses] = numbers(values.classes, 0),
    [spaceToDepth] = numbers(values["space-to-depth"]);
  const shape: BenchShape = { imageSize: size, inChannels, numClasses, spaceToDepth };
  if (inChannels !== 1 && inChannels !== 3) throw new Error("--channels-in must be 1 or 3");
  const [steps] = numbers(values.steps), [warmup] = numbers(values.warmup, 0);
  const batches = numbers(values.batch);
  const backend = values.backend as BackendChoice;
  if (!(BACKENDS as readonly string[]).includes(backend)) {
    throw new Error(`--backend must be one of ${BACKENDS.join(", ")}`);
  }
  if (values.child) {
    const [c] = numbers(values.c), [threads] = numbers(values.threads);
    if (threads !== 1 && threads !== 2) throw new Error("--threads must be 1 or 2");
    setBackpropFilterMethod(values.bpf as BackpropFilterMethod);
    const row = await measure(
      c,
      batches[0],
      threads,
      steps,
      warmup,
      values.profile,
      backend,
      shape,
    );
    console.log(JSON.stringify(row));
    shutdownWasmThreads();
    return;
  }
  const rows: BenchRow[] = [];
  for (const c of numbers(values.c)) {
    for (const batch of batches) {
      for (const threads of backend === "wasm" ? numbers(values.threads) : [1]) {
        const args = ["run", "-A", new URL(import.meta.url).pathname, "--child", "--c", `${c}`];
        args.push("--batch", `${batch}`, "--threads", `${threads}`);
        args.push("--steps", `${steps}`, "--warmup", `${warmup}`);
        if (values.profile) args.push("--profile");
        args.push("--bpf", values.bpf, "--backend", backend);
        args.push("--size", `${size}`, "--channels-in", `${inChannels}`);
        args.push("--classes", `${numClasses}`, "--space-to-depth", `${spaceToDepth}`);
        const out = await new Deno.Command(Deno.execPath(), {
          args,
          stdout: "piped",
          stderr: "inherit",
        })
          .output();
        const line = new TextDecoder().decode(out.stdout).split("\n").find((l) =>
          l.startsWith("{")
        );
        if (out.code !== 0 || line === undefined) {
          throw new Error(`child c=${c} batch=${batch} threads=${threads} failed`);
        }
        const row = JSON.parse(line) as BenchRow;
        console.error(
          `c=${c} batch=${batch} ${row.backend} threads=${row.threads}: ` +
            `${row.imgPerSec.toFixed(1)} img/s ` +
            `(other load ${row.otherCpu.toFixed(2)} cores)`,
        );
        rows.push(row);
      }
    }
  }
  const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  const what = backend === "wasm" ? "wasm + project kernels" : `--backend ${backend}`;
  const text = `Adam step, ε-MSE, ${size}×${size}×${inChannels}` +
    `${
      spaceToDepth > 1 ? ` (space-to-depth ${spaceToDepth})` : ""
    }, tfjs 4.22 ${what}, median of ${steps} ` +
    `steps after ${warmup} warm-up; ${navigator.hardwareConcurrency} cores (${cpu}), ` +
    `Deno ${Deno.version.deno}.\n\n${markdownTable(rows)}` +
    (values.profile ? `\n${rows.map((r) => profileTable(r)).join("\n")}` : "");
  console.log(text);
  if (values.markdown) Deno.writeTextFileSync(values.markdown, text);
}

if (import.meta.main) await runCli(main);
