import assert from "node:assert/strict";
import {
  classifierConfigOf,
  classifierHelpText,
  ConfigError,
  freshClassifierConfig,
  parseClassifierFlags,
  resumedClassifierConfig,
} from "./config.ts";

const BASE = ["--data", "mnist", "--steps", "100", "--out", "runs/x"];
const fresh = (...extra: string[]) =>
  freshClassifierConfig(parseClassifierFlags([...BASE, ...extra]));

Deno.test("freshClassifierConfig: defaults, the MNIST image size, the decay horizon from --steps", () => {
  const c = fresh();
  assert.equal(c.arch.imageSize, 28);
  assert.deepEqual(c.arch.channelMult, [1, 2, 4]);
  assert.deepEqual(c.schedule, { kind: "linear", T: 1000 });
  assert.equal(c.lrDecaySteps, 100);
  assert.equal(fresh("--data", "emoji").arch.inChannels, 3);
  assert.equal(fresh("--data", "emoji").arch.imageSize, 32);
  assert.deepEqual(classifierConfigOf(fresh("--schedule", "cosine"), 10), {
    imageSize: 28,
    inChannels: 1,
    channels: 8,
    channelMult: [1, 2, 4],
    numResBlocks: 1,
    groups: 4,
    numClasses: 10,
  });
});

Deno.test("bad flags: one line naming the flag", () => {
  const cases: [string[], RegExp][] = [
    [["--steps", "ten"], /^--steps: expected an integer, got "ten"$/],
    [["--lr=-1"], /^--lr: /],
    [["--lr", "-1"], /^Option '--lr' argument is ambiguous\. \(see --help\)$/],
    [["--channel-mult", "1,x"], /^--channel-mult: expected comma-separated integers/],
    [["--groups", "3"], /^--channels: every level's width .* divisible by groups 3$/],
    [["--schedule", "cosin"], /^--schedule: /],
    [["--eval-buckets", "20", "--T", "10"], /^--eval-buckets: must be ≤ --T 10$/],
    [["--bogus", "1"], /Unknown option '--bogus'.*\(see --help\)$/],
  ];
  for (const [extra, re] of cases) {
    assert.throws(() => fresh(...extra), (e: Error) => {
      assert.ok(e instanceof ConfigError, `${extra}: ${e}`);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
      return true;
    });
  }
  assert.throws(
    () => freshClassifierConfig(parseClassifierFlags(["--data", "mnist"])),
    /ConfigError: --steps is required \(see --help\)/,
  );
});

Deno.test("resumedClassifierConfig: run control may change, the model, schedule, data and seed may not", () => {
  const stored = fresh("--schedule", "cosine");
  const r = resumedClassifierConfig(
    parseClassifierFlags(["--out", "runs/x", "--steps", "300", "--batch", "32"]),
    stored,
  );
  assert.equal(r.steps, 300);
  assert.equal(r.batch, 32);
  assert.equal(r.lrDecaySteps, 100, "the decay horizon stays the first command's");
  assert.doesNotThrow(() =>
    resumedClassifierConfig(parseClassifierFlags(["--schedule", "cosine"]), stored)
  );
  assert.throws(
    () => resumedClassifierConfig(parseClassifierFlags(["--channels", "16", "--T", "500"]), stored),
    /--channels 16 conflicts with the checkpoint \(8\); --T 500 conflicts/,
  );
});

Deno.test("classifierHelpText: every flag and the export command", () => {
  const h = classifierHelpText();
  for (const f of ["--resume", "--data", "--schedule", "--eval-buckets", "export-classifier"]) {
    assert.ok(h.includes(f), f);
  }
});
