/**
 * The distiller: a few updates on a tiny teacher make the student's one DDIM step closer to the
 * teacher's two than the teacher's own one step; the CLI resumes bit-exactly across a round
 * boundary; the exported student card loads and serves at its defaults.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { makeSchedule } from "../shared/schedule.ts";
import { Rng } from "../shared/rng.ts";
import { SAMPLERS } from "../shared/samplers/mod.ts";
import { initBackend } from "./backends/backend.ts";
import { BatchSampler, type Dataset } from "./data/datasets.ts";
import { disposeState, freshState, saveState, trainStep } from "./training/loop.ts";
import { cardChain, generate } from "../edge/sampler.ts";
import type { Engine } from "../edge/engine.ts";
import type { Spacing } from "../shared/schedule.ts";
import { tinyUNet } from "./export/test_models.ts";
import {
  DISTILL_CLI,
  runCli,
  TINY_MNIST_FLAGS,
  TRAIN_CLI,
  WASM_ONE_THREAD,
} from "./training/cli_testing.ts";
import { CHECKPOINT_FILES, readCheckpoint } from "./training/checkpoint.ts";
import { ddimSettings, distillTargets, roundGrid } from "./distill/math.ts";
import {
  distillStep,
  drawDistillBatch,
  guidedBatchModel,
  studentFrom,
  tfjsBatchModel,
} from "./distill/step.ts";
import { loadModel, sha256Hex } from "../edge/model.ts";
import { createEngine } from "../edge/engine.ts";
import { createApp } from "../edge/app.ts";

await initBackend({ backend: "wasm", threads: 1 });

/** Seeded smooth 8×8 'images' in [−1, 1]: blobs at random places. */
function blobs(count: number, seed: number): Dataset {
  const rng = new Rng(seed), S = 8;
  const images = new Float32Array(count * S * S);
  for (let i = 0; i < count; i++) {
    const cx = 1 + 6 * rng.uniform(), cy = 1 + 6 * rng.uniform(), r = 1 + 2 * rng.uniform();
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        images[i * S * S + y * S + x] = 2 * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / r ** 2) - 1;
      }
    }
  }
  return {
    name: "blobs",
    images,
    labels: null,
    labelNames: null,
    count,
    imageSize: S,
    channels: 1,
  };
}

Deno.test("a few distillation updates: lower loss, and one student step ≈ two teacher steps", async () => {
  const unet = tinyUNet(), base = makeSchedule("cosine", 1000), M = 4;
  // A briefly trained tiny teacher (a random one clips nearly every x̂₀, which no student
  // step can track smoothly).
  const data = blobs(64, 3), held = blobs(32, 99);
  const pre = freshState(unet, 5, data.count);
  const topt = { lr: 3e-3, warmup: 10, ema: 0, gradClip: 1, condDrop: 0 };
  for (let i = 0; i < 150; i++) await trainStep(pre, data, base, unet, 16, topt);
  const teacherW = (await saveState(pre)).params;
  disposeState(pre);
  const teacherVars: Record<string, tf.Tensor> = {};
  const st = studentFrom(unet, teacherW, new BatchSampler(64, 1), new Rng(2));
  for (const [k, v] of teacherW) {
    teacherVars[k] = tf.tensor(v, st.params[k].shape);
  }
  const teacher = tfjsBatchModel(teacherVars, unet);
  const grid = roundGrid(base, M, "epsilon");
  // A held-out batch (other images, other noise) at both student steps.
  const heldSt = studentFrom(unet, teacherW, new BatchSampler(32, 7), new Rng(8));
  const hb = drawDistillBatch(heldSt, held, base, grid, 32, unet, 0);
  disposeState(heldSt);
  const { target, xs } = await distillTargets(base, grid, teacher, hb.xt, hb.k, null, "epsilon");
  const plan = SAMPLERS.ddim.plan(base, ddimSettings(M, "epsilon"));
  const px = 64;
  /** One DDIM step of `model` from each held-out x_t; its squared distance to the teacher's two. */
  const oneStepGap = async (params: Record<string, tf.Tensor> | null) => {
    const out = params === null
      ? target
      : (await tfjsBatchModel(params, unet)(hb.xt, hb.t, null)) as Float32Array;
    const x = hb.xt.slice();
    let gap = 0, loss = 0;
    for (let i = 0; i < hb.k.length; i++) {
      const a = i * px, b = a + px;
      plan.step(plan.init(px), x.subarray(a, b), out.subarray(a, b), hb.k[i], null);
    }
    let count = 0;
    for (let j = 0; j < x.length; j++) {
      // the loss as trained: ε' of the clipped x̂₀ (distill/step.ts clippedOutput) vs the target
      const t = hb.t[Math.floor(j / px)];
      const a = base.sqrtAlphasCumprod[t], sg = base.sqrtOneMinusAlphasCumprod[t];
      const x0 = Math.min(1, Math.max(-1, (hb.xt[j] - sg * out[j]) / a));
      loss += ((hb.xt[j] - a * x0) / sg - target[j]) ** 2;
      // The first call (t = T−1, α = 4.9e-5) is left out of the gap: there an ε-model's
      // x̂₀ = (x − σ·ε̂)/α amplifies ε̂ by 2·10⁴ and is clipped nearly everywhere, teacher's and
      // student's alike (QUALITY.md, "Distillation"), so no ε-loss can steer that step.
      if (hb.k[Math.floor(j / px)] === 0) continue;
      gap += (x[j] - xs[j]) ** 2;
      count++;
    }
    return { gap: gap / count, loss: loss / x.length };
  };
  const before = await oneStepGap(teacherVars);
  assert.ok((await oneStepGap(null)).gap < 1e-9); // the targets themselves land on x_s
  const opt = {
    lr: 5e-4,
    warmup: 0,
    ema: 0.9,
    gradClip: 0,
    condDrop: 0,
    prediction: "epsilon" as const,
  };
  const losses: number[] = [];
  for (let i = 0; i < 40; i++) {
    losses.push((await distillStep(st, data, base, grid, teacher, unet, 16, opt)).loss);
  }
  const after = await oneStepGap(st.params);
  const mean = (v: number[]) => v.reduce((p, q) => p + q, 0) / v.length;
  assert.ok(mean(losses.slice(-10)) < mean(losses.slice(0, 10)), `${losses}`);
  assert.ok(after.loss < 0.8 * before.loss, `held-out loss ${before.loss} → ${after.loss}`);
  assert.ok(after.gap < 0.8 * before.gap, `one-step gap ${before.gap} → ${after.gap}`);
  disposeState(st);
  Object.values(teacherVars).forEach((v) => v.dispose());
});

