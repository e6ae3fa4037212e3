import assert from "node:assert/strict";
import { join } from "node:path";
import { decode } from "fast-png";
import { manifoldMetricsAgainst } from "./metrics.ts";
import { tinyUNet, untrained, writeRandomModel } from "../trainer/export/test_models.ts";
import { DEFAULT_MODEL_CARD, loadModel } from "../edge/model.ts";
import { createEngine } from "../edge/engine.ts";
import { defaultSteps } from "../edge/params.ts";
import { generate } from "../edge/sampler.ts";
import {
  evalConfig,
  evaluateImages,
  heldOutSubset,
  loadEvalContext,
  main,
  MANIFOLD_K,
  realCeiling,
  sampleImages,
  spreadPerClass,
  writePairs,
} from "./eval.ts";

const ctx = await loadEvalContext();

/** A real (random-weight) 28×28 MNIST-shaped model exported as the trainer would, in a temp dir. */
function randomMnistModel(numClasses: number): Promise<string> {
  return writeRandomModel({
    cfg: tinyUNet({ imageSize: 28, attention: false, numClasses }),
    seed: 7,
    card: {
      name: "random-28",
      schedule: { kind: "linear", T: 100 },
      labels: null,
      dataset: "random weights (test)",
      training: untrained(),
      sampling: { steps: 3, eta: 1, guidance: numClasses > 0 ? 2 : 0 },
    },
    prefix: "eval-test-",
  });
}

Deno.test("real held-out digits: confident, covering all classes, accurate, low FID", () => {
  const m = realCeiling(ctx, 150);
  assert.equal(m.n, 150);
  assert.ok(m.confidence > 0.9, `confidence ${m.confidence}`);
  assert.ok(m.confidentFraction > 0.85, `fraction > 0.9: ${m.confidentFraction}`);
  assert.ok(m.coverage > 0.99, `coverage ${m.coverage}`);
  assert.ok(m.accuracy! >= 0.95, `accuracy ${m.accuracy}`);
  assert.deepEqual(m.histogram.length, 10);
  // Real digits are not in the training split: their nearest neighbour is a few units away.
  assert.ok(m.nnMean > 1 && m.nnMean < 10, `NN ${m.nnMean}`);
  // Uniform noise is far from the training features and from every training digit.
  const noise = new Float32Array(150 * 784).map((_, i) => ((i * 2654435761) % 1000) / 500 - 1);
  const z = evaluateImages(ctx, noise, 150, null);
  assert.ok(z.fid > 5 * m.fid, `noise FID ${z.fid} vs real ${m.fid}`);
  assert.ok(z.nnMean > 2 * m.nnMean);
  assert.equal(z.accuracy, null);
});

Deno.test("precision/recall reference: 1,000 training digits, 100 per class; its own digits score 1, held-out digits less", () => {
  const ref = ctx.manifold.pixels;
  assert.equal(ref.rows.n, 1000);
  assert.equal(ref.k, MANIFOLD_K);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < ref.rows.n; i++) counts[ref.labels![i]]++;
  assert.deepEqual(counts, new Array(10).fill(100));
  assert.equal(ctx.manifold.features.rows.n, 1000);
  // The reference's own digits (back in [−1, 1]) lie on its manifolds: 1 on all four counts.
  for (const r of [ref, ctx.manifold.features]) {
    const mm = manifoldMetricsAgainst(r, r.rows);
    assert.deepEqual([mm.precision, mm.recall, mm.coverage], [1, 1, 1]);
  }
  // Real held-out digits: high, below 1 (k = 3 balls miss some of a fresh draw), every class.
  const real = realCeiling(ctx, 200);
  for (const mm of [real.pixelManifold, real.featureManifold]) {
    assert.ok(mm.precision > 0.7 && mm.precision < 1, `precision ${mm.precision}`);
    assert.ok(mm.recall > 0.6 && mm.recall < 1, `recall ${mm.recall}`);
    assert.equal(mm.nFake, 200);
    assert.ok(mm.recallByClass!.every((r) => r > 0.3), `per class ${mm.recallByClass}`);
  }
  // Spread per class: picks are distinct and span each class.
  assert.deepEqual(spreadPerClass(Int32Array.of(0, 0, 1, 0, 1, 0), 2, 2), [0, 3, 2, 4]);
});

