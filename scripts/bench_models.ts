/**
 * Server CPU per sample of models side by side, each at its card's defaults, in one run — the
 * comparison the issues' "≤ k× the 2026-11-30 default's CPU per sample" asks for:
 *
 *   deno task bench:models [--models fixtures/models/mnist-2026-11-30/model.json,fixtures/models/mnist/model.json]
 *     [--warmup 60] [--requests 20] [--rounds 5] [--query ""] [--markdown out.md]
 *
 * Each model is served by its own real server (`deno serve` of edge/main.ts with the Deploy
 * permissions, ORT_BACKEND=wasm, ORT_THREADS=1) on a loopback port; every server first gets
 * `--warmup` requests (V8 tiers onnxruntime-web's wasm up over the first ~50 calls), then the
 * rounds alternate A B A B …: each round sends `--requests` sequential `GET /generate?seed=i`
 * (fresh seeds, plus `--query`) to each server and reads the server process's CPU time
 * (utime + stime from /proc, 10 ms ticks) before and after. Reports per model the median over
 * rounds of CPU ms and wall ms per request, and the CPU ratio to the first model.
 *
 * A model entry may carry its own query after `#` (added to `--query`), so one card can be
 * compared with itself under other parameters, e.g.
 * `--models m.json,m.json#guidance=0&label=3&classifier_scale=4` (a server per entry).
 */
import { parseCli, runCli } from "./cli_args.ts";
import { machineDescription } from "./bench_edge.ts";
import { cpuMsOf } from "./footprint.ts";
import { serveArgs } from "../edge/serve_args.ts";
import { cardSampler } from "../shared/samplers/mod.ts";

export interface ModelResult {
  model: string;
  /** `prior`: the card answers the t = T − 1 call from its data prior (steps − 1 UNet calls). */
  card: {
    steps: number;
    sampler: string;
    spacing: string;
    prior: boolean;
    timesteps?: number[];
    /** The card's `sampling.nullClassSteps` (the steps of a null-class request), if any. */
    nullClassSteps?: number;
  };
  /** CPU ms per request of each round. */
  cpuMs: number[];
  wallMs: number[];
  warmupCpuMs: number;
}

interface Running {
  url: string;
  pid: number;
  close(): Promise<void>;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function start(model: string): Promise<Running> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: serveArgs(port),
    cwd: new URL("..", import.meta.url),
    env: { MODEL: model, ORT_BACKEND: "wasm", ORT_THREADS: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    const r = await fetch(`${url}/healthz`).catch(() => null);
    if (r && (await r.json()).status === "ready") {
      return {
        url,
        pid: child.pid,
        close: async () => {
          child.kill("SIGTERM");
          await child.status;
        },
      };
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`server for ${model} did not become ready`);
}

async function requests(s: Running, first: number, count: number, query: string) {
  for (let i = 0; i < count; i++) {
    const r = await fetch(`${s.url}/generate?seed=${first + i}${query ? `&${query}` : ""}`);
    if (r.status !== 200) throw new Error(`${s.url}: status ${r.status}: ${await r.text()}`);
    await r.arrayBuffer();
  }
}

/** `--query` and the entry's own query (after `#`), joined. */
const queryOf = (entry: string, query: string) =>
  [query, entry.split("#").slice(1).join("#")].filter((q) => q !== "").join("&");

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function benchModels(o: {
  models: string[];
  warmup: number;
  requests: number;
  rounds: number;
  query: string;
}): Promise<ModelResult[]> {
  const servers: Running[] = [];
  try {
    for (const m of o.models) servers.push(await start(m.split("#")[0]));
    const results: ModelResult[] = [];
    for (const [i, s] of servers.entries()) {
      const card = await (await fetch(`${s.url}/model`)).json();
      const c0 = cpuMsOf(s.pid);
      await requests(s, 1_000_000, o.warmup, queryOf(o.models[i], o.query));
      results.push({
        model: o.models[i],
        card: {
          steps: card.sampling.steps,
          sampler: cardSampler(card.sampling),
          spacing: card.sampling.spacing,
          prior: card.sampling.prior !== undefined,
          timesteps: card.sampling.timesteps,
          nullClassSteps: card.sampling.nullClassSteps,
        },
        cpuMs: [],
        wallMs: [],
        warmupCpuMs: (cpuMsOf(s.pid) - c0) / Math.max(1, o.warmup),
      });
    }
    let seed = 0;
    for (let r = 0; r < o.rounds; r++) {
      for (const [i, s] of servers.entries()) {
        const c0 = cpuMsOf(s.pid), t0 = performance.now();
        await requests(s, seed, o.requests, queryOf(o.models[i], o.query));
        seed += o.requests;
        results[i].cpuMs.push((cpuMsOf(s.pid) - c0) / o.requests);
        results[i].wallMs.push((performance.now() - t0) / o.requests);
      }
    }
    return results;
  } finally {
    for (const s of servers) await s.close();
  }
}

const unetCalls = (n: number) => `${n} UNet call${n === 1 ? "" : "s"}`;

export function markdown(
  machine: string,
  rs: ModelResult[],
  o: { requests: number; rounds: number; warmup: number; query?: string },
) {
  const base = median(rs[0].cpuMs);
  return [
    `Machine: ${machine}. Each model on its own \`deno serve edge/main.ts\` (wasm, 1 thread), ` +
    `${o.warmup} warm-up requests each, then ${o.rounds} alternating rounds of ${o.requests} ` +
    `sequential \`/generate?seed=i${o.query ? `&${o.query}` : ""}\` at the card's defaults; ` +
    "server CPU from /proc (medians over rounds).",
    "",
    "| model | card default | server CPU ms / request | wall ms / request | CPU × first | warm-up CPU ms / request |",
    "|---|---|---|---|---|---|",
    ...rs.map((r) =>
      `| ${r.model} | ${r.card.sampler}, ${r.card.steps} steps, ` +
      (r.card.timesteps ? `t = ${r.card.timesteps.join(", ")}` : r.card.spacing) +
      `${r.card.prior ? ` + prior (${unetCalls(r.card.steps - 1)})` : ""}` +
      `${r.card.nullClassSteps ? `; null class ${r.card.nullClassSteps} steps` : ""} | ` +
      `${median(r.cpuMs).toFixed(1)} | ${median(r.wallMs).toFixed(1)} | ` +
      `${(median(r.cpuMs) / base).toFixed(2)} | ${r.warmupCpuMs.toFixed(1)} |`
    ),
  ].join("\n");
}

if (import.meta.main) {
  const { values: a } = await runCli(() =>
    parseCli({
      args: Deno.args,
      options: {
        models: {
          type: "string",
          default: "fixtures/models/mnist-2026-11-30/model.json,fixtures/models/mnist/model.json",
        },
        warmup: { type: "string", default: "60" },
        requests: { type: "string", default: "20" },
        rounds: { type: "string", default: "5" },
        query: { type: "string", default: "" },
        markdown: { type: "string" },
      },
    }, {
      name: "bench_models",
      summary:
        "server CPU and wall ms per sample of models side by side, each at its card's defaults",
      usage: "deno task bench:models [options]",
    })
  );
  const o = {
    models: a.models!.split(","),
    warmup: Number(a.warmup),
    requests: Number(a.requests),
    rounds: Number(a.rounds),
    query: a.query!,
  };
  const rs = await benchModels(o);
  const md = markdown(await machineDescription(), rs, o);
  console.log(md);
  if (a.markdown) await Deno.writeTextFile(a.markdown, md + "\n");
}
