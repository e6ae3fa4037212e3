/**
 * The objective, lr-schedule and lean-layout flags through the real CLI: recorded in the
 * checkpoint, resumed bit-identically, and carried into the exported card.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readCheckpoint } from "./training/checkpoint.ts";
import { main as exportMain } from "./export.ts";
import { runCli, TINY_MNIST_FLAGS, TRAIN_CLI, WASM_ONE_THREAD } from "./training/cli_testing.ts";

const LEAN = [
  ...TINY_MNIST_FLAGS,
  "--conditional",
  "--space-to-depth",
  "2",
  "--level-blocks",
  "1,2",
  "--upsample",
  "conv-resize",
  "--prediction",
  "v",
  "--loss",
  "l1",
  "--lr-schedule",
  "cosine",
  "--lr-min",
  "1e-4",
  "--lr-decay-steps",
  "8",
  "--warmup",
  "2",
  "--lr",
  "2e-3",
  ...WASM_ONE_THREAD,
  "--sample-every",
  "0",
  "--log-every",
  "1",
];

const run = (args: string[]) => runCli(TRAIN_CLI, args);

Deno.test("lean layout + v + l1 + cosine lr: 4 + --resume to 8 == 8 straight; meta and card say so", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const a = join(tmp, "a"), b = join(tmp, "b");
    assert.equal((await run([...LEAN, "--steps", "8", "--out", a])).code, 0);
    const first = await run([...LEAN, "--steps", "4", "--out", b]);
    assert.equal(first.code, 0, first.err);
    assert.match(
      first.out,
      /objective l1 on v; lr 0.002 \(cosine, warm-up 2, to 0.0001 at step 8\)/,
    );
    const r = await run(["--resume", "--steps", "8", "--out", b]);
    assert.equal(r.code, 0, r.err);
    for (const f of ["params", "ema", "adam_m", "adam_v"]) {
      assert.deepEqual(
        await Deno.readFile(join(b, "checkpoint", `${f}.bin`)),
        await Deno.readFile(join(a, "checkpoint", `${f}.bin`)),
        f,
      );
    }
    const lrs = (await Deno.readTextFile(join(b, "metrics.jsonl"))).trim().split("\n")
      .map((l) => JSON.parse(l).lr);
    assert.equal(lrs[1], 2e-3);
    assert.equal(lrs[7], 1e-4);
    const { meta } = await readCheckpoint(b);
    assert.equal(meta.prediction, "v");
    assert.equal(meta.loss, "l1");
    assert.deepEqual(meta.lrSchedule, {
      kind: "cosine",
      lr: 2e-3,
      warmup: 2,
      min: 1e-4,
      decaySteps: 8,
    });
    assert.equal(meta.unet.spaceToDepth, 2);
    assert.deepEqual(meta.unet.levelBlocks, [1, 2]);
    assert.equal(meta.unet.upsample, "conv-resize");

    const { card } = await exportMain([
      "--run",
      b,
      "--out",
      join(tmp, "model"),
      "--analytic-samples",
      "0",
    ]);
    assert.equal(card.prediction, "v");
    assert.equal(card.training.loss, "l1");
    assert.equal(card.training.condDrop, 0.1);
    assert.equal(card.training.lrSchedule?.kind, "cosine");
    assert.equal(card.architecture.spaceToDepth, 2);
    // The data prior of the t = T − 1 call (shared/data_prior.ts), on by default.
    assert.equal(card.sampling.prior?.classes, 10);
    assert.equal(card.sampling.prior?.size, 784);
    assert.match(card.sampling.prior!.data, /^mnist train split \(64 images\)$/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