Deno.test("heldOutSubset interleaves classes: any n is balanced", () => {
  const s = heldOutSubset(ctx, 50);
  const counts = new Array(10).fill(0);
  s.labels.forEach((l) => counts[l]++);
  assert.deepEqual(counts, new Array(10).fill(5));
  assert.equal(heldOutSubset(ctx, 5000).labels.length, ctx.heldOut.count);
});

Deno.test("evalConfig samples a real exported model through the edge sampler and scores it", async () => {
  const path = await randomMnistModel(10);
  const engine = await createEngine(await loadModel(path), { backend: "wasm", threads: 1 });
  const req = { n: 12, steps: 3, eta: 1, guidance: 2, seed: 5, batch: 5 };
  const s = await sampleImages(engine, req);
  assert.deepEqual([...s.labels!], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
  assert.ok(s.images.every((v) => v >= -1 && v <= 1));
  assert.ok(s.cpuMs > 0);
  // Same seed, same batches → the same images (the sampler is deterministic).
  assert.deepEqual((await sampleImages(engine, req)).images, s.images);
  const grid = join(await Deno.makeTempDir(), "g.png");
  const row = await evalConfig(ctx, engine, req, grid);
  assert.equal(row.guidance, 2);
  assert.equal(row.metrics.n, 12);
  assert.ok(Number.isFinite(row.metrics.fid) && row.metrics.fid > 0);
  assert.ok(row.metrics.accuracy !== null); // labels "0".."9"
  assert.ok(row.cpuMsPerSample > 0);
  const png = decode(await Deno.readFile(grid));
  // 10 columns × 2 rows of 56-px tiles with 2-px gaps.
  assert.deepEqual([png.width, png.height], [10 * 56 + 9 * 2, 2 * 56 + 2]);
});

/** Run `eval --sweep` on a random MNIST-shaped model into a temp dir with these flags. */
async function sweep(flags: Record<string, string>) {
  const dir = await Deno.makeTempDir();
  const md = join(dir, "table.md");
  const args = Object.entries({ "sweep-n": "10", batch: "10", ...flags })
    .flatMap(([k, v]) => [`--${k}`, v]);
  await main(
    ["--model", await randomMnistModel(10), "--sweep", ...args, "--grids", dir, "--markdown", md],
    ctx,
  );
  const table = (await Deno.readTextFile(md)).split("\n").filter((l) => l.startsWith("| "));
  const pngs = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".png")).map((e) => e.name);
  return { table, pngs: pngs.sort() };
}

Deno.test("eval --sweep writes one row and one grid per configuration plus the ceiling", async () => {
  const jsonPath = join(await Deno.makeTempDir(), "rows.json");
  const { table: rows, pngs } = await sweep({
    "sweep-steps": "2,3",
    "sweep-eta": "0,1",
    "sweep-guidance": "1,2",
    "long-steps": "3",
    "long-n": "4",
    json: jsonPath,
  });
  // header, 2 steps × 2 η × 2 guidance, ceilings at n = 10 and 4
  assert.equal(rows.length, 1 + 8 + 2);
  assert.match(rows.at(-2)!, /^\| real held-out digits \| – \| – \| – \| – \| 10 \|/);
  assert.match(rows.at(-1)!, /^\| real held-out digits \| – \| – \| – \| – \| 4 \|/);
  const out = JSON.parse(await Deno.readTextFile(jsonPath));
  assert.deepEqual(
    out.rows.map((r: { steps: number; metrics: { n: number } }) => [r.steps, r.metrics.n]),
    [[2, 10], [2, 10], [2, 10], [2, 10], [3, 4], [3, 4], [3, 4], [3, 4]],
  );
  assert.equal(pngs.length, 8);
  assert.ok(pngs.includes("S3_eta0_g2.png"));
});

