/**
 * Edge latency benchmark for BENCHMARKS.md: per-step and per-request latency and CPU ms per
 * sample of one exported model, for chain lengths S, on
 *   - onnxruntime-web wasm, 1 and 2 threads, through the edge's own engine and sampler
 *     (edge/engine.ts + edge/sampler.ts `generate`, exactly what a request runs),
 *   - the edge engine with backend native (onnxruntime-node, what ORT_BACKEND=native serves),
 *     1 and 2 intra-op threads, through the same engine and sampler, and
 *   - the same ONNX bytes in onnxruntime-node (native CPU, 1 and 2 intra-op threads) driving the
 *     same shared sampling loop, as the native reference,
 * each runtime in its own child process (ORT-web's thread count is per process, and process CPU
 * time then belongs to one runtime only), one after another, in one run:
 *
 *   deno task bench:edge [--model fixtures/models/mnist/model.json] [--steps 5,10,20,50,1000]
 *     [--n 1] [--reps 3] [--runtimes web1,web2,native1,node1,node2] [--rounds 1] [--guidance g]
 *     [--markdown out.md] [--warmup-ms 4000]
 *
 * --rounds R runs the runtime list R times, alternating (A B C A B C …), and reports each
 * runtime's median over its rounds, so slow drift of the machine's load hits all alike.
 *
 * Per step = one sampler step (model run + the JS update), per request / S. Requests of
 * S ≥ 500 run once; shorter ones --reps times (median). CPU ms = process user + system time,
 * all threads. Prints a markdown table with the machine described.
 */
import { parseCli, runCli } from "./cli_args.ts";
import process from "node:process";
import type * as OrtNode from "onnxruntime-node";
import { DEFAULT_MODEL_CARD, loadModel, type Model } from "../edge/model.ts";
import { createEngine } from "../edge/engine.ts";
import { generate } from "../edge/sampler.ts";
import { makeSchedule } from "../shared/schedule.ts";
import { type EpsModel, sample } from "../shared/sample.ts";
import { guide } from "../shared/step.ts";

export type RuntimeId = "web1" | "web2" | "native1" | "native2" | "node1" | "node2";
/** native: the raw onnxruntime-node reference; edge: which edge engine backend, if any. */
const RUNTIMES: Record<
  RuntimeId,
  { label: string; threads: number; native: boolean; edge?: "wasm" | "native" }
> = {
  web1: { label: "onnxruntime-web wasm", threads: 1, native: false, edge: "wasm" },
  web2: { label: "onnxruntime-web wasm", threads: 2, native: false, edge: "wasm" },
  native1: { label: "edge engine, backend native", threads: 1, native: false, edge: "native" },
  native2: { label: "edge engine, backend native", threads: 2, native: false, edge: "native" },
  node1: { label: "onnxruntime-node (native)", threads: 1, native: true },
  node2: { label: "onnxruntime-node (native)", threads: 2, native: true },
};

export interface StepsResult {
  steps: number;
  reps: number;
  /** Median wall time of one request, ms. */
  requestMs: number;
  perStepMs: number;
  /** Median process CPU time of one request / n, ms. */
  cpuMsPerSample: number;
}

export interface WorkerResult {
  runtime: RuntimeId;
  sessionMs: number;
  /** Median of one model run at the request's batch (n, or 2n with guidance). */
  forwardMs: number;
  batch: number;
  results: StepsResult[];
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : 0.5 * (s[s.length / 2 - 1] + s[s.length / 2]);
};

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

interface Runner {
  /** One batched model run (what a step costs at the model). */
  forward(): Promise<void>;
  /** One full request of S steps for n images. */
  request(steps: number, seed: number): Promise<Float32Array>;
}

async function edgeRunner(
  model: Model,
  backend: "wasm" | "native",
  threads: number,
  n: number,
  label: number | undefined,
  guidance: number,
): Promise<Runner> {
  const engine = await createEngine(model, { backend, threads });
  const eps = engine.epsModel(n, label, guidance);
  const size = model.card.image.channels * model.card.image.size ** 2;
  const x = new Float32Array(n * size).fill(0.1);
  return {
    forward: async () => void await eps(x, 500),
    request: (steps, seed) => generate(engine, { seed, steps, eta: 1, n, label, guidance }),
  };
}

