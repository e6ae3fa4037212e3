import assert from "node:assert/strict";
import {
  ConfigError,
  freshConfig,
  helpText,
  parseFlags,
  resumedConfig,
  unetConfig,
} from "./config.ts";

const base = ["--data", "mnist", "--steps", "100", "--out", "/tmp/run"];

Deno.test("fresh config: defaults, explicit flags, channel-mult list, --no-attention", () => {
  const c = freshConfig(
    parseFlags([
      ...base,
      "--channels",
      "16",
      "--channel-mult",
      "1,2",
      "--no-attention",
      "--lr",
      "1e-3",
    ]),
  );
  assert.equal(c.steps, 100);
  assert.equal(c.batch, 64);
  assert.equal(c.arch.imageSize, 28);
  assert.equal(c.arch.channels, 16);
  assert.deepEqual(c.arch.channelMult, [1, 2]);
  assert.equal(c.arch.attention, false);
  assert.equal(c.lr, 1e-3);
  assert.equal(c.schedule.kind, "linear");
  assert.deepEqual(unetConfig(c, 10).numClasses, 0);
  const cond = freshConfig(parseFlags([...base, "--conditional"]));
  assert.equal(unetConfig(cond, 10).numClasses, 10);
  // Folders default to 32 px.
  assert.equal(
    freshConfig(parseFlags(["--data", "/x", "--steps", "1", "--out", "o"])).arch.imageSize,
    32,
  );
});

Deno.test("bad flags give ConfigErrors naming the flag", () => {
  const bad = (args: string[], re: RegExp) =>
    assert.throws(
      () => freshConfig(parseFlags(args)),
      (e: Error) => e instanceof ConfigError && re.test(e.message),
    );
  bad([...base, "--bogus", "1"], /Unknown option '--bogus'/);
  bad([...base, "--batch", "x"], /--batch: expected an integer/);
  bad([...base, "--lr=-1"], /--lr:/);
  bad([...base, "--lr", "-1"], /--lr.*ambiguous/);
  bad([...base, "--backend", "gpu"], /--backend:/);
  bad([...base, "--threads", "3"], /--threads:/);
  bad([...base, "--channel-mult", "1,a"], /--channel-mult: expected comma-separated integers/);
  bad(["--data", "mnist", "--out", "o"], /--steps is required/);
  bad(
    [...base, "--channel-mult", "1,2,2,2"],
    /--image-size: 28 must be divisible by 2\^\(levels−1\) = 8/,
  );
  bad([...base, "--channels", "12", "--groups", "8"], /--groups/);
  bad([...base, "--schedule", "sqrt"], /--schedule:/);
});

Deno.test("resume: run-control flags override, architecture flags must match", () => {
  const stored = freshConfig(parseFlags([...base, "--channels", "16", "--seed", "3"]));
  const r = resumedConfig(
    parseFlags([
      "--resume",
      "--out",
      "/tmp/run",
      "--steps",
      "500",
      "--lr",
      "1e-4",
      "--channels",
      "16",
    ]),
    stored,
  );
  assert.equal(r.steps, 500);
  assert.equal(r.lr, 1e-4);
  assert.equal(r.arch.channels, 16);
  assert.equal(r.seed, 3);
  assert.throws(
    () =>
      resumedConfig(
        parseFlags(["--resume", "--out", "/tmp/run", "--channels", "32", "--conditional"]),
        stored,
      ),
    (e: Error) =>
      e instanceof ConfigError &&
      /--channels 32 conflicts with the checkpoint \(16\)/.test(e.message) &&
      /--conditional true conflicts/.test(e.message),
  );
  assert.ok(parseFlags(["--resume"]).resume);
});

Deno.test("help lists every flag of the CLI contract", () => {
  const h = helpText();
  for (
    const f of [
      "--data",
      "--steps",
      "--batch",
      "--channels",
      "--out",
      "--resume",
      "--backend",
      "--threads",
      "--conditional",
      "--seed",
      "--lr",
      "--warmup",
      "--ema",
      "--schedule",
      "--T",
      "--channel-mult",
      "--res-blocks",
      "--attention",
      "--groups",
      "--checkpoint-every",
      "--sample-every",
      "--log-every",
      "--image-size",
      "--grad-clip",
      "--cond-drop",
    ]
  ) {
    assert.ok(h.includes(f), f);
  }
});

Deno.test("configs stored before a flag existed still resume (defaults fill in)", () => {
  const stored = freshConfig(parseFlags(base)) as Record<string, unknown>;
  delete stored.sampleGuidance;
  const r = resumedConfig(
    parseFlags(["--resume", "--out", "/tmp/run", "--sample-guidance", "3"]),
    stored as never,
  );
  assert.equal(r.sampleGuidance, 3);
  assert.equal(
    resumedConfig(parseFlags(["--resume", "--out", "/tmp/run"]), stored as never).sampleGuidance,
    1,
  );
});
