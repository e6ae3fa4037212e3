/**
 * Guidance distillation in the trainer: a student that is its own unguided teacher has loss 0 (the
 * targets are its own outputs, dropped labels included), a guided one does not; through the CLI a
 * forked run resumes with `--guide-teacher`, records the teacher's sha256, refuses a changed
 * teacher, and its card names the teacher.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { makeSchedule } from "../../shared/schedule.ts";
import { Rng } from "../../shared/rng.ts";
import { initBackend } from "../backends/backend.ts";
import type { Dataset } from "../data/datasets.ts";
import { disposeState, freshState, saveState, trainStep } from "../training/loop.ts";
import { tinyUNet } from "../export/test_models.ts";
import { tfjsBatchModel } from "../distill/step.ts";
import { guideTargets } from "./guide_teacher.ts";
import { runCli, TINY_MNIST_FLAGS, TRAIN_CLI, WASM_ONE_THREAD } from "../training/cli_testing.ts";
import { readCheckpoint } from "../training/checkpoint.ts";
import { loadModel } from "../../edge/model.ts";

await initBackend({ backend: "wasm", threads: 1 });

/** Seeded 8×8 images in [−1, 1] with labels 0…2. */
function labelled(count: number): Dataset {
  const rng = new Rng(1);
  const images = Float32Array.from({ length: count * 64 }, () => 2 * rng.uniform() - 1);
  return {
    name: "noise",
    images,
    labels: Int32Array.from({ length: count }, (_, i) => i % 3),
    labelNames: ["a", "b", "c"],
    count,
    imageSize: 8,
    channels: 1,
  };
}

Deno.test("a student that is its own unguided teacher has loss 0; a guided teacher's targets differ", async () => {
  const unet = tinyUNet({ numClasses: 3 }), base = makeSchedule("cosine", 1000);
  const data = labelled(16);
  const opt = { lr: 1e-3, warmup: 0, ema: 0, gradClip: 1, condDrop: 0.5 };
  for (const [w, zero] of [[1, true], [2, false]] as const) {
    // Briefly trained (a fresh model's zero-initialised output is the same for every label).
    const st = freshState(unet, 3, data.count);
    for (let i = 0; i < 30; i++) await trainStep(st, data, base, unet, 8, { ...opt, lr: 3e-3 });
    const frozen: Record<string, tf.Tensor> = {};
    for (const [k, v] of (await saveState(st)).params) frozen[k] = tf.tensor(v, st.params[k].shape);
    const teacher = guideTargets(tfjsBatchModel(frozen, unet), w, 3, "null");
    const r = await trainStep(st, data, base, unet, 8, opt, teacher);
    if (zero) assert.ok(r.loss < 1e-10, `w = 1: loss ${r.loss}`);
    else assert.ok(r.loss > 1e-6, `w = 2: loss ${r.loss}`);
    Object.values(frozen).forEach((v) => v.dispose());
    disposeState(st);
  }
});

Deno.test("guideTargets: kept labels get the guided output, dropped ones the null class or their own label", async () => {
  const unet = tinyUNet({ numClasses: 3 }), base = makeSchedule("cosine", 1000);
  const data = labelled(16);
  const st = freshState(unet, 5, data.count);
  const opt = { lr: 3e-3, warmup: 0, ema: 0, gradClip: 1, condDrop: 0.3 };
  for (let i = 0; i < 30; i++) await trainStep(st, data, base, unet, 8, opt);
  const model = tfjsBatchModel(st.params, unet), px = 64;
  const xt = new Rng(9).fillNormal(new Float32Array(3 * px));
  const b = {
    xt,
    t: Float32Array.of(800, 300, 20),
    y: Int32Array.of(1, 3, 3),
    labels: Int32Array.of(1, 2, 0),
  };
  const one = async (i: number, label: number) =>
    await model(xt.slice(i * px, (i + 1) * px), b.t.slice(i, i + 1), Int32Array.of(label));
  const w = 1.5;
  for (const mode of ["null", "class"] as const) {
    const got = await guideTargets(model, w, 3, mode)(b);
    for (let i = 0; i < 3; i++) {
      const u = await one(i, 3), c = await one(i, b.labels[i]);
      for (let j = 0; j < px; j++) {
        const want = b.y[i] !== 3 ? u[j] + w * (c[j] - u[j]) : mode === "null" ? u[j] : c[j];
        assert.ok(Math.abs(got[i * px + j] - want) < 1e-4, `${mode}: image ${i} value ${j}`);
      }
    }
  }
  disposeState(st);
});