Deno.test("eval --sweep-spacing adds one row per spacing, named in the sampler column", async () => {
  const { table, pngs } = await sweep({
    "sweep-steps": "3",
    "sweep-eta": "1",
    "sweep-guidance": "1",
    "sweep-spacing": "linspace,trailing,quadratic",
  });
  const rows = table.filter((l) => l.startsWith("| DDPM"));
  assert.deepEqual(rows.map((r) => r.split(" | ")[0]), [
    "| DDPM",
    "| DDPM, trailing",
    "| DDPM, quadratic",
  ]);
  // Other timesteps, other samples: the three rows do not score identically.
  assert.equal(new Set(rows.map((r) => r.split(" | ")[6])).size, 3);
  // Steps, then UNet calls per image: one per step (this card has no data prior).
  assert.deepEqual(rows.map((r) => r.split(" | ").slice(1, 3)), Array(3).fill(["3", "3"]));
  assert.deepEqual(pngs, [
    "S3_eta1_g1.png",
    "S3_eta1_g1_quadratic.png",
    "S3_eta1_g1_trailing.png",
  ]);
  await assert.rejects(sweep({ "sweep-spacing": "cubic" }), /spacing must be one of/);
});

Deno.test("eval rejects a model whose images the classifier cannot score", async () => {
  const { writeTinyModel } = await import("../edge/testing.ts");
  const engine = await createEngine(await loadModel(await writeTinyModel()), {
    backend: "wasm",
    threads: 1,
  });
  await assert.rejects(
    sampleImages(engine, { n: 2, steps: 2, eta: 1, guidance: 1, seed: 0, batch: 2 }),
    /28×28/,
  );
});

Deno.test("the shipped default model, at its card's defaults, draws recognisable digits of the asked class", async () => {
  const model = await loadModel(DEFAULT_MODEL_CARD);
  const engine = await createEngine(model, { backend: "wasm", threads: 1 });
  const m = (await atCardDefaults(engine)).metrics;
  assertRecognisable(m);
  assertVaried(m);
});

/**
 * Issue 26: as varied as real digits. In pixel space (k = 3, n = 100 against the 1,000-digit
 * reference) real held-out digits score precision/recall 0.880/0.813; the default of issue 26
 * 0.820/0.894, the session-8 default (too typical) 0.990/0.710, which fails both bounds here.
 */
function assertVaried(m: Awaited<ReturnType<typeof evalConfig>>["metrics"]) {
  const real = realCeiling(ctx, m.n).pixelManifold, px = m.pixelManifold;
  assert.ok(px.recall >= real.recall - 0.05, `recall ${px.recall} vs real ${real.recall}`);
  assert.ok(
    px.precision <= real.precision + 0.05,
    `precision ${px.precision} vs ${real.precision}`,
  );
  assert.ok(px.precision >= 0.7, `precision ${px.precision}`);
}

Deno.test("the shipped default model's null class (guidance 0) draws digits, not blends of two", async () => {
  const model = await loadModel(DEFAULT_MODEL_CARD);
  const engine = await createEngine(model, { backend: "wasm", threads: 1 });
  const row = await atCardDefaults(engine, 0), m = row.metrics, real = realCeiling(ctx, 100);
  // QUALITY.md, n = 100 at these seeds, at the card's 12 null-class steps and its null-class
  // sampler (dpm++2m-sde): confidence 0.923, coverage 0.982, FID 7.36 (real 6.65). Under these
  // floors: the session-7 default (0.868, 0.956, FID 13.6 at its 5 steps) and the model before
  // null-class autoguidance (0.811, FID 16.8).
  assert.equal(row.steps, 12);
  assert.ok(m.confidence >= 0.9, `confidence ${m.confidence}`);
  assert.ok(m.coverage >= 0.95, `coverage ${m.coverage}`);
  assert.ok(m.fid <= 1.6 * real.fid, `FID ${m.fid} vs real ${real.fid}`);
});

/** 100 images (labels i mod 10, seeds 2026…) at the card's defaults, scored. */
async function atCardDefaults(
  engine: Awaited<ReturnType<typeof createEngine>>,
  guidance = engine.model.card.sampling.guidance,
) {
  const card = engine.model.card, s = card.sampling;
  return await evalConfig(ctx, engine, {
    n: 100,
    steps: defaultSteps(card, guidance === 0),
    eta: s.eta,
    guidance,
    seed: 2026,
    batch: 50,
  }, null);
}