/** A CLI's exit code and its stdout and stderr together. */
async function run(script: string, args: string[]) {
  const r = await runCli(script, args);
  return { code: r.code, out: r.out + r.err };
}

async function tensorBytes(ckDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of CHECKPOINT_FILES) {
    out.push(await sha256Hex(await Deno.readFile(join(ckDir, "checkpoint", `${f}.bin`))));
  }
  return out;
}

Deno.test("CLI: distill 2 rounds straight == --stop-at 2, resume --stop-at 3 (a round's end), resume; export serves", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distill-test-" });
  try {
    const teacher = join(dir, "teacher");
    const t = await run(TRAIN_CLI, [
      ...TINY_MNIST_FLAGS,
      ...WASM_ONE_THREAD,
      "--steps",
      "4",
      "--sample-every",
      "0",
      "--out",
      teacher,
    ]);
    assert.equal(t.code, 0, t.out);
    const common = [
      "--teacher",
      teacher,
      "--start-steps",
      "4",
      "--rounds",
      "2",
      "--steps-per-round",
      "3",
      "--batch",
      "4",
      "--lr",
      "1e-3",
      "--warmup",
      "1",
      "--checkpoint-every",
      "2",
      "--log-every",
      "1",
      "--sample-count",
      "4",
      "--limit",
      "32",
    ];
    const a = join(dir, "a"), b = join(dir, "b");
    const ra = await run(DISTILL_CLI, [...common, "--out", a]);
    assert.equal(ra.code, 0, ra.out);
    let r = await run(DISTILL_CLI, [...common, "--out", b, "--stop-at", "2"]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /--stop-at 2/);
    r = await run(DISTILL_CLI, ["--resume", "--out", b, "--stop-at", "3"]);
    assert.equal(r.code, 0, r.out);
    assert.equal((await readCheckpoint(b)).meta.step, 3);
    // a flag that would change the result is refused on resume
    const bad = await run(DISTILL_CLI, ["--resume", "--out", b, "--lr", "1"]);
    assert.equal(bad.code, 2);
    assert.match(bad.out, /--lr/);
    // a malformed --stop-at is refused before anything runs
    const badStop = await run(DISTILL_CLI, ["--resume", "--out", b, "--stop-at", "soon"]);
    assert.equal(badStop.code, 2, badStop.out);
    assert.match(badStop.out, /--stop-at must be a number, got "soon"/);
    assert.equal((await readCheckpoint(b)).meta.step, 3);
    r = await run(DISTILL_CLI, ["--resume", "--out", b]);
    assert.equal(r.code, 0, r.out);
    for (const sub of ["", "round-0", "round-1"]) {
      assert.deepEqual(await tensorBytes(join(b, sub)), await tensorBytes(join(a, sub)), sub);
    }
    const ma = (await readCheckpoint(a)).meta, mb = (await readCheckpoint(b)).meta;
    assert.deepEqual(mb.rng, ma.rng);
    assert.deepEqual(mb.distill, ma.distill);
    assert.equal(mb.commands.length, 3); // the refused --resume wrote nothing
    const metric = async (d: string) =>
      (await Deno.readTextFile(join(d, "metrics.jsonl"))).trim().split("\n").map((l) => {
        const { step, round, loss, grad_norm } = JSON.parse(l);
        return { step, round, loss, grad_norm };
      });
    assert.deepEqual(await metric(b), await metric(a));
    const dm = ma.distill as {
      record: unknown[];
      studentSteps: number;
      teacher: { sha256: string };
    };
    assert.equal(dm.record.length, 2);
    assert.equal(dm.studentSteps, 1);
    assert.equal(
      dm.teacher.sha256,
      await sha256Hex(await Deno.readFile(join(teacher, "checkpoint", "ema.bin"))),
    );
    for (
      const f of [
        "round-0-2steps-step-000000-start",
        "round-0-2steps-step-000003-end",
        "round-1-1steps-step-000006-end",
      ]
    ) {
      assert.ok((await Deno.stat(join(a, "samples", `${f}.png`))).size > 0, f);
    }

    // Export: an ordinary card + int8 ONNX sampling with the student's chain by default.
    const model = join(dir, "model");
    const ex = await run(new URL("./export.ts", import.meta.url).pathname, [
      "--run",
      a,
      "--out",
      model,
      "--analytic-samples",
      "0",
    ]);
    assert.equal(ex.code, 0, ex.out);
    const m = await loadModel(join(model, "model.json"));
    assert.equal(m.card.onnx.quantization, "int8");
    assert.deepEqual(
      {
        sampler: m.card.sampling.sampler,
        eta: m.card.sampling.eta,
        spacing: m.card.sampling.spacing,
        steps: m.card.sampling.steps,
      },
      { sampler: "ddim", eta: 0, spacing: "power", steps: 1 },
    );
    const d = m.card.training.distillation!;
    assert.equal(d.teacher.sha256, dm.teacher.sha256);
    assert.equal(d.rounds, 2);
    assert.equal(d.record.length, 2);
    const engine = await createEngine(m, { backend: "wasm", threads: 1 });
    const app = createApp({ load: () => Promise.resolve(engine) });
    const res = await app.request("/generate?seed=3");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "image/png");
    await res.arrayBuffer();
    // A round's own checkpoint exports too (the 2-step student of round 0).
    const ex0 = await run(new URL("./export.ts", import.meta.url).pathname, [
      "--run",
      join(a, "round-0"),
      "--out",
      join(dir, "model0"),
      "--analytic-samples",
      "0",
    ]);
    assert.equal(ex0.code, 0, ex0.out);
    assert.equal((await loadModel(join(dir, "model0", "model.json"))).card.sampling.steps, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a guided teacher: ε̂_∅ + w·(ε̂_y − ε̂_∅) per labelled image, ε̂_∅ for dropped labels", async () => {
  const unet = tinyUNet({ numClasses: 3 }), px = 64, n = 3;
  const st = freshState(unet, 4, 8);
  const vars = st.params;
  const model = tfjsBatchModel(vars, unet);
  const x = new Rng(5).fillNormal(new Float32Array(n * px));
  const t = Float32Array.of(900, 400, 50), y = Int32Array.of(0, 3, 2);
  const got = await guidedBatchModel(model, 1.5, 3)(x, t, y);
  const one = async (i: number, label: number) =>
    await model(x.slice(i * px, (i + 1) * px), t.slice(i, i + 1), Int32Array.of(label));
  for (let i = 0; i < n; i++) {
    const u = await one(i, 3), c = await one(i, y[i]);
    for (let j = 0; j < px; j++) {
      const want = y[i] === 3 ? u[j] : u[j] + 1.5 * (c[j] - u[j]);
      assert.ok(Math.abs(got[i * px + j] - want) < 1e-4, `image ${i} value ${j}`);
    }
  }
  assert.equal(guidedBatchModel(model, 1, 3), model);
  disposeState(st);
});

