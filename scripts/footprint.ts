/**
 * Memory and cold start of the real server, for BENCHMARKS.md (issue 14):
 *
 *   deno run -A scripts/footprint.ts [--variants default,wasm,warmup,native] [--rounds 2]
 *     [--requests 100] [--burst 60] [--markdown out.md] [--json out.json]
 *   deno run -A scripts/footprint.ts --stages [--backend auto|wasm|native]
 *
 * Server mode: each variant is a `deno serve edge/main.ts` (or `deno run edge/serve.ts`, as
 * `deno task serve` runs it) subprocess on a loopback port, started fresh per round, variants
 * alternating (A B C A B C …). Per start it records, from the spawn:
 *   - wall ms and process CPU ms until /healthz answers ready and until the first PNG has arrived,
 *   - CPU ms per request of the first 5 requests (= the first 50 UNet calls at the card's 10
 *     steps) and of requests 96–100 (steady state), each a `GET /generate?seed=i` at the card's
 *     defaults, one after another,
 *   - VmRSS at ready, after the first PNG, after `--requests` sequential requests and after a
 *     `--burst`-way burst of concurrent requests (the queue answers 503 past MAX_QUEUE), and the
 *     process's VmHWM (peak RSS) at the end.
 * CPU comes from /proc/<pid>/stat (utime + stime, 10 ms ticks), so per-request figures are means
 * over 5 requests.
 *
 * Stages mode: the steps edge/main.ts takes, in this process, printing RSS after each one:
 * Deno + imports, model read, backend resolved, session created, first request, 100 requests.
 */
import { parseCli, runCli } from "./cli_args.ts";
import { machineDescription } from "./bench_edge.ts";
import { parseStatus, processTree } from "./soak.ts";

export interface Variant {
  /** What it is, for the table. */
  label: string;
  /** deno arguments before the entry point (permissions, flags). */
  args: string[];
  /** "serve": `deno serve … edge/main.ts`; "task": `deno task serve` (the server is its child). */
  entry: "serve" | "task";
  env: Record<string, string>;
}

const DEPLOY = ["--allow-net", "--allow-read", "--allow-env"];

export const VARIANTS: Record<string, Variant> = {
  default: {
    label: "deno serve edge/main.ts, no ORT_BACKEND",
    args: DEPLOY,
    entry: "serve",
    env: {},
  },
  task: { label: "deno task serve, no ORT_BACKEND", args: [], entry: "task", env: {} },
  "task-queue-64": {
    label: "deno task serve, MAX_QUEUE=64 (the whole burst admitted)",
    args: [],
    entry: "task",
    env: { MAX_QUEUE: "64" },
  },
  "task-warmup": {
    label: "deno task serve, WARMUP=1",
    args: [],
    entry: "task",
    env: { WARMUP: "1" },
  },
  "task-native": {
    label: "deno task serve:native",
    args: [],
    entry: "task",
    env: {},
  },
  wasm: { label: "ORT_BACKEND=wasm", args: DEPLOY, entry: "serve", env: { ORT_BACKEND: "wasm" } },
  warmup: { label: "WARMUP=1", args: DEPLOY, entry: "serve", env: { WARMUP: "1" } },
  native: {
    label: "ORT_BACKEND=native (--allow-ffi)",
    args: [...DEPLOY, "--allow-ffi"],
    entry: "serve",
    env: { ORT_BACKEND: "native" },
  },
  "native-warmup": {
    label: "ORT_BACKEND=native WARMUP=1",
    args: [...DEPLOY, "--allow-ffi"],
    entry: "serve",
    env: { ORT_BACKEND: "native", WARMUP: "1" },
  },
  // Process-level knobs, on wasm (no adapter probe) to isolate their effect.
  "wasm-liftoff-only": {
    label: "ORT_BACKEND=wasm --v8-flags=--liftoff-only",
    args: [...DEPLOY, "--v8-flags=--liftoff-only"],
    entry: "serve",
    env: { ORT_BACKEND: "wasm" },
  },
  "wasm-1task": {
    label: "ORT_BACKEND=wasm --v8-flags=--wasm-num-compilation-tasks=1",
    args: [...DEPLOY, "--v8-flags=--wasm-num-compilation-tasks=1"],
    entry: "serve",
    env: { ORT_BACKEND: "wasm" },
  },
  "wasm-arena2": {
    label: "ORT_BACKEND=wasm MALLOC_ARENA_MAX=2",
    args: DEPLOY,
    entry: "serve",
    env: { ORT_BACKEND: "wasm", MALLOC_ARENA_MAX: "2" },
  },
  "wasm-1task-arena2": {
    label: "ORT_BACKEND=wasm MALLOC_ARENA_MAX=2 --v8-flags=--wasm-num-compilation-tasks=1",
    args: [...DEPLOY, "--v8-flags=--wasm-num-compilation-tasks=1"],
    entry: "serve",
    env: { ORT_BACKEND: "wasm", MALLOC_ARENA_MAX: "2" },
  },
  "wasm-single": {
    label: "ORT_BACKEND=wasm --v8-flags=--single-threaded",
    args: [...DEPLOY, "--v8-flags=--single-threaded"],
    entry: "serve",
    env: { ORT_BACKEND: "wasm" },
  },
  "queue-64": {
    label: "MAX_QUEUE=64 (the whole burst admitted)",
    args: DEPLOY,
    entry: "serve",
    env: { MAX_QUEUE: "64" },
  },
};

