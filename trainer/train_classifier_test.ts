/**
 * `deno task train-classifier` / `export-classifier` as a user runs them (subprocesses): one-line
 * errors for bad flags, a tiny MNIST run resumed bit-identically, the metrics and accuracy files,
 * and the export beside a copy of the shipped card.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ModelCardSchema } from "../shared/model_card.ts";
import { CLASSIFIER_CLI as CLI, runCli, TINY_MNIST_DATA } from "./training/cli_testing.ts";

const SHIPPED_CARD = new URL("../fixtures/models/mnist/model.json", import.meta.url).pathname;
const TINY = [
  ...TINY_MNIST_DATA,
  "--channels",
  "4",
  "--channel-mult",
  "1,2",
  "--groups",
  "2",
  "--schedule",
  "cosine",
  "--backend",
  "wasm",
  "--eval-images",
  "20",
  "--eval-buckets",
  "2",
  "--eval-every",
  "0",
  "--log-every",
  "2",
];

Deno.test("train-classifier: a bad flag is one line on stderr and exit 2", async () => {
  for (const args of [["--steps", "x"], ["--nope"], ["--channel-mult", "1,a"]]) {
    const r = await runCli(CLI, [
      "--data",
      "mnist",
      "--out",
      "/tmp/never",
      "--steps",
      "1",
      ...args,
    ]);
    assert.equal(r.code, 2, r.err);
    assert.equal(r.err.trim().split("\n").length, 1, r.err);
    assert.match(r.err, /^error: (--|Unknown option '--nope')/);
  }
  const r = await runCli(CLI, [
    "--data",
    "mnist",
    "--steps",
    "1",
    "--out",
    "/tmp/none",
    "--resume",
  ]);
  assert.equal(r.code, 2);
  assert.match(r.err, /^error: --resume: \/tmp\/none has no classifier checkpoint/);
});

Deno.test("train-classifier: 6 steps = 3 + resume 3, bit for bit; metrics, accuracy by t; export beside a card", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cls-cli-" });
  try {
    const a = join(dir, "a"), b = join(dir, "b");
    const full = await runCli(CLI, [...TINY, "--steps", "6", "--out", a]);
    assert.equal(full.code, 0, full.err);
    assert.match(full.out, /held-out accuracy \(EMA\) at step 6: t 0–499 .* · t 500–999 /);
    assert.equal((await runCli(CLI, [...TINY, "--steps", "3", "--out", b])).code, 0);
    const resumed = await runCli(CLI, ["--resume", "--out", b, "--steps", "6"]);
    assert.equal(resumed.code, 0, resumed.err);
    assert.match(resumed.out, /resuming at step 3 → 6/);
    for (const f of ["params", "ema", "adam_m", "adam_v"]) {
      assert.deepEqual(
        await Deno.readFile(join(b, "checkpoint", `${f}.bin`)),
        await Deno.readFile(join(a, "checkpoint", `${f}.bin`)),
        f,
      );
    }
    const lines = (await Deno.readTextFile(join(a, "metrics.jsonl"))).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(lines.filter((l) => "loss" in l).map((l) => l.step), [2, 4, 6]);
    assert.ok(lines.every((l) => "heldout" in l || Number.isFinite(l.train_accuracy)));
    const acc = JSON.parse(await Deno.readTextFile(join(a, "accuracy.json")));
    assert.deepEqual(acc.buckets.map((x: { from: number; to: number }) => [x.from, x.to]), [
      [0, 499],
      [500, 999],
    ]);
    // A changed model on resume is refused.
    const clash = await runCli(CLI, ["--resume", "--out", b, "--steps", "9", "--channels", "8"]);
    assert.equal(clash.code, 2);
    assert.match(clash.err, /^error: --channels 8 conflicts with the checkpoint \(4\)/);

    // Export beside a copy of the shipped card (cosine, T = 1000, 28×28×1, digits).
    const model = join(dir, "model");
    await Deno.mkdir(model);
    const card = JSON.parse(await Deno.readTextFile(SHIPPED_CARD));
    delete card.classifier;
    await Deno.writeTextFile(join(model, "model.json"), JSON.stringify(card, null, 2) + "\n");
    const ex = await runCli(CLI, [
      "export",
      "--run",
      a,
      "--card",
      join(model, "model.json"),
      "--scale",
      "2",
      "--steps",
      "20",
      "--sampler",
      "ddpm",
      "--high-noise",
      "850:0.375",
    ]);
    assert.equal(ex.code, 0, ex.err);
    const written = ModelCardSchema.parse(
      JSON.parse(await Deno.readTextFile(join(model, "model.json"))),
    );
    assert.equal(written.classifier?.file, "classifier.onnx");
    assert.equal(written.classifier?.scale, 2);
    assert.equal(written.classifier?.steps, 20);
    assert.equal(written.classifier?.sampler, "ddpm");
    assert.deepEqual(written.classifier?.highNoise, { above: 850, factor: 0.375 });
    assert.equal((written.classifier?.training as { steps: number }).steps, 6);
    const onnx = await Deno.readFile(join(model, "classifier.onnx"));
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", onnx));
    assert.equal(
      written.classifier?.sha256,
      Array.from(digest, (x) => x.toString(16).padStart(2, "0")).join(""),
    );
    // A card with another schedule is refused in one line.
    await Deno.writeTextFile(
      join(model, "model.json"),
      JSON.stringify({ ...card, schedule: { kind: "cosine", T: 500 } }, null, 2) + "\n",
    );
    const bad = await runCli(CLI, ["export", "--run", a, "--card", join(model, "model.json")]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.err,
      /^error: the card's schedule \(cosine, T = 500\) is not the classifier's/,
    );
    const badScale = await runCli(CLI, ["export", "--run", a, "--card", "x", "--scale=-1"]);
    assert.match(badScale.err, /^error: --scale: expected a number ≥ 0, got "-1"\n$/);
    const badSteps = await runCli(CLI, ["export", "--run", a, "--card", "x", "--steps=2.5"]);
    assert.match(badSteps.err, /^error: --steps: expected an integer ≥ 1, got "2.5"\n$/);
    const badSampler = await runCli(CLI, ["export", "--run", a, "--card", "x", "--sampler=euler"]);
    assert.match(badSampler.err, /^error: --sampler: expected one of ddpm, .*, got "euler"\n$/);
    for (const v of ["850", "850:-1", "x:0.5", "850:0.5:1"]) {
      const badHigh = await runCli(CLI, ["export", "--run", a, "--card", "x", `--high-noise=${v}`]);
      assert.equal(badHigh.code, 2, v);
      assert.match(badHigh.err, /^error: --high-noise: expected ABOVE:FACTOR, .*\n$/, v);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
