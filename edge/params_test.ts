import assert from "node:assert/strict";
import { loadModel } from "./model.ts";
import {
  canonical,
  DEFAULT_MAX_WORK,
  defaultSteps,
  labelsUsed,
  parseQuery,
  resolveLabel,
  sampledLabels,
} from "./params.ts";
import { writeTinyModel } from "./testing.ts";

const cond = (await loadModel(await writeTinyModel({ T: 50, steps: 4, guidance: 1 }))).card;
const uncond = (await loadModel(await writeTinyModel({ numClasses: 0 }))).card;
const anyLabel = (await loadModel(
  await writeTinyModel({ T: 50, steps: 4, guidance: 1, unlabeled: "random-label" }),
)).card;

const parse = (q: string, card = cond, maxWork = DEFAULT_MAX_WORK) =>
  parseQuery(new URLSearchParams(q), card, maxWork, () => 777);

function ok(q: string, card = cond) {
  const r = parse(q, card);
  assert.ok(r.ok, `expected ${q} to parse: ${JSON.stringify(!r.ok && r.issues)}`);
  return r.params;
}

function bad(q: string, path: string, message: RegExp, card = cond) {
  const r = parse(q, card);
  assert.ok(!r.ok, `expected ${q} to fail`);
  assert.ok(
    r.issues.some((i) => i.path === path && message.test(i.message)),
    `${q}: ${JSON.stringify(r.issues)}`,
  );
}

Deno.test("defaults come from the card; a missing seed is drawn", () => {
  const p = ok("");
  assert.deepEqual(canonical(p), {
    seed: 777,
    steps: 4,
    spacing: "linspace",
    sampler: "ddim",
    eta: 1,
    n: 1,
    scale: 1,
    label: null,
    guidance: 1,
    format: "png",
  });
  assert.equal(p.seedGiven, false);
  assert.equal(ok("seed=0").seedGiven, true);
});

Deno.test("every parameter parses", () => {
  const p = ok(
    "seed=4294967295&steps=16&spacing=trailing&sampler=ddim&eta=0.25&n=64&scale=16&label=two" +
      "&guidance=3.5&format=json",
  );
  assert.deepEqual(canonical(p), {
    seed: 4294967295,
    steps: 16,
    spacing: "trailing",
    sampler: "ddim",
    eta: 0.25,
    n: 64,
    scale: 16,
    label: 2,
    guidance: 3.5,
    format: "json",
  });
  assert.equal(ok("eta=0").eta, 0);
  assert.equal(ok("eta=1e-1").eta, 0.1);
  assert.equal(ok("guidance=0").guidance, 0);
});

Deno.test("labels by name or index", () => {
  assert.equal(ok("label=zero").label, 0);
  assert.equal(ok("label=1").label, 1);
  assert.equal(resolveLabel(["a", "b"], "b"), 1);
  assert.equal(resolveLabel(["a", "b"], "2"), undefined);
  // A name wins over an index: labels "1", "0" → "0" is index 1.
  assert.equal(resolveLabel(["1", "0"], "0"), 1);
});

Deno.test("out-of-range and malformed values name the parameter", () => {
  bad("seed=-1", "seed", /integer/);
  bad("seed=4294967296", "seed", /≤ 4294967295/);
  bad("seed=1.5", "seed", /integer/);
  bad("seed=", "seed", /integer/);
  bad("seed=0x10", "seed", /integer/);
  bad("steps=0", "steps", /≥ 1/);
  bad("steps=51", "steps", /≤ 50/);
  bad("spacing=cubic", "spacing", /linspace, trailing, quadratic/);
  bad("spacing=", "spacing", /must be one of/);
  bad("eta=1.01", "eta", /≤ 1/);
  bad("eta=-0.1", "eta", /≥ 0/);
  bad("eta=abc", "eta", /number/);
  bad("eta=NaN", "eta", /number/);
  bad("eta=", "eta", /number/);
  bad("n=0", "n", /≥ 1/);
  bad("n=65", "n", /≤ 64/);
  bad("scale=17", "scale", /≤ 16/);
  bad("scale=0", "scale", /≥ 1/);
  bad("guidance=-1", "guidance", /≥ 0/);
  bad("guidance=101", "guidance", /≤ 100/);
  bad("guidance=Infinity", "guidance", /number/);
  bad("format=gif", "format", /png or json/);
});

Deno.test("unknown labels and labels on an unconditional model are rejected", () => {
  bad("label=three", "label", /unknown label "three".*zero, one, two.*0…2/);
  bad("label=3", "label", /unknown label/);
  bad("label=0", "label", /unconditional/, uncond);
  assert.equal(ok("", uncond).guidance, 0);
});

Deno.test("unknown and repeated parameters are rejected", () => {
  bad("seed=1&colour=red", "colour", /unknown parameter/);
  bad("seed=1&seed=2", "seed", /more than once/);
  const r = parse("foo=1&bar=2");
  assert.ok(!r.ok);
  assert.deepEqual(r.issues.map((i) => i.path).sort(), ["bar", "foo"]);
  // Names of Object.prototype members are plain unknown keys (not "given more than once").
  for (const key of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
    const p = parse(`seed=1&${key}=1`);
    assert.ok(!p.ok);
    assert.deepEqual(p.issues, [{ path: key, message: "unknown parameter" }]);
  }
});

