import assert from "node:assert/strict";
import { join } from "node:path";
import { writeTinyModel } from "../edge/testing.ts";
import { loadModel } from "../edge/model.ts";
import {
  machineDescription,
  main,
  markdown,
  mergeRounds,
  runWorker,
  type WorkerResult,
} from "./bench_edge.ts";

const model = await writeTinyModel({ numClasses: 3, T: 50, guidance: 2 });

Deno.test("runWorker: ORT-web, the native edge engine and onnxruntime-node run real requests", async () => {
  for (const runtime of ["web1", "native1", "node1"] as const) {
    const r = await runWorker({
      runtime,
      model,
      steps: [2, 5],
      n: 2,
      reps: 1,
      forwardRuns: 2,
      warmupMs: 0,
      warmupRuns: 1,
    });
    assert.equal(r.runtime, runtime);
    assert.equal(r.batch, 4); // guidance 2 → [cond; uncond] in one run
    assert.deepEqual(r.results.map((s) => s.steps), [2, 5]);
    for (const s of r.results) {
      assert.ok(s.requestMs > 0 && s.cpuMsPerSample > 0);
      assert.equal(s.perStepMs, s.requestMs / s.steps);
    }
  }
});

Deno.test("markdown: one row per runtime and S, ratio to native at the same thread count", async () => {
  const card = (await loadModel(model)).card;
  const mk = (runtime: WorkerResult["runtime"], perStep: number): WorkerResult => ({
    runtime,
    sessionMs: 100,
    forwardMs: perStep / 2,
    batch: 2,
    results: [{
      steps: 10,
      reps: 1,
      requestMs: perStep * 10,
      perStepMs: perStep,
      cpuMsPerSample: 5,
    }],
  });
  const native = mk("native1", 4);
  native.results[0].cpuMsPerSample = 1;
  const md = markdown("test machine", card, { n: 1, guidance: 2 }, [
    mk("web1", 30),
    mk("web2", 20),
    native,
    mk("node1", 3),
    mk("node2", 4),
  ]);
  const rows = md.split("\n").filter((l) => l.startsWith("| onnx") || l.startsWith("| edge"));
  assert.equal(rows.length, 5);
  assert.match(rows[0], /\| 10\.0 \| 1\.0 \| – \|$/); // wall 30 / 3, CPU 5 / 5
  assert.match(rows[1], /\| 5\.0 \| 1\.0 \| – \|$/); // 20 / 4
  assert.match(rows[2], /^\| edge engine, backend native \| 1 \|.*\| 1\.3 \| 0\.2 \| 0\.20 \|$/);
  assert.match(rows[3], /\| – \| – \| 1\.00 \|$/);
  const merged = mergeRounds([mk("web1", 30), mk("web1", 10), mk("web1", 20)]);
  assert.equal(merged.results[0].perStepMs, 20);
  assert.equal(merged.forwardMs, 10);
  assert.match(md, /^Machine: test machine/);
  assert.match(await machineDescription(), /logical cores/);
});

Deno.test("bench:edge runs each runtime in its own process and writes the table", async () => {
  const dir = await Deno.makeTempDir();
  const out = join(dir, "bench.md");
  await main([
    "--model",
    model,
    "--steps",
    "2",
    "--reps",
    "1",
    "--runtimes",
    "web2,node1",
    "--rounds",
    "2",
    "--markdown",
    out,
  ]);
  const md = await Deno.readTextFile(out);
  const rows = md.split("\n").filter((l) => l.startsWith("| onnx"));
  assert.equal(rows.length, 2);
  assert.match(rows[0], /^\| onnxruntime-web wasm \| 2 \|/);
  assert.match(rows[1], /^\| onnxruntime-node \(native\) \| 1 \|/);
});
