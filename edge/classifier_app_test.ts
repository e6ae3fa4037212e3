/**
 * Classifier guidance through the real app (`app.request()`), on the shipped MNIST model and its
 * exported classifier in onnxruntime-web: `classifier_scale` steers the null class toward the
 * label (scored by the project's evaluation classifier), on every sampler and image route, with
 * the same bytes for the same query and today's bytes at scale 0; an unconditional UNet steered
 * by the same classifier; the classifier's file checked like the UNet's.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { encodePng } from "../shared/image.ts";
import { ModelCardSchema } from "../shared/model_card.ts";
import { SAMPLER_NAMES } from "../shared/samplers/mod.ts";
import { classify, loadClassifier } from "../scripts/classifier/model.ts";
import { tinyUNet, untrained, writeRandomModel } from "../trainer/export/test_models.ts";
import { createApp } from "./app.ts";
import { createEngine } from "./engine.ts";
import { DEFAULT_MODEL_CARD, loadModel, ModelLoadError } from "./model.ts";
import { generate } from "./sampler.ts";

const CARD = DEFAULT_MODEL_CARD;
const model = await loadModel(CARD);
const engine = await createEngine(model, { backend: "wasm", threads: 1 });
const app = createApp({ load: () => Promise.resolve(engine), model, backend: "wasm" });
const card = model.card;
const S = card.classifier!.scale;

type Body = { data: number[]; params: Record<string, unknown>; labels: number[] | null };
const get = (path: string) => app.request(path);
const json = async (path: string) => {
  const r = await get(path);
  assert.equal(r.status, 200, `${path}: ${await r.clone().text()}`);
  return { body: await r.json() as Body, etag: r.headers.get("ETag") };
};
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

async function issues(path: string, init?: RequestInit) {
  const r = await app.request(path, init);
  assert.equal(r.status, 400, path);
  return ((await r.json()) as { issues: { path: string; message: string }[] }).issues;
}

Deno.test("the shipped card names its classifier, SHA-checked on load", () => {
  assert.ok(card.classifier, "fixtures/models/mnist has a classifier");
  assert.ok(model.classifier && model.classifier.byteLength > 0);
  assert.deepEqual(card.classifier.labels, card.labels);
  assert.equal(typeof engine.classifierGrad, "function");
});

Deno.test("guidance=0&label=L&classifier_scale=S: same query, same bytes; = generate(); ETag and params carry S", async () => {
  const q = `/generate?seed=5&n=2&guidance=0&label=3&format=json`;
  const a = await json(`${q}&classifier_scale=${S}`);
  const b = await json(`${q}&classifier_scale=${S}`);
  assert.deepEqual(a.body.data, b.body.data);
  assert.equal(a.etag, b.etag);
  assert.equal(a.body.params.classifier_scale, S);
  // The card's chain for classifier-guided requests (classifier.steps).
  const steps = card.classifier!.steps ?? card.sampling.nullClassSteps ?? card.sampling.steps;
  assert.equal(a.body.params.steps, steps);
  assert.equal(a.body.params.sampler, card.classifier!.sampler ?? card.sampling.sampler);
  const request = { seed: 5, steps, eta: card.sampling.eta, n: 2, label: 3, guidance: 0 };
  const x = await generate(engine, { ...request, classifierScale: S });
  assert.deepEqual(a.body.data, Array.from(x));
  // The card's weaker scale at high noise (classifier.highNoise) is part of what it draws.
  assert.ok(card.classifier!.highNoise, "the shipped card steers its high-noise calls less");
  const flat = await generate(engine, {
    ...request,
    classifierScale: S,
    classifierHighNoise: null,
  });
  assert.ok(maxDiff(a.body.data, Array.from(flat)) > 0.01);
  // Scale 0 and no scale: today's bytes and ETag; the guided images differ.
  const zero = await json(`${q}&classifier_scale=0`), none = await json(q);
  assert.deepEqual(zero.body, none.body);
  assert.equal(zero.etag, none.etag);
  assert.ok(maxDiff(a.body.data, none.body.data) > 0.1);
  assert.notEqual(a.etag, none.etag);
  assert.notEqual(a.etag, (await json(`${q}&classifier_scale=${S + 1}`)).etag);
  const png = await get(`/generate?seed=5&n=2&guidance=0&label=3&classifier_scale=${S}`);
  assert.equal(png.status, 200);
  assert.equal(png.headers.get("Content-Type"), "image/png");
});

Deno.test("at the card's scale the null class draws the asked digit (the evaluation classifier)", async () => {
  const judge = await loadClassifier();
  const n = 20;
  const correct = async (scale: number) => {
    let right = 0;
    for (const label of [2, 7]) {
      const { body } = await json(
        `/generate?seed=11&n=${n / 2}&guidance=0&label=${label}&classifier_scale=${scale}` +
          `&format=json`,
      );
      const { logits } = classify(judge, body.data, n / 2);
      for (let i = 0; i < n / 2; i++) {
        const row = Array.from(logits.subarray(i * 10, (i + 1) * 10));
        if (row.indexOf(Math.max(...row)) === label) right++;
      }
    }
    return right;
  };
  const guided = await correct(S), free = await correct(0);
  // (0.952 of 640 at the card's scale in QUALITY.md, "Classifier guidance")
  assert.ok(guided >= 15, `${guided}/${n} at scale ${S}`);
  assert.ok(guided > free, `${guided} guided vs ${free} unguided`);
});

Deno.test("every sampler takes classifier_scale (ancestral mean shift or ε-shift)", async () => {
  for (const sampler of SAMPLER_NAMES) {
    const q = `/generate?seed=2&steps=6&sampler=${
      encodeURIComponent(sampler)
    }&guidance=0&label=5&format=json`;
    const guided = await json(`${q}&classifier_scale=${S}`);
    const free = await json(q);
    assert.ok(maxDiff(guided.body.data, free.body.data) > 0.05, sampler);
  }
});

Deno.test("/denoise, /inpaint, /interpolate and format=apng take classifier_scale", async () => {
  const input = new Uint8Array(28 * 28).fill(0);
  for (let i = 8; i < 20; i++) input[i * 28 + 14] = 255; // a stroke
  const png = encodePng({ width: 28, height: 28, channels: 1, data: input });
  const mask = encodePng({
    width: 28,
    height: 28,
    channels: 1,
    data: new Uint8Array(28 * 28).map((_, i) => (i < 392 ? 255 : 0)),
  });
  const post = async (path: string, body: Uint8Array) => {
    const r = await app.request(path, {
      method: "POST",
      body: body as Uint8Array<ArrayBuffer>,
      headers: { "Content-Type": "image/png" },
    });
    const text = await r.clone().text();
    assert.equal(r.status, 200, `${path}: ${text}`);
    return new Uint8Array(await r.arrayBuffer());
  };
  const q = `seed=1&guidance=0&label=8&format=json`;
  const cs = `&classifier_scale=${S}`;
  assert.notDeepEqual(await post(`/denoise?${q}${cs}`, png), await post(`/denoise?${q}`, png));
  const form = () => {
    const f = new FormData();
    f.append("image", new Blob([png as Uint8Array<ArrayBuffer>], { type: "image/png" }));
    f.append("mask", new Blob([mask as Uint8Array<ArrayBuffer>], { type: "image/png" }));
    return f;
  };
  const inpaint = async (s: string) => {
    const r = await app.request(`/inpaint?${q}${s}`, { method: "POST", body: form() });
    assert.equal(r.status, 200, await r.clone().text());
    return new Uint8Array(await r.arrayBuffer());
  };
  assert.notDeepEqual(await inpaint(cs), await inpaint(""));
  const interp = (s: string) =>
    json(`/interpolate?from=1&to=2&frames=2&label=8&guidance=0&format=json${s}`);
  assert.ok(maxDiff((await interp(cs)).body.data, (await interp("")).body.data) > 0.05);
  const apng = await get(`/generate?seed=1&guidance=0&label=8&format=apng${cs}`);
  assert.equal(apng.status, 200);
  assert.equal(apng.headers.get("Content-Type"), "image/apng");
});

Deno.test("through the app, bad classifier_scale values are 400s naming it; the cap counts its pass", async () => {
  for (const v of ["abc", "-1", "", "1e999"]) {
    const i = await issues(`/generate?guidance=0&label=3&classifier_scale=${v}`);
    assert.deepEqual(i.map((x) => x.path), ["classifier_scale"], v);
  }
  const noLabel = await issues(`/generate?guidance=0&classifier_scale=${S}`);
  assert.deepEqual(noLabel.map((x) => x.path), ["classifier_scale"]);
  assert.match(noLabel[0].message, /needs label/);
  const capped = createApp({ load: () => Promise.resolve(engine), maxWork: 47 });
  const q = "/generate?guidance=0&label=3&n=2&steps=12";
  assert.equal((await capped.request(q)).status, 200);
  const r = await capped.request(`${q}&classifier_scale=1`);
  assert.equal(r.status, 400);
  assert.match(await r.text(), /2 × 12 × 2 = 48 exceeds the cap of 47/);
  // A card without a classifier: the parameter is refused and not in its OpenAPI.
  const old = await loadModel(new URL("../fixtures/models/mnist-fast/model.json", import.meta.url));
  const oldApp = createApp({
    load: () => createEngine(old, { backend: "wasm" }),
    model: old,
    backend: "wasm",
  });
  const res = await oldApp.request("/generate?guidance=0&label=3&classifier_scale=1");
  assert.equal(res.status, 400);
  const body = await res.json() as { issues: { path: string; message: string }[] };
  assert.deepEqual(body.issues.map((x) => x.path), ["classifier_scale"]);
  assert.match(body.issues[0].message, /no classifier/);
  assert.ok(!(await (await oldApp.request("/openapi.json")).text()).includes("classifier_scale"));
  assert.ok((await (await get("/openapi.json")).text()).includes("classifier_scale"));
});

/** A copy of the shipped classifier beside `cardPath`, with the card field added (or changed). */
async function withClassifier(cardPath: string, change: Record<string, unknown> = {}) {
  const dir = dirname(cardPath);
  await Deno.copyFile(
    new URL(card.classifier!.file, model.cardUrl),
    join(dir, card.classifier!.file),
  );
  const c = JSON.parse(await Deno.readTextFile(cardPath));
  c.classifier = { ...card.classifier, ...change };
  await Deno.writeTextFile(cardPath, JSON.stringify(c, null, 2));
  return cardPath;
}

