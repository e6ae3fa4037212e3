/** Tests of the soak harness: its verdict, its /proc readers, its request mix, and a short run. */
import assert from "node:assert/strict";
import { createApp } from "../edge/app.ts";
import { createEngine } from "../edge/engine.ts";
import { loadModel } from "../edge/model.ts";
import { writeTinyModel } from "../edge/testing.ts";
import { percentile } from "./event_loop_probe.ts";
import {
  type Bounds,
  concurrentLoad,
  parseStatus,
  processTree,
  requestMix,
  runWrk,
  type SoakResult,
  violations,
  wrkScript,
} from "./soak.ts";
import { missingTool } from "./system_tool.ts";

const bounds: Bounds = { maxRssMb: 512, maxStallMs: 1000 };

function passing(): SoakResult {
  return {
    wrk: {
      requests: 1000,
      durationUs: 60e6,
      bytes: 1e6,
      errors: { connect: 0, read: 0, write: 0, timeout: 0 },
      latencyUs: { mean: 1e5, max: 9e5, p50: 8e4, p90: 2e5, p99: 5e5 },
      statuses: { "200": 700, "503": 300 },
      missingRetryAfter: 0,
    },
    memory: { rssMb: 300, hwmMb: 320, processes: 1 },
    probe: { count: 1200, failures: 0, maxMs: 120, p50Ms: 3, p99Ms: 80, maxAtS: 12 },
    aliveAfter: true,
  };
}

Deno.test("violations: a clean soak passes; every broken bound is named", () => {
  assert.deepEqual(violations(passing(), bounds), []);
  const cases: [(r: SoakResult) => void, RegExp][] = [
    [(r) => r.wrk.statuses["500"] = 2, /2 responses with status 500/],
    [(r) => r.wrk.statuses["400"] = 1, /status 400/],
    [(r) => r.wrk.missingRetryAfter = 3, /3 responses 503 without a numeric Retry-After/],
    [(r) => r.wrk.errors.timeout = 1, /timed out/],
    [(r) => r.wrk.errors.connect = 4, /4 connect errors/],
    [(r) => r.memory.hwmMb = 600, /peak RSS 600 MB > 512 MB/],
    [(r) => r.memory.rssMb = 513, /peak RSS 513 MB/],
    [(r) => r.probe.maxMs = 1500, /event-loop stall 1500 ms > 1000 ms/],
    [(r) => (r.probe.failures = 1, r.probe.firstFailure = "status 503"), /probes failed.*503/],
    [(r) => r.aliveAfter = false, /not alive/],
    [(r) => (r.wrk.requests = 0, r.wrk.statuses = {}), /no requests/],
  ];
  for (const [breakIt, message] of cases) {
    const r = passing();
    breakIt(r);
    const v = violations(r, bounds);
    assert.equal(v.length, 1, JSON.stringify(v));
    assert.match(v[0], message);
  }
});

Deno.test("parseStatus reads VmRSS and VmHWM; processTree finds a child process", async () => {
  const text = "Name:\tdeno\nVmPeak:\t  999 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
  assert.deepEqual(parseStatus(text), { rssKb: 102400, hwmKb: 204800 });
  assert.ok(parseStatus(Deno.readTextFileSync("/proc/self/status")).rssKb > 0);
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    const tree = processTree(Deno.pid);
    assert.equal(tree[0], Deno.pid);
    assert.ok(tree.includes(child.pid), `${child.pid} not in ${tree}`);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
});

Deno.test("concurrentLoad lists other busy processes, busiest first", () => {
  const p = (ticks: number, cmd: string) => ({ ticks, cmd });
  const before = new Map([[1, p(100, "a")], [
    2,
    p(0, "/usr/bin/deno run -A trainer/train.ts --x 1"),
  ]]);
  const after = new Map([
    [1, p(105, "a")], // 5 ticks in 1 s: 5%, below the 10% floor
    [2, p(80, "/usr/bin/deno run -A trainer/train.ts --x 1")],
    [3, p(150, "wrk -t 2")], // new since the first snapshot, but excluded
    [4, p(30, "sh -c x")], // new since the first snapshot
  ]);
  assert.deepEqual(concurrentLoad(before, after, 1, new Set([3])), [
    "deno run -A trainer/train.ts 80%",
    "sh -c x 30%",
  ]);
});

Deno.test("percentile is nearest-rank", () => {
  const a = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(a, 50), 50);
  assert.equal(percentile(a, 99), 99);
  assert.equal(percentile(a, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([], 50), 0);
});

