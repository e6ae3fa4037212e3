/**
 * The CLI as a user runs it (subprocesses of `deno run -A trainer/train.ts`): clear errors with
 * nothing created, resume equivalence through the checkpoint files, SIGINT and kill -9.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readCheckpoint } from "./checkpoint.ts";

const TRAIN = new URL("./train.ts", import.meta.url).pathname;
const TINY = [
  "--data",
  "mnist",
  "--limit",
  "64",
  "--batch",
  "8",
  "--channels",
  "8",
  "--groups",
  "4",
  "--channel-mult",
  "1,2",
  "--backend",
  "wasm",
  "--threads",
  "1",
  "--lr",
  "2e-3",
  "--warmup",
  "2",
  "--sample-every",
  "0",
  "--log-every",
  "1",
];

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TRAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

async function exists(p: string) {
  return await Deno.lstat(p).then(() => true, () => false);
}

/** Spawn the trainer and resolve once its stdout has printed `lines` step lines. */
async function spawnUntil(args: string[], lines: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TRAIN, ...args],
    stdout: "piped",
    stderr: "null",
  })
    .spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while ((text.match(/^step /gm)?.length ?? 0) < lines) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const rest = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += value;
    }
  })();
  return { child, rest };
}

Deno.test("bad --data: clear error, exit 2, no run dir created", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const out = join(tmp, "run");
    const a = await run(["--data", join(tmp, "nope"), "--steps", "5", "--out", out]);
    assert.equal(a.code, 2);
    assert.match(a.err, /not "mnist", "fashion" or an existing folder of PNG images/);
    assert.equal(await exists(out), false);
    const pngs = join(tmp, "pngs");
    await Deno.mkdir(pngs);
    await Deno.writeTextFile(join(pngs, "broken.png"), "hello");
    const b = await run(["--data", pngs, "--steps", "5", "--out", out]);
    assert.equal(b.code, 2);
    assert.match(b.err, /broken\.png: not a readable PNG/);
    assert.equal(await exists(out), false);
    const c = await run(["--data", "mnist", "--steps", "5", "--out", out, "--conditionl"]);
    assert.equal(c.code, 2);
    assert.match(c.err, /Unknown option '--conditionl'/);
    const d = await run(["--resume", "--steps", "5", "--out", out]);
    assert.equal(d.code, 2);
    assert.match(d.err, /has no checkpoint to resume from/);
    assert.equal(await exists(out), false);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("CLI: 6 steps + --resume to 12 == 12 straight (files bit-identical); conflicts rejected", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const a = join(tmp, "a"), b = join(tmp, "b");
    assert.equal((await run([...TINY, "--steps", "12", "--out", a])).code, 0);
    assert.equal((await run([...TINY, "--steps", "6", "--out", b])).code, 0);
    const again = await run([...TINY, "--steps", "6", "--out", b]);
    assert.equal(again.code, 2);
    assert.match(again.err, /already exists and is not empty: add --resume/);
    const conflict = await run(["--resume", "--steps", "12", "--out", b, "--channels", "16"]);
    assert.equal(conflict.code, 2);
    assert.match(conflict.err, /--channels 16 conflicts with the checkpoint \(8\)/);
    const r = await run(["--resume", "--steps", "12", "--out", b]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /resuming at step 6 → 12/);
    for (const f of ["params", "ema", "adam_m", "adam_v"]) {
      assert.deepEqual(
        await Deno.readFile(join(b, "checkpoint", `${f}.bin`)),
        await Deno.readFile(join(a, "checkpoint", `${f}.bin`)),
        f,
      );
    }
    const ma = await readCheckpoint(a), mb = await readCheckpoint(b);
    assert.equal(mb.meta.step, 12);
    assert.deepEqual(mb.meta.rng, ma.meta.rng);
    assert.equal(mb.meta.commands.length, 2);
    assert.match(mb.meta.command, /--resume/);
    const metrics = (await Deno.readTextFile(join(b, "metrics.jsonl"))).trim().split("\n").map((
      l,
    ) => JSON.parse(l));
    assert.deepEqual(metrics.map((m) => m.step), [...Array(12).keys()].map((i) => i + 1));
    for (const k of ["step", "loss", "img_per_s", "lr", "grad_norm", "elapsed"]) {
      assert.ok(k in metrics[0], k);
    }
    const done = await run(["--resume", "--steps", "12", "--out", b]);
    assert.equal(done.code, 0);
    assert.match(done.out, /nothing to do/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("SIGINT: finishes the step, checkpoints, exits 130; the checkpoint loads", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const out = join(tmp, "run");
    const { child, rest } = await spawnUntil([
      ...TINY,
      "--steps",
      "100000",
      "--checkpoint-every",
      "100000",
      "--out",
      out,
    ], 3);
    child.kill("SIGINT");
    const status = await child.status;
    const text = await rest;
    assert.equal(status.code, 130);
    const ck = await readCheckpoint(out);
    const lastLogged = Math.max(...[...text.matchAll(/^step (\d+)\//gm)].map((m) => Number(m[1])));
    assert.ok(ck.meta.step >= 3, `step ${ck.meta.step}`);
    assert.equal(ck.meta.step, lastLogged);
    assert.match(text, /SIGINT: checkpoint at step \d+ written/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("kill -9 at random moments leaves a loadable last-complete checkpoint", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const out = join(tmp, "run");
    let last = 0;
    for (let round = 0; round < 3; round++) {
      const args = [...TINY, "--steps", "100000", "--checkpoint-every", "1", "--out", out];
      const { child, rest } = await spawnUntil(round === 0 ? args : ["--resume", ...args], 1);
      await new Promise((r) => setTimeout(r, Math.random() * 1500));
      child.kill("SIGKILL");
      await child.status;
      await rest;
      const ck = await readCheckpoint(out);
      assert.ok(ck.meta.step >= last, `step ${ck.meta.step} after ${last}`);
      assert.equal(ck.params.size, ck.ema.size);
      last = ck.meta.step;
    }
    assert.ok(last > 0);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