/** The edge engine's ε-model (guidance batched as [cond; uncond]) over an onnxruntime-node session. */
async function nodeRunner(
  model: Model,
  threads: number,
  n: number,
  label: number | undefined,
  guidance: number,
): Promise<Runner> {
  const ort: typeof OrtNode = await import("onnxruntime-node");
  const session = await ort.InferenceSession.create(model.onnx, {
    executionProviders: ["cpu"],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    extra: { session: { disable_quant_qdq: "1" } },
  });
  const { card } = model;
  const C = card.image.channels, S = card.image.size, size = C * S * S;
  const k = card.architecture.numClasses;
  const run = async (x: Float32Array, m: number, t: number, y: Int32Array | null) => {
    const feeds: Record<string, OrtNode.Tensor> = {
      x: new ort.Tensor("float32", x, [m, C, S, S]),
      t: card.onnx.timestepType === "int64"
        ? new ort.Tensor("int64", new BigInt64Array(m).fill(BigInt(t)), [m])
        : new ort.Tensor("float32", new Float32Array(m).fill(t), [m]),
    };
    if (k > 0) {
      const labels = new BigInt64Array(m).fill(BigInt(k));
      if (y) y.forEach((v, i) => labels[i] = BigInt(v));
      feeds.y = new ort.Tensor("int64", labels, [m]);
    }
    const out = await session.run(feeds);
    return out[session.outputNames[0]].data as Float32Array;
  };
  const yc = label === undefined || k === 0 ? null : new Int32Array(n).fill(label);
  let eps: EpsModel;
  if (!yc || guidance === 1) eps = (x, t) => run(x, n, t, yc);
  else if (guidance === 0) eps = (x, t) => run(x, n, t, null);
  else {
    const x2 = new Float32Array(2 * n * size), y2 = new Int32Array(2 * n).fill(k);
    y2.set(yc);
    const out = new Float32Array(n * size);
    eps = async (x, t) => {
      x2.set(x);
      x2.set(x, x.length);
      const e = await run(x2, 2 * n, t, y2);
      return guide(e.subarray(n * size), e.subarray(0, n * size), guidance, out);
    };
  }
  const base = makeSchedule(card.schedule.kind, card.schedule.T);
  const x = new Float32Array(n * size).fill(0.1);
  return {
    forward: async () => void await eps(x, 500),
    request: (steps, seed) => sample(base, eps, { n, size, steps, seed, eta: 1 }),
  };
}

export interface WorkerOptions {
  runtime: RuntimeId;
  model: string;
  steps: number[];
  n: number;
  reps: number;
  guidance?: number;
  forwardRuns?: number;
  /** Minimum warm-up before timing: ms (default WARMUP_MS) and runs (default WARMUP_RUNS). */
  warmupMs?: number;
  warmupRuns?: number;
}

/** Warm-up before timing: runs and milliseconds, both at least. */
export const WARMUP_RUNS = 100, WARMUP_MS = 4000;

/** Benchmark one runtime in this process. */
export async function runWorker(o: WorkerOptions): Promise<WorkerResult> {
  const model = await loadModel(o.model);
  const { card } = model;
  const conditional = card.architecture.numClasses > 0;
  const label = conditional ? 0 : undefined;
  const guidance = o.guidance ?? card.sampling.guidance;
  const spec = RUNTIMES[o.runtime];
  const t0 = performance.now();
  const runner = spec.edge
    ? await edgeRunner(model, spec.edge, spec.threads, o.n, label, guidance)
    : await nodeRunner(model, spec.threads, o.n, label, guidance);
  const sessionMs = performance.now() - t0;
  // Warm up until the wasm code has tiered up: V8 runs ORT-web's wasm with its baseline compiler
  // first and optimises hot functions later; a c = 16 forward took ~45 ms for its first ~50 runs
  // and ~8 ms after. At least WARMUP_RUNS runs and warmupMs.
  const w0 = performance.now();
  const warmupRuns = o.warmupRuns ?? WARMUP_RUNS, warmupMs = o.warmupMs ?? WARMUP_MS;
  for (let i = 0; i < warmupRuns || performance.now() - w0 < warmupMs; i++) {
    await runner.forward();
  }
  const results: StepsResult[] = [];
  for (const steps of o.steps) {
    const reps = steps >= 500 ? 1 : o.reps;
    const wall: number[] = [], cpu: number[] = [];
    for (let r = 0; r < reps; r++) {
      const c0 = cpuMs(), w0 = performance.now();
      await runner.request(steps, r);
      wall.push(performance.now() - w0);
      cpu.push(cpuMs() - c0);
    }
    const requestMs = median(wall);
    results.push({
      steps,
      reps,
      requestMs,
      perStepMs: requestMs / steps,
      cpuMsPerSample: median(cpu) / o.n,
    });
  }
  const fw: number[] = [];
  for (let i = 0; i < (o.forwardRuns ?? 20); i++) {
    const s = performance.now();
    await runner.forward();
    fw.push(performance.now() - s);
  }
  const passes = conditional && guidance !== 0 && guidance !== 1 ? 2 : 1;
  return {
    runtime: o.runtime,
    sessionMs,
    forwardMs: median(fw),
    batch: o.n * passes,
    results,
  };
}