Deno.test("every request of the mix is valid: 200 from the app on a tiny model", async () => {
  for (const numClasses of [3, 0]) {
    const model = await loadModel(await writeTinyModel({ numClasses, T: 50, steps: 3 }));
    const engine = await createEngine(model, { backend: "wasm", threads: 1 });
    const app = createApp({ load: () => Promise.resolve(engine) });
    const mix = requestMix(model.card);
    assert.equal(mix.some((m) => m.path.includes("label=")), numClasses > 0);
    for (const m of mix) {
      const r = await app.request(m.path.replace("{seed}", "4294967295"), { method: m.method });
      const body = await r.text();
      assert.equal(r.status, 200, `${m.method} ${m.path}: ${body}`);
    }
    const lua = wrkScript(mix);
    for (const m of mix) assert.ok(lua.includes(JSON.stringify(m.path)), m.path);
    const picks = lua.match(/^\s*\{"(GET|HEAD)", ".*"\},?$/gm) ?? [];
    assert.equal(picks.length, mix.reduce((a, m) => a + m.weight, 0));
  }
});

const noWrk = await missingTool("soak_test", "wrk", ["--version"], "apt-get install -y wrk");

Deno.test({
  name: "the wrk script counts statuses and flags 503s without a numeric Retry-After",
  ignore: noWrk !== null,
  fn: async () => {
    const sent = { ok: 0, busy: 0, bare: 0, words: 0 };
    const ac = new AbortController();
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
      (req) => {
        const kind = new URL(req.url).searchParams.get("k");
        if (kind === "busy") {
          return sent.busy++, new Response("", { status: 503, headers: { "Retry-After": "2" } });
        }
        if (kind === "bare") return sent.bare++, new Response("", { status: 503 });
        if (kind === "words") {
          return sent.words++,
            new Response("", { status: 503, headers: { "Retry-After": "soon" } });
        }
        return sent.ok++, new Response("ok");
      },
    );
    const script = await Deno.makeTempFile({ suffix: ".lua" });
    try {
      await Deno.writeTextFile(
        script,
        wrkScript(["ok", "busy", "bare", "words"].map((k) => ({
          weight: 1,
          method: "GET",
          path: `/x?k=${k}&seed={seed}`,
          what: k,
        }))),
      );
      const r = await runWrk({
        url: `http://127.0.0.1:${server.addr.port}`,
        script,
        threads: 1,
        connections: 2,
        duration: 1,
        timeoutS: 10,
      });
      // wrk may drop the answers in flight when it stops: counts are at most what was sent.
      const got200 = r.statuses["200"], got503 = r.statuses["503"];
      assert.ok(got200 > 0 && got200 <= sent.ok, `${got200} of ${sent.ok}`);
      assert.ok(got503 > 0 && got503 <= sent.busy + sent.bare + sent.words);
      assert.equal(r.requests, got200 + got503);
      assert.ok(r.missingRetryAfter > 0 && r.missingRetryAfter <= sent.bare + sent.words);
      assert.ok(r.missingRetryAfter < got503, "503s with Retry-After: 2 were flagged too");
      assert.ok(r.latencyUs.p50 > 0 && r.latencyUs.p99 >= r.latencyUs.p50);
    } finally {
      await Deno.remove(script);
      ac.abort();
      await server.finished;
    }
  },
});

Deno.test({
  name: "a short soak against the real server runs wrk and fails on a broken bound",
  ignore: noWrk !== null,
  fn: async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "scripts/soak.ts",
        "--tiny",
        "--duration",
        "2",
        "--connections",
        "4",
        "--no-write",
        "--max-rss-mb",
        "1",
      ],
      cwd: new URL("..", import.meta.url),
      env: { ORT_BACKEND: "wasm", ORT_THREADS: "1", MAX_QUEUE: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, stderr);
    // The only broken bound is the 1 MB RSS one: everything else held.
    assert.match(stderr, /soak: FAILED: peak RSS \d+ MB > 1 MB$/m);
    const requests = Number(/\| requests \| (\d+) in/.exec(stdout)?.[1]);
    assert.ok(requests > 0, stdout);
    assert.match(stdout, /\| statuses \| 200: \d+/);
    assert.match(stdout, /\| 503 without Retry-After \| 0 \|/);
    assert.match(stdout, /\| peak RSS of server tree .* \| [1-9]\d* MB/);
    assert.match(stdout, /\| max event-loop stall .* \| \d+ ms at .* 0 failed\) \|/);
    assert.match(stdout, /Machine: .*, \d+ cores; load average/);
  },
});