Deno.test("an unconditional UNet steered by the classifier: label names the classifier's class", async () => {
  const path = await withClassifier(
    await writeRandomModel({
      cfg: tinyUNet({ imageSize: 28, numClasses: 0 }),
      seed: 3,
      card: {
        name: "uncond-28",
        schedule: { kind: "cosine", T: 1000 },
        labels: null,
        dataset: "random weights (test fixture)",
        training: untrained(),
        sampling: { steps: 6, eta: 1, guidance: 0 },
      },
      prefix: "ddpm-edge-classifier-",
      createdAt: new Date(0),
    }),
  );
  const m = await loadModel(path);
  assert.equal(m.card.architecture.numClasses, 0);
  const e = await createEngine(m, { backend: "wasm" });
  const u = createApp({ load: () => Promise.resolve(e), model: m, backend: "wasm" });
  const body = async (q: string) => {
    const r = await u.request(`/generate?seed=4&n=2&format=json${q}`);
    assert.equal(r.status, 200, `${q}: ${await r.clone().text()}`);
    return ((await r.json()) as Body).data;
  };
  const free = await body("");
  assert.deepEqual(await body("&label=3&classifier_scale=0"), free);
  // (random UNet weights: its x̂₀ mostly clipped, so the steering shows in a few pixels)
  assert.ok(maxDiff(await body(`&label=3&classifier_scale=${S}`), free) > 0);
  assert.ok(
    maxDiff(
      await body(`&label=3&classifier_scale=${S}`),
      await body(`&label=4&classifier_scale=${S}`),
    ) > 0,
  );
  const r = await u.request("/generate?label=3");
  assert.equal(r.status, 400);
  const i = (await r.json()) as { issues: { path: string; message: string }[] };
  assert.deepEqual(i.issues.map((x) => x.path), ["label"]);
  assert.match(i.issues[0].message, /classifier_scale/);
  await Deno.remove(dirname(path), { recursive: true });
});