export interface Run {
  variant: string;
  round: number;
  backend: string;
  readyMs: number;
  readyCpuMs: number;
  firstPngMs: number;
  firstPngCpuMs: number;
  /** Mean CPU ms per request over requests 1–5 and 96–100 (or the last 5). */
  coldCpuMsPerRequest: number;
  warmCpuMsPerRequest: number;
  rssReadyMb: number;
  rssFirstMb: number;
  rssAfterRequestsMb: number;
  rssAfterBurstMb: number;
  peakMb: number;
  burstStatuses: Record<string, number>;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** utime + stime of a process, ms. */
export function cpuMsOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

function memOf(pid: number) {
  const m = parseStatus(Deno.readTextFileSync(`/proc/${pid}/status`));
  return { rssMb: m.rssKb / 1024, hwmMb: m.hwmKb / 1024 };
}

/** The command line of one variant on `port`. */
export function commandFor(name: string, v: Variant, port: number): string[] {
  return v.entry === "serve"
    ? ["serve", ...v.args, "--host", "127.0.0.1", "--port", String(port), "edge/main.ts"]
    : ["task", name === "task-native" ? "serve:native" : "serve"];
}

/** The server's pid: the process itself, or under `deno task` its child running edge/serve.ts. */
function serverPid(root: number): number {
  for (const pid of processTree(root)) {
    try {
      const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
      if (cmd.includes("edge/serve.ts") || cmd.includes("edge/main.ts")) return pid;
    } catch { /* gone */ }
  }
  return root;
}

async function get(url: string): Promise<{ status: number; bytes: number; backend?: string }> {
  const r = await fetch(url);
  const b = new Uint8Array(await r.arrayBuffer());
  return { status: r.status, bytes: b.length, backend: r.headers.get("X-Backend") ?? undefined };
}

/** Start one server, measure it, stop it. */
export async function measure(
  name: string,
  round: number,
  o: { requests: number; burst: number; beforeDir?: string },
): Promise<Run> {
  // "before:<variant>": the same variant run from another checkout (the code before a change).
  const before = name.startsWith("before:");
  if (before && !o.beforeDir) throw new Error(`${name} needs --before-dir`);
  const v = VARIANTS[before ? name.slice(7) : name];
  if (!v) throw new Error(`unknown variant ${name}; known: ${Object.keys(VARIANTS).join(", ")}`);
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  const proc = new Deno.Command(Deno.execPath(), {
    args: commandFor(before ? name.slice(7) : name, v, port),
    cwd: before ? o.beforeDir : new URL("..", import.meta.url),
    env: { PORT: String(port), HOST: "127.0.0.1", ...v.env },
    clearEnv: false,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    let pid = proc.pid;
    let backend = "?";
    for (;;) {
      const r = await fetch(`${url}/healthz`).then((r) => r.json()).catch(() => null);
      if (r?.status === "ready") {
        backend = r.backend;
        break;
      }
      if (r?.status === "error") throw new Error(`${name}: ${r.error}`);
      if (performance.now() - t0 > 120_000) throw new Error(`${name}: not ready in 120 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
    pid = serverPid(proc.pid);
    const readyMs = performance.now() - t0, readyCpuMs = cpuMsOf(pid);
    const rssReadyMb = memOf(pid).rssMb;
    const first = await get(`${url}/generate?seed=0`);
    if (first.status !== 200) throw new Error(`${name}: first request ${first.status}`);
    const firstPngMs = performance.now() - t0, firstPngCpuMs = cpuMsOf(pid);
    const rssFirstMb = memOf(pid).rssMb;
    const cpuAt: number[] = [firstPngCpuMs];
    for (let i = 1; i < o.requests; i++) {
      const r = await get(`${url}/generate?seed=${i}`);
      if (r.status !== 200) throw new Error(`${name}: request ${i}: ${r.status}`);
      cpuAt.push(cpuMsOf(pid));
    }
    const rssAfterRequestsMb = memOf(pid).rssMb;
    const burst = await Promise.all(
      Array.from({ length: o.burst }, (_, i) => get(`${url}/generate?seed=${10_000 + i}`)),
    );
    const burstStatuses: Record<string, number> = {};
    for (const r of burst) burstStatuses[r.status] = (burstStatuses[r.status] ?? 0) + 1;
    const m = memOf(pid);
    // Requests 1–5 (the first one's CPU includes start-up: count 2–5 after it, and the first
    // alone is firstPngCpuMs) — CPU per request from cumulative counters.
    const k = Math.min(5, cpuAt.length - 1);
    const coldCpuMsPerRequest = (cpuAt[k] - cpuAt[0]) / k;
    const warmCpuMsPerRequest = (cpuAt[cpuAt.length - 1] - cpuAt[cpuAt.length - 1 - k]) / k;
    return {
      variant: name,
      round,
      backend,
      readyMs,
      readyCpuMs,
      firstPngMs,
      firstPngCpuMs,
      coldCpuMsPerRequest,
      warmCpuMsPerRequest,
      rssReadyMb,
      rssFirstMb,
      rssAfterRequestsMb,
      rssAfterBurstMb: m.rssMb,
      peakMb: m.hwmMb,
      burstStatuses,
    };
  } finally {
    // deno task forwards SIGTERM to its child.
    for (const pid of processTree(proc.pid).reverse()) {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch { /* gone */ }
    }
    await proc.status;
  }
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : 0.5 * (s[s.length / 2 - 1] + s[s.length / 2]);
};

export function markdown(machine: string, runs: Run[], o: { requests: number; burst: number }) {
  const names = [...new Set(runs.map((r) => r.variant))];
  const f0 = (v: number) => v.toFixed(0);
  const lines = [
    `Machine: ${machine}`,
    "",
    `Each start: ready → first PNG → ${o.requests} sequential requests → a ${o.burst}-way burst ` +
    `(GET /generate?seed=i at the card's defaults). Median over ${
      Math.max(...runs.map((r) => r.round)) + 1
    } alternating starts; CPU per request over requests 2–5 (UNet calls 11–50) and the last 5.`,
    "",
    "| variant | backend | ready ms (CPU) | first PNG ms (CPU) | CPU ms/req, req 2–5 | CPU ms/req, steady | RSS ready / first / after requests / after burst MB | **peak RSS MB** (max) | burst statuses |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const n of names) {
    const rs = runs.filter((r) => r.variant === n);
    const v = VARIANTS[n.replace(/^before:/, "")];
    const label = n.startsWith("before:") ? `before: ${v.label}` : v.label;
    const m = (k: keyof Run) => median(rs.map((r) => r[k] as number));
    const statuses = Object.entries(rs[rs.length - 1].burstStatuses).map(([s, c]) => `${s}: ${c}`)
      .join(", ");
    lines.push(
      `| ${label} | ${rs[0].backend} | ${f0(m("readyMs"))} (${f0(m("readyCpuMs"))}) | ` +
        `${f0(m("firstPngMs"))} (${f0(m("firstPngCpuMs"))}) | ${f0(m("coldCpuMsPerRequest"))} | ` +
        `${f0(m("warmCpuMsPerRequest"))} | ${f0(m("rssReadyMb"))} / ${f0(m("rssFirstMb"))} / ` +
        `${f0(m("rssAfterRequestsMb"))} / ${f0(m("rssAfterBurstMb"))} | **${f0(m("peakMb"))}** (${
          f0(Math.max(...rs.map((r) => r.peakMb)))
        }) | ${statuses} |`,
    );
  }
  return lines.join("\n");
}

/** Stages mode: what edge/main.ts does, step by step, with RSS after each. */
async function stages(backend: string): Promise<void> {
  const rss = () => Deno.memoryUsage().rss / 1e6;
  const rows: [string, number][] = [["Deno started", rss()]];
  const { loadModel } = await import("../edge/model.ts");
  const { createEngine, resolveBackend } = await import("../edge/engine.ts");
  const { generate } = await import("../edge/sampler.ts");
  await import("../edge/app.ts");
  rows.push(["+ imports (app, engine, sampler)", rss()]);
  const model = await loadModel();
  rows.push(["+ model read and verified", rss()]);
  const b = await resolveBackend(backend as "auto");
  rows.push([`+ resolveBackend("${backend}") → ${b}`, rss()]);
  const engine = await createEngine(model, { backend: b, threads: 1, release: true });
  rows.push(["+ session created", rss()]);
  const card = model.card;
  const req = (seed: number) =>
    generate(engine, {
      seed,
      steps: card.sampling.steps,
      eta: card.sampling.eta,
      n: 1,
      label: seed % 10,
    });
  await req(0);
  rows.push(["+ first request", rss()]);
  for (let i = 1; i < 100; i++) await req(i);
  rows.push(["+ 99 more requests", rss()]);
  for (const [k, v] of rows) console.log(`| ${k} | ${v.toFixed(0)} |`);
}

async function main(argv: string[]) {
  const { values: a } = parseCli({
    args: argv,
    options: {
      variants: { type: "string", default: "default,wasm,warmup,native" },
      rounds: { type: "string", default: "2" },
      requests: { type: "string", default: "100" },
      burst: { type: "string", default: "60" },
      markdown: { type: "string" },
      json: { type: "string" },
      stages: { type: "boolean", default: false },
      backend: { type: "string", default: "auto" },
      "before-dir": { type: "string" },
    },
  }, {
    name: "footprint",
    summary: "memory and cold start of the real server, or (--stages) RSS after each start-up step",
  });
  if (a.stages) return await stages(a.backend!);
  const o = { requests: Number(a.requests), burst: Number(a.burst), beforeDir: a["before-dir"] };
  const names = a.variants!.split(",");
  const machine = await machineDescription();
  const runs: Run[] = [];
  for (let round = 0; round < Number(a.rounds); round++) {
    for (const n of names) {
      console.error(`footprint: ${n}, round ${round + 1} …`);
      const r = await measure(n, round, o);
      console.error(JSON.stringify(r));
      runs.push(r);
    }
  }
  const end = (await Deno.readTextFile("/proc/loadavg").catch(() => "")).split(" ").slice(0, 3);
  const table = markdown(`${machine} (at end: ${end.join(" ")})`, runs, o);
  console.log(table);
  if (a.markdown) await Deno.writeTextFile(a.markdown, table + "\n");
  if (a.json) await Deno.writeTextFile(a.json, JSON.stringify(runs, null, 2) + "\n");
}

if (import.meta.main) await runCli(() => main(Deno.args));