Deno.test("CLI: a fork resumes with --guide-teacher, records its sha256, refuses a changed teacher; the card names it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "guide-test-" });
  try {
    const base = join(dir, "base"), fork = join(dir, "fork");
    const tiny = [...TINY_MNIST_FLAGS, ...WASM_ONE_THREAD, "--conditional", "--sample-every", "0"];
    let r = await runCli(TRAIN_CLI, [...tiny, "--steps", "3", "--out", base]);
    assert.equal(r.code, 0, r.err);
    // An unconditional run has no guided output to learn.
    const unc = await runCli(TRAIN_CLI, [
      ...TINY_MNIST_FLAGS,
      ...WASM_ONE_THREAD,
      ...["--steps", "1", "--out", join(dir, "u"), "--guide-teacher", base],
    ]);
    assert.equal(unc.code, 2);
    assert.match(unc.err, /--guide-teacher needs a conditional run/);
    // Fork: a copy of the checkpoint, resumed with the base run as its frozen teacher.
    await Deno.mkdir(fork);
    const real = await Deno.realPath(join(base, "checkpoint"));
    const copy = join(fork, "ck");
    await Deno.mkdir(copy);
    for await (const f of Deno.readDir(real)) {
      await Deno.copyFile(join(real, f.name), join(copy, f.name));
    }
    await Deno.symlink("ck", join(fork, "checkpoint"));
    r = await runCli(TRAIN_CLI, [
      ...["--resume", "--out", fork, "--steps", "5"],
      ...["--guide-teacher", base, "--guide-weight", "1.5", "--guide-null", "class"],
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      /guidance distillation: targets = .*base \(step 3, ema sha256 [0-9a-f]{12}…\) at guidance 1\.5/,
    );
    const cfg = (await readCheckpoint(fork)).meta.config as Record<string, unknown>;
    assert.equal(cfg.guideTeacher, base);
    assert.equal(cfg.guideWeight, 1.5);
    assert.match(String(cfg.guideTeacherSha256), /^[0-9a-f]{64}$/);
    // The card records the teacher.
    const model = join(dir, "model");
    const ex = await runCli(new URL("../export.ts", import.meta.url).pathname, [
      ...["--run", fork, "--out", model, "--analytic-samples", "0", "--prior", "off"],
    ]);
    assert.equal(ex.code, 0, ex.err);
    const card = (await loadModel(join(model, "model.json"))).card;
    assert.deepEqual(card.training.guideTeacher, {
      run: base,
      sha256: cfg.guideTeacherSha256,
      weight: 1.5,
      nullTarget: "class",
    });
    // The teacher trains on: its weights change, and the fork refuses to resume against them.
    r = await runCli(TRAIN_CLI, ["--resume", "--out", base, "--steps", "4"]);
    assert.equal(r.code, 0, r.err);
    r = await runCli(TRAIN_CLI, ["--resume", "--out", fork, "--steps", "6"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /has changed since this run recorded it/);
    // `--guide-teacher none` goes back to the data's ε.
    r = await runCli(TRAIN_CLI, [
      "--resume",
      "--out",
      fork,
      "--steps",
      "6",
      "--guide-teacher",
      "none",
    ]);
    assert.equal(r.code, 0, r.err);
    assert.doesNotMatch(r.out, /guidance distillation/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