Deno.test("the classifier's file is checked like the UNet's: a wrong SHA-256 or a missing file names it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ddpm-edge-classifier-" });
  const src = fileURLToPath(new URL(".", CARD));
  for (const f of ["model.json", card.onnx.file]) await Deno.copyFile(join(src, f), join(dir, f));
  const path = await withClassifier(join(dir, "model.json"), { sha256: "0".repeat(64) });
  await assert.rejects(
    loadModel(path),
    (e) =>
      e instanceof ModelLoadError && e.file.endsWith(`/${card.classifier!.file}`) &&
      /SHA-256 [0-9a-f]{64} does not match the card's 0{64}/.test(e.message),
  );
  await Deno.remove(join(dir, card.classifier!.file));
  await assert.rejects(
    loadModel(path),
    (e) => e instanceof ModelLoadError && /cannot read/.test(e.message),
  );
  // Labels that disagree with a conditional card's are refused when the card is read.
  await withClassifier(path, { labels: ["a", "b"] });
  await assert.rejects(loadModel(path), /classifier\.labels must be the card's labels/);
  assert.ok(
    ModelCardSchema.safeParse({ ...card, classifier: { ...card.classifier, sha256: "x" } })
      .success === false,
  );
  await Deno.remove(dir, { recursive: true });
});