/** The machine, for the report: CPU model, cores, memory, load. */
export async function machineDescription(): Promise<string> {
  const read = (p: string) => Deno.readTextFile(p).catch(() => "");
  const cpuinfo = await read("/proc/cpuinfo");
  const cpu = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown CPU";
  const flags = cpuinfo.match(/^flags\s*:\s*(.+)$/m)?.[1].split(" ") ?? [];
  const simd = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"].filter((f) =>
    flags.includes(f)
  );
  const mem = (await read("/proc/meminfo")).match(/^MemTotal:\s*(\d+)/m)?.[1];
  const load = (await read("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  return `${cpu}, ${navigator.hardwareConcurrency} logical cores` +
    (simd.length ? ` (${simd.join(", ")})` : "") +
    (mem ? `, ${(Number(mem) / 1048576).toFixed(1)} GiB RAM` : "") +
    `; ${Deno.build.os} ${Deno.build.arch}, Deno ${Deno.version.deno}; load average ${load}`;
}

export function markdown(
  machine: string,
  card: Model["card"],
  opts: { n: number; guidance: number },
  results: WorkerResult[],
): string {
  const nodeByThreads = new Map(
    results.filter((r) => RUNTIMES[r.runtime].native).map((r) => [RUNTIMES[r.runtime].threads, r]),
  );
  const wasmByThreads = new Map(
    results.filter((r) => RUNTIMES[r.runtime].edge === "wasm").map((
      r,
    ) => [RUNTIMES[r.runtime].threads, r]),
  );
  const lines = [
    `Machine: ${machine}`,
    "",
    `Model: ${card.name} (${card.onnx.quantization}, ${(card.onnx.bytes / 1024).toFixed(0)} KiB, ` +
    `${
      card.architecture.numClasses > 0 ? `conditional, guidance ${opts.guidance}` : "unconditional"
    }); ` +
    `n = ${opts.n} image(s) per request, η = 1.`,
    "",
    "| runtime | threads | session ms | forward ms (batch) | S | request ms | per step ms | CPU ms / sample | × native (wall) | × native (CPU) | CPU × wasm |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of results) {
    const spec = RUNTIMES[r.runtime];
    const ref = nodeByThreads.get(spec.threads);
    const web = wasmByThreads.get(spec.threads);
    for (const s of r.results) {
      const refS = ref?.results.find((x) => x.steps === s.steps);
      const webS = web?.results.find((x) => x.steps === s.steps);
      const toWasm = spec.edge === "wasm" || !webS
        ? "–"
        : (s.cpuMsPerSample / webS.cpuMsPerSample).toFixed(2);
      const ratio = spec.native || !refS ? "–" : (s.perStepMs / refS.perStepMs).toFixed(1);
      const cpuRatio = spec.native || !refS
        ? "–"
        : (s.cpuMsPerSample / refS.cpuMsPerSample).toFixed(1);
      lines.push(
        `| ${spec.label} | ${spec.threads} | ${r.sessionMs.toFixed(0)} | ${
          r.forwardMs.toFixed(2)
        } (${r.batch}) | ` +
          `${s.steps} | ${s.requestMs.toFixed(0)} | ${s.perStepMs.toFixed(2)} | ${
            s.cpuMsPerSample.toFixed(0)
          } | ${ratio} | ${cpuRatio} | ${toWasm} |`,
      );
    }
  }
  return lines.join("\n");
}

const MARK = "BENCH_JSON ";

/** One runtime's rounds as one result: the median of each figure over the rounds. */
export function mergeRounds(rs: WorkerResult[]): WorkerResult {
  const m = (f: (r: WorkerResult) => number) => median(rs.map(f));
  return {
    ...rs[0],
    sessionMs: m((r) => r.sessionMs),
    forwardMs: m((r) => r.forwardMs),
    results: rs[0].results.map((s, i) => ({
      ...s,
      requestMs: m((r) => r.results[i].requestMs),
      perStepMs: m((r) => r.results[i].perStepMs),
      cpuMsPerSample: m((r) => r.results[i].cpuMsPerSample),
    })),
  };
}

export async function main(argv: string[]): Promise<void> {
  const { values: a } = parseCli({
    args: argv,
    options: {
      model: { type: "string", default: DEFAULT_MODEL_CARD.pathname },
      steps: { type: "string", default: "5,10,20,50,1000" },
      n: { type: "string", default: "1" },
      reps: { type: "string", default: "3" },
      runtimes: { type: "string", default: "web1,web2,native1,node1,node2" },
      rounds: { type: "string", default: "1" },
      guidance: { type: "string" },
      worker: { type: "string" },
      markdown: { type: "string" },
      json: { type: "string" },
      "warmup-ms": { type: "string" },
    },
  }, {
    name: "bench_edge",
    summary:
      "edge latency and CPU ms per sample of one exported model, per runtime and chain length",
    usage: "deno task bench:edge [options]",
    help: { worker: "internal: measure one runtime in this process" },
  });
  const steps = a.steps!.split(",").map(Number);
  const common = {
    model: a.model!,
    steps,
    n: Number(a.n),
    reps: Number(a.reps),
    guidance: a.guidance === undefined ? undefined : Number(a.guidance),
    warmupMs: a["warmup-ms"] === undefined ? undefined : Number(a["warmup-ms"]),
  };
  if (a.worker) {
    const r = await runWorker({ ...common, runtime: a.worker as RuntimeId });
    console.log(MARK + JSON.stringify(r));
    return;
  }
  const model = await loadModel(a.model!);
  const machineStart = await machineDescription();
  const runtimes = a.runtimes!.split(",") as RuntimeId[];
  for (const r of runtimes) if (!(r in RUNTIMES)) throw new Error(`unknown runtime ${r}`);
  const rounds = Number(a.rounds);
  const byRuntime = new Map<RuntimeId, WorkerResult[]>();
  for (let round = 0; round < rounds; round++) {
    for (const rt of runtimes) {
      console.error(`bench: ${rt}${rounds > 1 ? `, round ${round + 1}/${rounds}` : ""} …`);
      const args = ["run", "-A", new URL(import.meta.url).pathname, "--worker", rt];
      for (const k of ["model", "steps", "n", "reps", "guidance", "warmup-ms"] as const) {
        if (a[k] !== undefined) args.push(`--${k}`, String(a[k]));
      }
      const out = await new Deno.Command(Deno.execPath(), {
        args,
        stdout: "piped",
        stderr: "inherit",
      })
        .output();
      const text = new TextDecoder().decode(out.stdout);
      const line = text.split("\n").find((l) => l.startsWith(MARK));
      if (!out.success || !line) throw new Error(`worker ${rt} failed (exit ${out.code}): ${text}`);
      const list = byRuntime.get(rt) ?? [];
      list.push(JSON.parse(line.slice(MARK.length)));
      byRuntime.set(rt, list);
    }
  }
  const results = runtimes.map((rt) => mergeRounds(byRuntime.get(rt)!));
  const machineEnd = (await Deno.readTextFile("/proc/loadavg").catch(() => "")).split(" ")
    .slice(0, 3).join(" ");
  const table = markdown(
    `${machineStart}${machineEnd ? ` (at end: ${machineEnd})` : ""}`,
    model.card,
    { n: common.n, guidance: common.guidance ?? model.card.sampling.guidance },
    results,
  );
  console.log(table);
  if (a.markdown) await Deno.writeTextFile(a.markdown, table + "\n");
  if (a.json) await Deno.writeTextFile(a.json, JSON.stringify(results, null, 2) + "\n");
}

if (import.meta.main) await runCli(() => main(Deno.args));
