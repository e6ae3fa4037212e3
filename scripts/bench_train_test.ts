import assert from "node:assert/strict";
import { benchConfig, type BenchRow, markdownTable, profileTable } from "./bench_train.ts";
import { UNetConfigSchema } from "../shared/model_card.ts";
import { webgpuSkipReason } from "../trainer/backends/webgpu_testing.ts";

const noWebgpu = await webgpuSkipReason("bench_train_test");

Deno.test("benchConfig is a valid 3-level MNIST UNet config", () => {
  const cfg = UNetConfigSchema.parse(benchConfig(16));
  assert.equal(cfg.imageSize, 28);
  assert.deepEqual(cfg.channelMult, [1, 2, 2]);
});

Deno.test("benchConfig at the emoji shape: 32×32×3, 9 classes, the lean stem optional", () => {
  const shape = { imageSize: 32, inChannels: 3, numClasses: 9, spaceToDepth: 2 };
  const cfg = UNetConfigSchema.parse(benchConfig(32, shape));
  assert.equal(cfg.inChannels, 3);
  assert.equal(cfg.numClasses, 9);
  assert.equal(cfg.spaceToDepth, 2);
  assert.equal(benchConfig(32, { ...shape, spaceToDepth: 1 }).spaceToDepth, undefined);
});

Deno.test("markdownTable: one row per measurement, img per CPU-s = img/s ÷ own CPU", () => {
  const row: BenchRow = {
    c: 16,
    shape: "28×28×1",
    spaceToDepth: 1,
    batch: 64,
    threads: 1,
    backend: "wasm",
    params: 200433,
    fwdMflopPerImage: 70.2,
    msPerStep: 1000,
    imgPerSec: 64,
    ownCpu: 0.5,
    otherCpu: 1.5,
  };
  const lines = markdownTable([row, { ...row, threads: 2 }]).trim().split("\n");
  assert.equal(lines.length, 4);
  assert.equal(
    lines[2],
    "| 28×28×1 | 1 | 16 | 64 | 200,433 | 70 | wasm | 1 | 1000 | 64.0 | 128.0 | 0.50 | 1.50 |",
  );
  assert.equal(lines[0].split("|").length, lines[1].split("|").length);
});

Deno.test("bench_train end to end (tiny: c=8, batch 2, 1 step) prints a table row", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./bench_train.ts", import.meta.url).pathname,
      "--c",
      "8",
      "--batch",
      "2",
      "--threads",
      "1",
      "--steps",
      "1",
      "--warmup",
      "0",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const row = text.split("\n").find((l) => l.startsWith("| 28×28×1 | 1 | 8 | 2 |"));
  assert.ok(row, text);
  assert.match(row, /\| wasm \| 1 \|/);
});

Deno.test("bench_train end to end at the emoji shape (32×32×3, space-to-depth 2, tiny)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./bench_train.ts", import.meta.url).pathname,
      ...["--c", "8", "--batch", "2", "--threads", "1", "--steps", "1", "--warmup", "0"],
      ...["--size", "32", "--channels-in", "3", "--classes", "9", "--space-to-depth", "2"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(text, /ε-MSE, 32×32×3 \(space-to-depth 2\)/);
  assert.ok(text.split("\n").some((l) => l.startsWith("| 32×32×3 | 2 | 8 | 2 |")), text);
});

Deno.test("profileTable: shares of the kernel CPU total, largest first, top N", () => {
  const row = {
    c: 16,
    batch: 64,
    threads: 1,
    kernels: [{ name: "A", cpuMs: 30 }, { name: "B", cpuMs: 10 }, { name: "C", cpuMs: 10 }],
  } as BenchRow;
  const lines = profileTable(row, 2).trim().split("\n");
  assert.match(lines[0], /50 CPU ms per step/);
  assert.deepEqual(lines.slice(-2), ["| A | 30 | 60.0% |", "| B | 10 | 20.0% |"]);
});

Deno.test({
  name: "bench_train --backend webgpu (tiny) reports the backend and its adapter",
  ignore: noWebgpu !== null,
  fn: async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./bench_train.ts", import.meta.url).pathname,
        ...["--backend", "webgpu", "--c", "8", "--batch", "2", "--steps", "1", "--warmup", "0"],
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(text, /tfjs 4\.22 --backend webgpu,/);
    const rows = text.split("\n").filter((l) => l.startsWith("| 28×28×1 | 1 | 8 | 2 |"));
    assert.equal(rows.length, 1, text); // one row: --threads is for wasm only
    assert.match(rows[0], /\| webgpu on .+ \| 0 \|/);
  },
});
