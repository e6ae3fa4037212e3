/**
 * Null-class autoguidance in the trainer: the null-class rows of a batch (all rows of an
 * unconditional one) get ε_bad + w·(ε_good − ε_bad) and the others keep their target; a good
 * model guided by itself is the identity; through the CLI a run takes the pair (of different
 * architectures), records both sha256s, refuses a changed one or half a pair, and the card
 * names them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Rng } from "../../shared/rng.ts";
import { initBackend } from "../backends/backend.ts";
import type { BatchModel } from "../distill/math.ts";
import { autoguideTargets } from "./autoguide.ts";
import { runCli, TINY_MNIST_FLAGS, TRAIN_CLI, WASM_ONE_THREAD } from "../training/cli_testing.ts";
import { readCheckpoint } from "../training/checkpoint.ts";
import { loadModel } from "../../edge/model.ts";

await initBackend({ backend: "wasm", threads: 1 });

/** A model whose output depends on x, t and the label: x·(1 + label) + t/1000 + bias. */
const affine = (bias: number): BatchModel => (x, t, y) => {
  const px = x.length / t.length;
  return Promise.resolve(
    x.map((v, j) => {
      const i = Math.floor(j / px);
      return v * (1 + (y ? y[i] : 0)) + t[i] / 1000 + bias;
    }),
  );
};

Deno.test("autoguideTargets: null-class rows get ε_bad + w·(ε_good − ε_bad), the others keep theirs", async () => {
  const px = 4, n = 3, nullLabel = 3;
  const xt = new Rng(2).fillNormal(new Float32Array(n * px));
  const b = { xt, t: Float32Array.of(900, 500, 10), y: Int32Array.of(1, 3, 3) };
  const target = Float32Array.from({ length: n * px }, (_, j) => 100 + j);
  const calls: number[] = [];
  const counted = (m: BatchModel): BatchModel => (x, t, y) => {
    calls.push(t.length);
    assert.ok(y!.every((v) => v === nullLabel), "the pair runs at the null class");
    return m(x, t, y);
  };
  const w = 2.5;
  const got = await autoguideTargets(counted(affine(1)), counted(affine(0)), w, nullLabel)(
    b,
    target,
  );
  assert.deepEqual(calls, [2, 2], "one call of each model, on the two null rows only");
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < px; j++) {
      const k = i * px + j;
      const base = xt[k] * (1 + nullLabel) + b.t[i] / 1000;
      // bad = base, good = base + 1: the extrapolation adds w.
      const want = b.y[i] === nullLabel ? base + w : target[k];
      assert.ok(Math.abs(got[k] - want) < 1e-5, `row ${i} value ${j}: ${got[k]} vs ${want}`);
    }
  }
  assert.equal(target[4], 104, "the input target is not modified");
  // An unconditional batch (y null): every row; a model guided by itself is itself.
  const all = await autoguideTargets(affine(1), affine(1), w, 0)({ ...b, y: null }, target);
  for (let k = 0; k < n * px; k++) {
    const want = xt[k] + b.t[Math.floor(k / px)] / 1000 + 1;
    assert.ok(Math.abs(all[k] - want) < 1e-5);
  }
  // No null rows: the target as it was, no calls.
  calls.length = 0;
  const none = await autoguideTargets(counted(affine(1)), counted(affine(0)), w, nullLabel)(
    { ...b, y: Int32Array.of(0, 1, 2) },
    target,
  );
  assert.deepEqual(Array.from(none), Array.from(target));
  assert.deepEqual(calls, []);
});

Deno.test("CLI: --autoguide-good/-bad train a run on the pair, record their sha256s, refuse a changed one; the card names them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "autoguide-test-" });
  try {
    const good = join(dir, "good"), bad = join(dir, "bad"), run = join(dir, "run");
    const tiny = [...TINY_MNIST_FLAGS, ...WASM_ONE_THREAD, "--conditional", "--sample-every", "0"];
    let r = await runCli(TRAIN_CLI, [...tiny, "--steps", "3", "--out", good]);
    assert.equal(r.code, 0, r.err);
    // The bad model may have another architecture (4 channels, one level).
    r = await runCli(TRAIN_CLI, [
      ...tiny,
      ...["--channels", "4", "--channel-mult", "1", "--steps", "1", "--out", bad],
    ]);
    assert.equal(r.code, 0, r.err);
    // Half a pair is refused.
    r = await runCli(TRAIN_CLI, [...tiny, "--steps", "1", "--out", run, "--autoguide-good", good]);
    assert.equal(r.code, 2);
    assert.match(r.err, /autoguidance needs both --autoguide-good and --autoguide-bad/);
    r = await runCli(TRAIN_CLI, [
      ...tiny,
      ...["--steps", "2", "--out", run, "--cond-drop", "0.5"],
      ...["--autoguide-good", good, "--autoguide-bad", bad, "--autoguide-weight", "3"],
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      /null-class autoguidance: dropped labels learn ε_bad \+ 3·\(ε_good − ε_bad\), good = .*good \(step 3, ema sha256 [0-9a-f]{12}…\), bad = .*bad \(step 1,/,
    );
    const cfg = (await readCheckpoint(run)).meta.config as Record<string, unknown>;
    assert.equal(cfg.autoguideWeight, 3);
    assert.match(String(cfg.autoguideGoodSha256), /^[0-9a-f]{64}$/);
    assert.match(String(cfg.autoguideBadSha256), /^[0-9a-f]{64}$/);
    assert.notEqual(cfg.autoguideGoodSha256, cfg.autoguideBadSha256);
    const model = join(dir, "model");
    const ex = await runCli(new URL("../export.ts", import.meta.url).pathname, [
      ...["--run", run, "--out", model, "--analytic-samples", "0", "--prior", "off"],
    ]);
    assert.equal(ex.code, 0, ex.err);
    assert.deepEqual((await loadModel(join(model, "model.json"))).card.training.autoguide, {
      good: { run: good, sha256: cfg.autoguideGoodSha256 },
      bad: { run: bad, sha256: cfg.autoguideBadSha256 },
      weight: 3,
    });
    // The bad run trains on: the run refuses to resume against its new weights.
    r = await runCli(TRAIN_CLI, ["--resume", "--out", bad, "--steps", "2"]);
    assert.equal(r.code, 0, r.err);
    r = await runCli(TRAIN_CLI, ["--resume", "--out", run, "--steps", "3"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--autoguide-bad .* has changed since this run recorded it/);
    // `none` for both goes back to the data's ε for dropped labels too.
    r = await runCli(TRAIN_CLI, [
      ...["--resume", "--out", run, "--steps", "3"],
      ...["--autoguide-good", "none", "--autoguide-bad", "none"],
    ]);
    assert.equal(r.code, 0, r.err);
    assert.doesNotMatch(r.out, /autoguidance/);
    const after = (await readCheckpoint(run)).meta.config as Record<string, unknown>;
    assert.equal(after.autoguideBadSha256, undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