/**
 * Floors a little under what QUALITY.md reports for the shipped models (n = 100), so a worse
 * model, a broken sampler or a broken export fails here.
 */
function assertRecognisable(m: Awaited<ReturnType<typeof evalConfig>>["metrics"]) {
  const real = realCeiling(ctx, 100);
  assert.ok(m.confidence >= 0.9 * real.confidence, `confidence ${m.confidence}`);
  assert.ok(m.coverage >= 0.95, `coverage ${m.coverage}`);
  assert.ok(m.accuracy! >= 0.8, `label accuracy ${m.accuracy}`);
  assert.ok(m.fid <= 2 * real.fid, `FID ${m.fid} vs real ${real.fid}`);
  // Not copies of training digits: as far from the training set as real held-out digits are.
  assert.ok(m.nnMean >= 0.8 * real.nnMean, `NN ${m.nnMean} vs real ${real.nnMean}`);
}

Deno.test("the shipped 2-call model (mnist-fast), at its card's own chain, draws recognisable digits in 2 UNet calls", async () => {
  const model = await loadModel(
    new URL("../fixtures/models/mnist-fast/model.json", import.meta.url),
  );
  const s = model.card.sampling;
  assert.deepEqual(s.timesteps, [646, 934, 999]);
  assert.ok(s.prior, "the t = 999 step comes from the data prior");
  const engine = await createEngine(model, { backend: "wasm", threads: 1 });
  const runs = engine.runs;
  const row = await atCardDefaults(engine);
  assert.equal(engine.runs - runs, 2 * 2, "two batches of 50, two UNet calls each");
  assertRecognisable(row.metrics);
  // A seed gives one image (two separate draws on its chain, not a cache).
  const draw = () => generate(engine, { seed: 42, steps: s.steps, eta: s.eta, n: 2, label: 7 });
  assert.deepEqual(await draw(), await draw());
});

Deno.test("eval --variance large samples with σ² = β: named rows and grids, other scores", async () => {
  const flags = { "sweep-steps": "3", "sweep-eta": "1", "sweep-guidance": "1" };
  const small = await sweep(flags), large = await sweep({ ...flags, variance: "large" });
  const row = (t: string[]) => t.find((l) => l.startsWith("| DDPM"))!.split(" | ");
  assert.equal(row(small.table)[0], "| DDPM");
  assert.equal(row(large.table)[0], "| DDPM, σ²=β");
  assert.notEqual(row(large.table)[6], row(small.table)[6], "other noise, other FID");
  assert.deepEqual(large.pngs, ["S3_eta1_g1_large.png"]);
  await assert.rejects(
    sweep({ ...flags, variance: "huge" }),
    /variance must be one of small, large, got "huge"/,
  );
});

Deno.test("memorisation in eval: training digits are their own near copies; writePairs shows them", async () => {
  const picked = [3, 400, 5000, 7000, 8999];
  const images = new Float32Array(picked.length * 784);
  picked.forEach((i, j) => images.set(ctx.trainImages.subarray(i * 784, (i + 1) * 784), j * 784));
  const m = evaluateImages(ctx, images, picked.length, null);
  assert.equal(m.memorisation.nearCopyShare, 1);
  assert.ok(m.memorisation.closest.every(([q, t]) => t === picked[q]));
  assert.ok(m.memorisation.medianNearest < 1e-6);
  // Held-out digits are not copies of training digits.
  const real = realCeiling(ctx, 200).memorisation;
  assert.ok(real.nearCopyShare < 0.05, `${real.nearCopyShare}`);
  const dir = await Deno.makeTempDir();
  try {
    await writePairs(join(dir, "pairs.png"), ctx, images, m.memorisation.closest);
    const png = decode(await Deno.readFile(join(dir, "pairs.png")));
    assert.deepEqual([png.width, png.height], [2 * 56 + 2, 5 * 56 + 8]); // 2× scale, 2 px gaps
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