Deno.test("CLI: --after-prior and --teacher-guidance: the card's chain is the student's calls then T−1, served with the prior step", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distill-prior-test-" });
  try {
    const teacher = join(dir, "teacher");
    const tiny = [...TINY_MNIST_FLAGS, ...WASM_ONE_THREAD, "--conditional", "--sample-every", "0"];
    const t = await run(TRAIN_CLI, [
      ...tiny,
      "--schedule",
      "cosine",
      "--steps",
      "3",
      "--out",
      teacher,
    ]);
    assert.equal(t.code, 0, t.out);
    const common = ["--teacher", teacher, "--start-steps", "4", "--rounds", "1"];
    const bad = await run(DISTILL_CLI, [
      ...common,
      "--out",
      join(dir, "x"),
      "--after-prior",
      "999",
    ]);
    assert.equal(bad.code, 2, bad.out);
    assert.match(bad.out, /--after-prior must be below T − 1 = 999, got 999/);
    // A linear schedule's t = T − 1 (√ᾱ 6.4e-3) is not the prior step's.
    const linear = join(dir, "linear");
    assert.equal((await run(TRAIN_CLI, [...tiny, "--steps", "1", "--out", linear])).code, 0);
    const lin = await run(DISTILL_CLI, [
      ...["--teacher", linear, "--out", join(dir, "y"), "--after-prior", "900"],
    ]);
    assert.equal(lin.code, 2, lin.out);
    assert.match(lin.out, /linear schedule has 0\.0063\d there/);
    const a = join(dir, "a");
    const r = await run(DISTILL_CLI, [
      ...common,
      "--steps-per-round",
      "2",
      "--batch",
      "4",
      "--limit",
      "32",
      "--sample-count",
      "4",
      "--after-prior",
      "900",
      "--teacher-guidance",
      "1.5",
      "--out",
      a,
    ]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /calls after a prior step to t=900, teacher guidance 1\.5/);
    const dm = (await readCheckpoint(a)).meta.distill as { grid: Record<string, unknown> };
    assert.deepEqual(dm.grid.student, [900, 623]);
    assert.equal(dm.grid.afterPrior, 900);
    const model = join(dir, "model");
    const noPrior = await run(new URL("./export.ts", import.meta.url).pathname, [
      ...["--run", a, "--out", join(dir, "np"), "--analytic-samples", "0", "--prior", "off"],
    ]);
    assert.notEqual(noPrior.code, 0);
    assert.match(noPrior.out, /needs it \(--prior on\)/);
    const ex = await run(new URL("./export.ts", import.meta.url).pathname, [
      ...["--run", a, "--out", model, "--analytic-samples", "0"],
    ]);
    assert.equal(ex.code, 0, ex.out);
    const m = await loadModel(join(model, "model.json"));
    const s = m.card.sampling;
    assert.deepEqual(
      { steps: s.steps, timesteps: s.timesteps, guidance: s.guidance, sampler: s.sampler },
      { steps: 3, timesteps: [623, 900, 999], guidance: 1, sampler: "ddim" },
    );
    assert.ok(s.prior, "the card carries the prior step's statistics");
    assert.equal(m.card.training.distillation!.afterPrior, 900);
    assert.equal(m.card.training.distillation!.teacherGuidance, 1.5);
    assert.deepEqual(cardChain(m.card, 3, "power"), [623, 900, 999]);
    assert.equal(cardChain(m.card, 3, "trailing"), undefined);
    assert.equal(cardChain(m.card, 4, "power"), undefined);
    const engine = await createEngine(m, { backend: "wasm", threads: 1 });
    const app = createApp({ load: () => Promise.resolve(engine) });
    const png = async (q: string) => {
      const res = await app.request(`/generate?seed=3&label=1${q}`);
      assert.equal(res.status, 200, q);
      return new Uint8Array(await res.arrayBuffer());
    };
    assert.ok((await png("")).length > 0);
    // The timesteps the UNet is called at: the card's chain below T−1 (T−1 is the prior's).
    const seen: number[] = [];
    const spy: Engine = {
      ...engine,
      epsModel: (...a: Parameters<Engine["epsModel"]>) => {
        const f = engine.epsModel(...a);
        return (x, t) => (seen.push(t), f(x, t));
      },
    };
    const calls = async (spacing?: Spacing) => {
      seen.length = 0;
      await generate(spy, { seed: 3, steps: 3, eta: 0, n: 1, label: 1, spacing });
      return [...seen];
    };
    assert.deepEqual(await calls(), [900, 623]);
    assert.deepEqual(await calls("power"), [900, 623]);
    assert.deepEqual(await calls("trailing"), [666, 332]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
