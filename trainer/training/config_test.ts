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
      "--guide-teacher",
      "--autoguide-good",
      "--autoguide-bad",
      "--autoguide-weight",
    ]
  ) {
    assert.ok(h.includes(f), f);
  }
  // Every usage is followed by at least one space before its help, the longest included.
  for (const line of h.split("\n").filter((l) => l.startsWith("  --"))) {
    assert.match(line, /^ {2}--[\w-]+( <[^>]+>)? +[^\s<]/, line);
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

Deno.test("objective, lr schedule and lean-layout flags: defaults, values, resume rules", () => {
  const d = freshConfig(parseFlags(base));
  assert.equal(d.loss, "l2");
  assert.equal(d.prediction, "epsilon");
  assert.equal(d.lrSchedule, "constant");
  assert.equal(d.lrDecaySteps, 0);
  assert.equal(d.arch.spaceToDepth, undefined);
  assert.equal(d.arch.levelBlocks, undefined);
  assert.equal(d.arch.upsample, undefined);
  const c = freshConfig(parseFlags([
    ...base,
    "--loss",
    "l1",
    "--prediction",
    "v",
    "--lr-schedule",
    "cosine",
    "--lr-min",
    "1e-5",
    "--space-to-depth",
    "2",
    "--channel-mult",
    "1,2",
    "--level-blocks",
    "1,2",
    "--upsample",
    "conv-resize",
  ]));
  assert.equal(c.loss, "l1");
  assert.equal(c.prediction, "v");
  assert.equal(c.lrMin, 1e-5);
  // The decay horizon is fixed at the first command's --steps…
  assert.equal(c.lrDecaySteps, c.steps);
  assert.deepEqual(c.arch.levelBlocks, [1, 2]);
  assert.equal(c.arch.spaceToDepth, 2);
  assert.equal(c.arch.upsample, "conv-resize");
  // …so extending the run keeps it; the schedule and the loss may change on resume, the
  // prediction (what the weights mean) may not.
  const r = resumedConfig(parseFlags(["--resume", "--out", "/tmp/r", "--steps", "99999"]), c);
  assert.equal(r.lrDecaySteps, c.steps);
  assert.equal(
    resumedConfig(parseFlags(["--resume", "--out", "/tmp/r", "--loss", "l2"]), c).loss,
    "l2",
  );
  assert.throws(
    () => resumedConfig(parseFlags(["--resume", "--out", "/tmp/r", "--prediction", "x0"]), c),
    /--prediction x0 conflicts with the checkpoint \(v\)/,
  );
  assert.throws(
    () => resumedConfig(parseFlags(["--resume", "--out", "/tmp/r", "--space-to-depth", "1"]), c),
    /--space-to-depth 1 conflicts/,
  );
});

Deno.test("bad objective / layout flags name the flag", () => {
  const bad = (extra: string[], re: RegExp) =>
    assert.throws(() => freshConfig(parseFlags([...base, ...extra])), re);
  bad(["--loss", "huber"], /--loss/);
  bad(["--prediction", "score"], /--prediction/);
  bad(["--lr-schedule", "step"], /--lr-schedule/);
  bad(["--lr-schedule", "cosine", "--lr-min", "1"], /--lr-min: must be ≤ --lr/);
  bad(
    ["--space-to-depth", "3"],
    /--space-to-depth: imageSize 28 must be divisible by 3 × 2\^\(levels−1\) = 12/,
  );
  bad(["--level-blocks", "1,2"], /--level-blocks: needs one entry per level \(3/);
  bad(["--upsample", "pixel-shuffle"], /--upsample/);
});

Deno.test("a config stored before the objective flags resumes as l2 on ε, constant lr", () => {
  const stored = freshConfig(parseFlags(base)) as Record<string, unknown>;
  for (const k of ["loss", "prediction", "lrSchedule", "lrMin", "lrDecaySteps"]) delete stored[k];
  const r = resumedConfig(parseFlags(["--resume", "--out", "/tmp/run"]), stored as never);
  assert.equal(r.loss, "l2");
  assert.equal(r.prediction, "epsilon");
  assert.equal(r.lrSchedule, "constant");
  const cos = resumedConfig(
    parseFlags(["--resume", "--out", "/tmp/run", "--lr-schedule", "cosine"]),
    stored as never,
  );
  assert.equal(cos.lrDecaySteps, cos.steps);
});