Deno.test("the work cap counts n × steps × passes", () => {
  // 2 passes only with a label and guidance ∉ {0, 1}.
  assert.ok(parse("n=10&steps=10", cond, 100).ok);
  assert.ok(parse("n=10&steps=10&label=1&guidance=1", cond, 100).ok);
  assert.ok(parse("n=10&steps=10&label=1&guidance=0", cond, 100).ok);
  assert.ok(parse("n=10&steps=10&guidance=3", cond, 100).ok);
  const r = parse("n=10&steps=10&label=1&guidance=3", cond, 100);
  assert.ok(!r.ok);
  assert.match(r.issues[0].message, /10 × 10 × 2 = 200 exceeds the cap of 100 \(MAX_WORK\)/);
  assert.ok(!parse("n=11&steps=10", cond, 100).ok);
});

Deno.test("no label: null class, or one label per image drawn from the seed (random-label cards)", () => {
  // Null-class cards (and unconditional models) sample without labels.
  assert.equal(sampledLabels(ok("seed=3&n=8"), cond), undefined);
  assert.equal(labelsUsed(ok("seed=3&n=8"), cond), null);
  assert.equal(sampledLabels(ok("seed=3&n=8", uncond), uncond), undefined);
  // random-label: n labels in 0…k−1, the same for the same seed, different for other seeds.
  const a = sampledLabels(ok("seed=3&n=64", anyLabel), anyLabel) as number[];
  assert.equal(a.length, 64);
  assert.ok(a.every((y) => Number.isInteger(y) && y >= 0 && y < 3));
  assert.equal(new Set(a).size, 3, "all three classes among 64 draws");
  assert.deepEqual(sampledLabels(ok("seed=3&n=64", anyLabel), anyLabel), a);
  assert.notDeepEqual(sampledLabels(ok("seed=4&n=64", anyLabel), anyLabel), a);
  // A first image's label does not depend on n (one stream per seed).
  assert.equal((sampledLabels(ok("seed=3&n=1", anyLabel), anyLabel) as number[])[0], a[0]);
  // A requested label wins; guidance 0 means the null class whatever the card says.
  assert.equal(sampledLabels(ok("seed=3&n=8&label=two", anyLabel), anyLabel), 2);
  assert.deepEqual(labelsUsed(ok("seed=3&n=2&label=two", anyLabel), anyLabel), [2, 2]);
  assert.equal(labelsUsed(ok("seed=3&n=8&guidance=0", anyLabel), anyLabel), null);
  // The work cap counts the guided passes of drawn labels too.
  assert.ok(parse("n=10&steps=10&guidance=3", cond, 100).ok);
  const r = parse("n=10&steps=10&guidance=3", anyLabel, 100);
  assert.ok(!r.ok && /10 × 10 × 2 = 200/.test(r.issues[0].message));
});

Deno.test("a card's nullClassSampler is the default sampler of requests that sample the null class only", async () => {
  const base = (await loadModel(
    await writeTinyModel({ T: 50, steps: 4, sampler: "dpm++2m", unlabeled: "random-label" }),
  )).card;
  const card = { ...base, sampling: { ...base.sampling, nullClassSampler: "ddpm" as const } };
  assert.equal(ok("guidance=0", card).sampler, "ddpm");
  assert.equal(ok("", card).sampler, "dpm++2m"); // random labels: labelled images
  assert.equal(ok("label=one", card).sampler, "dpm++2m");
  assert.equal(ok("guidance=0&sampler=ddim", card).sampler, "ddim"); // a named sampler wins
  assert.equal(ok("guidance=0", base).sampler, "dpm++2m"); // without the field: `sampler`
});

Deno.test("a card's nullClassSteps is the default of requests that sample the null class only", async () => {
  const longNull = (await loadModel(await writeTinyModel({ T: 50, steps: 4, nullClassSteps: 9 })))
    .card;
  assert.equal(longNull.sampling.nullClassSteps, 9);
  assert.equal(ok("", longNull).steps, 9); // no label on a null-class card
  assert.equal(ok("guidance=0&label=one", longNull).steps, 9);
  assert.equal(ok("label=one", longNull).steps, 4);
  assert.equal(ok("label=one&guidance=2", longNull).steps, 4);
  assert.equal(ok("guidance=0&steps=3", longNull).steps, 3); // a named step count wins
  const anyLabelLong = (await loadModel(
    await writeTinyModel({ T: 50, steps: 4, nullClassSteps: 9, unlabeled: "random-label" }),
  )).card;
  assert.equal(ok("", anyLabelLong).steps, 4); // random labels: labelled images
  assert.equal(ok("guidance=0", anyLabelLong).steps, 9);
  // The work cap counts the steps the request gets.
  const r = parse("guidance=0&n=4", longNull, 30);
  assert.ok(!r.ok && r.issues[0].path === "n", JSON.stringify(r));
  assert.ok(parse("guidance=0&n=3", longNull, 30).ok);
  // A card without the field: every request defaults to `steps`, as before the field existed.
  assert.equal(cond.sampling.nullClassSteps, undefined);
  assert.equal(ok("guidance=0", cond).steps, 4);
  assert.equal(defaultSteps(cond, true), 4);
  assert.equal(defaultSteps(longNull, false), 4);
});
