/**
 * `classifier_scale` in the query (edge/params.ts and the image routes' parsers): each refusal
 * names the parameter, the work cap counts the classifier's pass, S = 0 or absent leaves the
 * canonical parameters (ETag, JSON) as they were. Cards as written: the shipped MNIST card and
 * the same card with or without a classifier block, an unconditional one with it.
 */
import assert from "node:assert/strict";
import { type ModelCard, ModelCardSchema } from "../shared/model_card.ts";
import { canonical, parseQuery } from "./params.ts";
import { parseDenoise, parseInpaint, parseInterpolate } from "./routes/params.ts";
import { openapi } from "./openapi.ts";

const shipped = ModelCardSchema.parse(
  JSON.parse(
    await Deno.readTextFile(new URL("../fixtures/models/mnist/model.json", import.meta.url)),
  ),
);
const classifier = {
  file: "classifier.onnx",
  sha256: "0".repeat(64),
  labels: shipped.labels!,
  scale: 4,
};
const withClassifier: ModelCard = { ...shipped, classifier };
const without: ModelCard = { ...shipped, classifier: undefined };
const unconditional: ModelCard = {
  ...withClassifier,
  architecture: { ...shipped.architecture, numClasses: 0 },
  labels: null,
  sampling: { ...shipped.sampling, unlabeled: undefined, nullClassSteps: undefined },
};

const q = (s: string) => new URLSearchParams(s);
function issuesOf(s: string, card: ModelCard, maxWork?: number) {
  const r = parseQuery(q(s), card, maxWork);
  assert.equal(r.ok, false, s);
  return (r as { issues: { path: string; message: string }[] }).issues;
}

Deno.test("classifier_scale: not a number, negative, no classifier, no label → an issue naming it", () => {
  for (
    const [query, card, why] of [
      ["guidance=0&label=3&classifier_scale=abc", withClassifier, /must be a number ≥ 0/],
      ["guidance=0&label=3&classifier_scale=", withClassifier, /must be a number ≥ 0/],
      ["guidance=0&label=3&classifier_scale=NaN", withClassifier, /must be a number ≥ 0/],
      ["guidance=0&label=3&classifier_scale=Infinity", withClassifier, /must be a number ≥ 0/],
      ["guidance=0&label=3&classifier_scale=-1", withClassifier, /must be ≥ 0/],
      ["guidance=0&label=3&classifier_scale=1e9", withClassifier, /must be ≤ 1000/],
      ["guidance=0&label=3&classifier_scale=2", without, /has no classifier/],
      ["guidance=0&classifier_scale=2", withClassifier, /needs label/],
      ["classifier_scale=2", unconditional, /needs label/],
    ] as const
  ) {
    const issues = issuesOf(query, card);
    assert.equal(issues.length, 1, query);
    assert.equal(issues[0].path, "classifier_scale", query);
    assert.match(issues[0].message, why, query);
  }
  const twice = issuesOf("label=3&classifier_scale=1&classifier_scale=2", withClassifier);
  assert.deepEqual(twice.map((i) => i.path), ["classifier_scale"]);
});

Deno.test("classifier_scale: parsed with the card's defaults; 0 or absent changes nothing", () => {
  const r = parseQuery(q("seed=1&guidance=0&label=3&classifier_scale=2.5"), withClassifier);
  assert.ok(r.ok);
  assert.equal(r.params.classifierScale, 2.5);
  assert.equal(r.params.label, 3);
  // The null class of a conditional card keeps its default chain (nullClassSteps).
  assert.equal(r.params.steps, shipped.sampling.nullClassSteps);
  assert.equal(canonical(r.params).classifier_scale, 2.5);
  const zero = parseQuery(q("seed=1&guidance=0&label=3&classifier_scale=0"), withClassifier);
  const absent = parseQuery(q("seed=1&guidance=0&label=3"), withClassifier);
  assert.ok(zero.ok && absent.ok);
  assert.equal(absent.params.classifierScale, 0);
  assert.deepEqual(canonical(zero.params), canonical(absent.params));
  assert.equal(JSON.stringify(canonical(absent.params)).includes("classifier"), false);
});

Deno.test("the card's classifier.steps is the default chain of a request with classifier_scale > 0", () => {
  const card: ModelCard = { ...withClassifier, classifier: { ...classifier, steps: 25 } };
  const steps = (s: string) => {
    const r = parseQuery(q(s), card);
    assert.ok(r.ok, s);
    return r.params.steps;
  };
  assert.equal(steps("guidance=0&label=3&classifier_scale=2"), 25);
  assert.equal(steps("guidance=0&label=3&classifier_scale=2&steps=7"), 7);
  assert.equal(steps("guidance=0&label=3&classifier_scale=0"), shipped.sampling.nullClassSteps);
  assert.equal(steps("guidance=0&label=3"), shipped.sampling.nullClassSteps);
  assert.equal(steps("label=3"), shipped.sampling.steps);
  assert.equal(steps("label=3&classifier_scale=1"), 25);
  // Without it, a guided request keeps the chain it would have had.
  const r = parseQuery(q("guidance=0&label=3&classifier_scale=2"), withClassifier);
  assert.ok(r.ok && r.params.steps === shipped.sampling.nullClassSteps);
});

Deno.test("the card's classifier.sampler samples a request with classifier_scale > 0 that names none", () => {
  const card: ModelCard = { ...withClassifier, classifier: { ...classifier, sampler: "ddpm" } };
  const sampler = (s: string) => {
    const r = parseQuery(q(s), card);
    assert.ok(r.ok, s);
    return r.params.sampler;
  };
  assert.equal(sampler("guidance=0&label=3&classifier_scale=2"), "ddpm");
  assert.equal(sampler("guidance=0&label=3&classifier_scale=2&sampler=ddim"), "ddim");
  // Without the classifier a guidance=0 request samples the null class: the card's null-class
  // sampler where it names one (issue 26).
  const nullSampler = shipped.sampling.nullClassSampler ?? shipped.sampling.sampler;
  assert.equal(sampler("guidance=0&label=3&classifier_scale=0"), nullSampler);
  assert.equal(sampler("guidance=0&label=3"), nullSampler);
});

Deno.test("an unconditional card with a classifier: label names the classifier's class, with classifier_scale only", () => {
  const r = parseQuery(q("seed=1&label=7&classifier_scale=3"), unconditional);
  assert.ok(r.ok);
  assert.equal(r.params.label, 7);
  const alone = issuesOf("seed=1&label=7", unconditional);
  assert.deepEqual(alone.map((i) => i.path), ["label"]);
  assert.match(alone[0].message, /needs classifier_scale/);
  const noClassifier = issuesOf("label=7", { ...unconditional, classifier: undefined });
  assert.deepEqual(noClassifier.map((i) => i.path), ["label"]);
  assert.match(noClassifier[0].message, /unconditional/);
});

Deno.test("the work cap counts one classifier pass per image per call", () => {
  // guidance 0: one UNet pass, plus the classifier's: 2 × n × 12 calls.
  const s = "guidance=0&label=3&n=4&steps=12";
  assert.ok(parseQuery(q(s + "&classifier_scale=1"), withClassifier, 96).ok);
  const over = issuesOf(s + "&classifier_scale=1", withClassifier, 95);
  assert.match(over[0].message, /4 × 12 × 2 = 96 exceeds the cap of 95/);
  assert.ok(parseQuery(q(s), withClassifier, 48).ok);
  // Classifier-free guidance and classifier guidance together: 3 passes.
  const both = issuesOf("guidance=2&label=3&n=4&steps=12&classifier_scale=1", withClassifier, 143);
  assert.match(both[0].message, /4 × 12 × 3 = 144/);
  // An unconditional UNet runs once per call whatever the guidance.
  assert.ok(
    parseQuery(q("label=3&n=4&steps=12&guidance=3&classifier_scale=1"), unconditional, 96).ok,
  );
});

Deno.test("the image routes take classifier_scale, and their caps count it", () => {
  const cap = 1000;
  const d = parseDenoise(
    q("label=3&guidance=0&classifier_scale=2&strength=0.5"),
    withClassifier,
    cap,
  );
  assert.ok(d.ok && d.params.classifierScale === 2);
  const i = parseInpaint(
    q("label=3&guidance=0&classifier_scale=2&n=2&steps=10"),
    withClassifier,
    39,
  );
  assert.equal(i.ok, false);
  const f = parseInterpolate(
    q("from=1&to=2&label=3&guidance=0&classifier_scale=2"),
    withClassifier,
    cap,
  );
  assert.ok(f.ok && f.params.classifierScale === 2);
  const bad = parseInterpolate(q("from=1&to=2&classifier_scale=-2&label=3"), withClassifier, cap);
  assert.equal(bad.ok, false);
  assert.deepEqual((bad as { issues: { path: string }[] }).issues.map((x) => x.path), [
    "classifier_scale",
  ]);
});

Deno.test("OpenAPI: classifier_scale where the card has a classifier, with its recommended scale", () => {
  const limits = { maxWork: 2048, maxUrlLength: 2048, timeoutMs: 1 };
  type Param = { name: string; description: string; schema: { default?: unknown } };
  const params = (
    card: ModelCard,
    path: string,
  ) => (JSON.parse(JSON.stringify(openapi(card, limits))).paths[path].get.parameters as Param[]);
  const names = (card: ModelCard) => params(card, "/generate").map((p) => p.name);
  assert.ok(names(withClassifier).includes("classifier_scale"));
  assert.ok(!names(without).includes("classifier_scale"));
  const p = params(withClassifier, "/generate").find((x) => x.name === "classifier_scale")!;
  assert.equal(p.schema.default, 0);
  assert.match(p.description, /recommended 4/);
  assert.doesNotMatch(p.description, /above t =/);
  assert.ok(params(withClassifier, "/interpolate").some((x) => x.name === "classifier_scale"));
  const weaker = {
    ...withClassifier,
    classifier: { ...classifier, highNoise: { above: 850, factor: 0.5 } },
  };
  const h = params(weaker, "/generate").find((x) => x.name === "classifier_scale")!;
  assert.match(h.description, /calls above t = 850 steer with S × 0\.5/);
});
