/** In-process HTTP tests of every route, parameter and error, on a real engine (tiny model). */
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { encodePng, tileImages } from "../shared/image.ts";
import { createApp } from "./app.ts";
import { createEngine, type Engine } from "./engine.ts";
import { loadModel } from "./model.ts";
import { Queue } from "./queue.ts";
import { generate } from "./sampler.ts";
import { writeTinyModel } from "./testing.ts";

const cardPath = await writeTinyModel({ T: 50, steps: 4, guidance: 1 });
const model = await loadModel(cardPath);
const engine = await createEngine(model, { backend: "wasm", threads: 1 });
const app = createApp({ load: () => Promise.resolve(engine) });

const get = (path: string, init?: RequestInit) => app.request(path, init);
const bytes = async (r: Response) => new Uint8Array(await r.arrayBuffer());

async function errorOf(r: Response, status: number) {
  assert.equal(r.status, status);
  assert.match(r.headers.get("Content-Type") ?? "", /^application\/json/);
  return await r.json() as { error: string; issues?: { path: string; message: string }[] };
}

Deno.test("GET /generate?seed=42 is a PNG with seed, cache, timing and security headers", async () => {
  const r = await get("/generate?seed=42", { headers: { Origin: "https://example.org" } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("Content-Type"), "image/png");
  assert.equal(r.headers.get("X-Seed"), "42");
  assert.match(r.headers.get("ETag")!, /^"[0-9a-f]{32}"$/);
  assert.equal(r.headers.get("Cache-Control"), "public, max-age=31536000, immutable");
  assert.match(r.headers.get("Server-Timing")!, /model;dur=\d+(\.\d+)?;desc="4 runs"/);
  assert.equal(r.headers.get("X-Content-Type-Options"), "nosniff");
  assert.equal(r.headers.get("Access-Control-Allow-Origin"), "*");
  assert.match(r.headers.get("Access-Control-Expose-Headers")!, /X-Seed/);
  assert.equal(r.headers.get("X-Backend"), "wasm");
  const png = decode(await bytes(r));
  assert.deepEqual([png.width, png.height, png.channels], [8, 8, 1]);
});

Deno.test("the PNG is exactly generate() → tileImages → encodePng with the card's defaults", async () => {
  const x = await generate(engine, { seed: 42, steps: 4, eta: 1, n: 1 });
  const want = encodePng(tileImages(x, 1, 1, 8, 1));
  assert.deepEqual(await bytes(await get("/generate?seed=42")), want);
});

Deno.test("spacing picks the chain's timesteps: another image and ETag, = generate({spacing})", async () => {
  const q = "/generate?seed=42&steps=4&format=json";
  const lin = await get(q), trail = await get(q + "&spacing=trailing");
  assert.equal(lin.status, 200);
  assert.equal(trail.status, 200);
  assert.notEqual(lin.headers.get("ETag"), trail.headers.get("ETag"));
  const body = await trail.json() as { data: number[]; params: { spacing: string } };
  assert.equal(body.params.spacing, "trailing");
  const x = await generate(engine, { seed: 42, steps: 4, eta: 1, n: 1, spacing: "trailing" });
  assert.deepEqual(body.data, Array.from(x));
  const linBody = await lin.json() as { data: number[] };
  assert.notDeepEqual(linBody.data, body.data);
});

Deno.test("a random-label card: no label → one class per image from the seed, in the JSON", async () => {
  const m = await loadModel(await writeTinyModel({ T: 50, steps: 4, unlabeled: "random-label" }));
  const e = await createEngine(m, { backend: "wasm", threads: 1 });
  const a = createApp({ load: () => Promise.resolve(e) });
  const body = await (await a.request("/generate?seed=5&n=6&format=json")).json() as {
    labels: number[];
    data: number[];
  };
  assert.equal(body.labels.length, 6);
  assert.ok(body.labels.every((y) => y >= 0 && y < 3));
  const x = await generate(e, { seed: 5, steps: 4, eta: 1, n: 6, label: body.labels });
  assert.deepEqual(body.data, Array.from(x));
  const nullClass = await generate(e, { seed: 5, steps: 4, eta: 1, n: 6 });
  assert.notDeepEqual(body.data, Array.from(nullClass));
  // guidance 0 is the null class and reports no labels.
  const g0 = await (await a.request("/generate?seed=5&n=6&format=json&guidance=0")).json();
  assert.equal(g0.labels, null);
  assert.deepEqual(g0.data, Array.from(nullClass));
});

Deno.test("same query → byte-identical PNG and ETag; other seeds differ", async () => {
  const q = "/generate?seed=7&steps=5&eta=0.5&n=3&scale=2&label=one&guidance=2";
  const [a, b] = [await get(q), await get(q)];
  assert.equal(a.headers.get("ETag"), b.headers.get("ETag"));
  assert.deepEqual(await bytes(a), await bytes(b));
  const c = await get(q.replace("seed=7", "seed=8"));
  assert.notEqual(c.headers.get("ETag"), a.headers.get("ETag"));
  assert.notDeepEqual(await bytes(c), await bytes(await get(q)));
});

Deno.test("a missing seed is random, echoed in X-Seed, and not cached", async () => {
  const r = await get("/generate");
  assert.equal(r.status, 200);
  const seed = r.headers.get("X-Seed")!;
  assert.match(seed, /^\d+$/);
  assert.equal(r.headers.get("Cache-Control"), "no-store");
  assert.deepEqual(await bytes(await get(`/generate?seed=${seed}`)), await bytes(r));
});

Deno.test("If-None-Match with the ETag → 304 without sampling", async () => {
  const r = await get("/generate?seed=3");
  const etag = r.headers.get("ETag")!;
  await r.body?.cancel();
  const runs = engine.runs;
  const again = await get("/generate?seed=3", { headers: { "If-None-Match": `"x", ${etag}` } });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get("ETag"), etag);
  assert.equal(engine.runs, runs);
  const other = await get("/generate?seed=4", { headers: { "If-None-Match": etag } });
  assert.equal(other.status, 200);
  await other.body?.cancel();
});

Deno.test("HEAD /generate has GET's headers, no body, and samples nothing", async () => {
  const runs = engine.runs;
  const r = await get("/generate?seed=42", { method: "HEAD" });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("Content-Type"), "image/png");
  assert.equal(r.headers.get("X-Seed"), "42");
  assert.equal(r.body, null);
  assert.equal(engine.runs, runs);
  const g = await get("/generate?seed=42");
  await g.body?.cancel();
  for (const h of ["ETag", "Cache-Control", "X-Seed", "Access-Control-Allow-Origin"]) {
    assert.equal(r.headers.get(h), g.headers.get(h), h);
  }
  const j = await get("/generate?seed=42&format=json", { method: "HEAD" });
  assert.equal(j.headers.get("Content-Type"), "application/json");
  const bad = await get("/generate?seed=x", { method: "HEAD" });
  assert.equal(bad.status, 400);
  assert.match(bad.headers.get("Content-Type")!, /^application\/json/);
});

Deno.test("n and scale shape the grid", async () => {
  const png = decode(await bytes(await get("/generate?seed=1&n=5&scale=3")));
  // 3 columns × 2 rows of 24-pixel tiles with 3-pixel gaps.
  assert.deepEqual([png.width, png.height], [3 * 24 + 2 * 3, 2 * 24 + 3]);
});

Deno.test("format=json gives NCHW floats in [−1, 1] and the params used", async () => {
  const r = await get("/generate?seed=9&n=2&format=json&label=two");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("Content-Type")!, /^application\/json/);
  const body = await r.json();
  assert.deepEqual(body.params, {
    seed: 9,
    steps: 4,
    spacing: "linspace",
    sampler: "ddim",
    eta: 1,
    n: 2,
    scale: 1,
    label: 2,
    guidance: 1,
    format: "json",
  });
  assert.deepEqual(body.shape, [2, 1, 8, 8]);
  assert.equal(body.backend, "wasm");
  assert.equal(body.data.length, 128);
  assert.ok(body.data.every((v: number) => v >= -1 && v <= 1));
  const png = decode(await bytes(await get("/generate?seed=9&n=2&label=two")));
  assert.deepEqual(png.data, tileImages(body.data, 2, 1, 8).data);
});

Deno.test("labels by name or index agree; guidance 0 equals no label", async () => {
  const named = await bytes(await get("/generate?seed=5&label=two"));
  assert.deepEqual(await bytes(await get("/generate?seed=5&label=2")), named);
  assert.notDeepEqual(await bytes(await get("/generate?seed=5&label=0")), named);
  assert.deepEqual(
    await bytes(await get("/generate?seed=5&label=two&guidance=0")),
    await bytes(await get("/generate?seed=5")),
  );
});

Deno.test("guidance ∉ {0, 1} runs cond + uncond as one batch per step", async () => {
  const runs = engine.runs;
  const r = await get("/generate?seed=5&label=1&guidance=3&steps=6");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("Server-Timing")!, /desc="6 runs"/);
  assert.equal(engine.runs - runs, 6);
  const plain = await get("/generate?seed=5&label=1&guidance=1&steps=6");
  assert.notDeepEqual(await bytes(r), await bytes(plain));
});

Deno.test("invalid queries → 400 JSON naming the parameter", async () => {
  const cases: [string, string, RegExp][] = [
    ["seed=-1", "seed", /integer/],
    ["seed=4294967296", "seed", /≤ 4294967295/],
    ["steps=0", "steps", /≥ 1/],
    ["steps=51", "steps", /≤ 50/],
    ["eta=2", "eta", /≤ 1/],
    ["n=65", "n", /≤ 64/],
    ["scale=17", "scale", /≤ 16/],
    ["label=seven", "label", /unknown label/],
    ["guidance=-1", "guidance", /≥ 0/],
    ["format=gif", "format", /png or json/],
    ["size=3", "size", /unknown parameter/],
    ["seed=1&seed=2", "seed", /more than once/],
    ["n=64&steps=50&label=1&guidance=2", "n", /exceeds the cap of 2048 \(MAX_WORK\)/],
  ];
  for (const [q, path, message] of cases) {
    const body = await errorOf(await get(`/generate?${q}`), 400);
    assert.equal(body.error, "invalid query parameters");
    assert.ok(
      body.issues!.some((i) => i.path === path && message.test(i.message)),
      `${q}: ${JSON.stringify(body.issues)}`,
    );
  }
});

Deno.test("the work cap is configurable", async () => {
  const small = createApp({ load: () => Promise.resolve(engine), maxWork: 10 });
  const body = await errorOf(await small.request("/generate?n=3&steps=4"), 400);
  assert.match(body.issues![0].message, /3 × 4 × 1 = 12 exceeds the cap of 10/);
  const ok = await small.request("/generate?n=2&steps=4&seed=1");
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
});

Deno.test("other methods → 405 JSON with Allow; unknown paths → 404 JSON", async () => {
  for (const [method, path] of [["POST", "/generate"], ["PUT", "/model"], ["DELETE", "/"]]) {
    const r = await get(path, { method });
    const body = await errorOf(r, 405);
    assert.match(body.error, new RegExp(`method ${method} not allowed`));
    assert.match(r.headers.get("Allow")!, /GET, HEAD/);
  }
  assert.match((await errorOf(await get("/nope"), 404)).error, /not found: \/nope/);
});

Deno.test("CORS preflight on /generate", async () => {
  const r = await get("/generate", {
    method: "OPTIONS",
    headers: { Origin: "https://example.org", "Access-Control-Request-Method": "GET" },
  });
  assert.equal(r.status, 204);
  assert.equal(r.headers.get("Access-Control-Allow-Origin"), "*");
});

Deno.test("GET /model, /healthz, /openapi.json", async () => {
  assert.deepEqual(await (await get("/model")).json(), model.card);
  const h = await get("/healthz");
  assert.equal(h.status, 200);
  assert.deepEqual(await h.json(), {
    status: "ready",
    backend: "wasm",
    model: "tiny-cond",
    runs: engine.runs,
    queue: { inFlight: 0, waiting: 0 },
  });
  const doc = await (await get("/openapi.json")).json();
  assert.equal(doc.openapi, "3.1.0");
  const params = doc.paths["/generate"].get.parameters;
  assert.deepEqual(params.map((p: { name: string }) => p.name), [
    "seed",
    "steps",
    "spacing",
    "sampler",
    "eta",
    "n",
    "scale",
    "label",
    "guidance",
    "format",
  ]);
  assert.equal(params[1].schema.maximum, 50);
  assert.equal(params[1].schema.default, 4);
  const gen = doc.paths["/generate"].get;
  assert.match(gen.description, /CORS: any origin .*X-Seed, ETag and Server-Timing are exposed/);
  assert.match(gen.description, /≤ 2048/);
  for (const status of ["400", "413", "414", "500", "503", "504"]) {
    assert.ok(gen.responses[status]?.content?.["application/json"], status);
  }
  assert.match(gen.responses["414"].description, /2048 characters/);
  assert.match(gen.responses["504"].description, /120000 ms/);
});

Deno.test("the page: strict CSP, no inline script, script and style as files", async () => {
  const r = await get("/");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("Content-Type")!, /^text\/html/);
  const csp = r.headers.get("Content-Security-Policy")!;
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /unsafe/);
  assert.equal(r.headers.get("X-Content-Type-Options"), "nosniff");
  const html = await r.text();
  assert.match(html, /<script type="module" src="\/app\.js"><\/script>/);
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, "inline script");
  assert.doesNotMatch(html, /<style|style="/, "inline style");
  const js = await get("/app.js");
  assert.equal(js.headers.get("Content-Type"), "text/javascript; charset=utf-8");
  assert.match(await js.text(), /\/generate\?/);
  assert.match((await get("/app.css")).headers.get("Content-Type")!, /^text\/css/);
});

Deno.test("/healthz is not-ready while loading and the model loads once", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  let loads = 0;
  const slow = createApp({
    load: async () => {
      loads++;
      await gate;
      return engine;
    },
  });
  const h = await slow.request("/healthz");
  assert.deepEqual(await errorOf(h, 503), { status: "not-ready", reason: "model loading" });
  const pending = slow.request("/generate?seed=42");
  release();
  const r = await pending;
  assert.deepEqual(await bytes(r), await bytes(await get("/generate?seed=42")));
  assert.equal((await slow.request("/healthz")).status, 200);
  assert.equal(loads, 1);
});

Deno.test("a model that fails to load → /generate 503 JSON with the reason; /healthz error", async () => {
  const broken = createApp({
    load: async () => createEngine(await loadModel("/nonexistent/model.json")),
  });
  const body = await errorOf(await broken.request("/generate?seed=1"), 503);
  assert.match(body.error, /^model failed to load: \/nonexistent\/model\.json: cannot read/);
  const h = await errorOf(await broken.request("/healthz"), 503);
  assert.equal((h as unknown as { status: string }).status, "error");
  assert.equal((await errorOf(await broken.request("/model"), 503)).error, body.error);
  // With the verified model given, the card routes still answer; /generate does not.
  const known = createApp({ model, backend: "wasm", load: () => Promise.reject(new Error("x")) });
  assert.equal(
    (await errorOf(await known.request("/generate?seed=1"), 503)).error,
    "model failed to load: x",
  );
  const head = await known.request("/generate?seed=1", { method: "HEAD" });
  assert.equal(head.status, 503);
  assert.equal(head.body, null);
  assert.deepEqual(await (await known.request("/model")).json(), model.card);
  assert.equal((await known.request("/openapi.json")).status, 200);
});

Deno.test("while the engine loads, HEAD /generate, /model and 400s answer without waiting", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const slow = createApp({ model, backend: "wasm", load: () => gate.then(() => engine) });
  const runs = engine.runs;
  const head = await slow.request("/generate?seed=42", { method: "HEAD" });
  assert.equal(head.status, 200);
  const ready = await get("/generate?seed=42", { method: "HEAD" });
  for (const h of ["ETag", "Cache-Control", "X-Seed", "Content-Type"]) {
    assert.equal(head.headers.get(h), ready.headers.get(h), h);
  }
  assert.deepEqual(await (await slow.request("/model")).json(), model.card);
  assert.equal((await slow.request("/openapi.json")).status, 200);
  assert.equal(
    (await errorOf(await slow.request("/generate?steps=0"), 400)).issues![0].path,
    "steps",
  );
  assert.equal((await slow.request("/healthz")).status, 503);
  // A GET waits for the engine.
  const pending = slow.request("/generate?seed=42");
  release();
  assert.deepEqual(await bytes(await pending), await bytes(await get("/generate?seed=42")));
  assert.equal(engine.runs - runs, 2 * 4);
});

Deno.test("a generation over the time limit is aborted between steps → 504 JSON", async () => {
  const queue = new Queue({ maxInFlight: 1, maxWaiting: 1 });
  const a = createApp({ load: () => Promise.resolve(engine), queue, timeoutMs: 1 });
  const runs = engine.runs;
  const r = await a.request("/generate?seed=1&steps=50&n=4");
  const body = await errorOf(r, 504);
  assert.match(body.error, /^timed out: not done within 1 ms \(REQUEST_TIMEOUT_MS\)/);
  assert.equal(r.headers.get("Cache-Control"), "no-store");
  assert.ok(engine.runs - runs < 50, `ran ${engine.runs - runs} of 50 steps`);
  assert.equal(queue.inFlight, 0);
  // A time limit that is not reached changes nothing.
  const b = createApp({ load: () => Promise.resolve(engine), timeoutMs: 1e9 });
  assert.deepEqual(
    await bytes(await b.request("/generate?seed=42")),
    await bytes(await get("/generate?seed=42")),
  );
});

Deno.test("limits: a request target over 2048 characters → 414 JSON", async () => {
  const r = await get(`/generate?seed=1&label=${"x".repeat(2040)}`);
  assert.match(
    (await errorOf(r, 414)).error,
    /^URI too long: 2063 characters of path and query; the limit is 2048$/,
  );
  assert.equal((await get(`/generate?seed=1&label=${"x".repeat(2020)}`)).status, 400);
});

/** The real engine, failing the second step of any request for n = 13 images. */
function flaky(e: Engine): Engine {
  return {
    ...e,
    get runs() {
      return e.runs;
    },
    epsModel(n, label, guidance, timing) {
      const inner = e.epsModel(n, label, guidance, timing);
      let calls = 0;
      return (x, t) => {
        if (++calls === 2 && x.length === 13 * 64) throw new Error("injected ORT failure");
        return inner(x, t);
      };
    },
  };
}

Deno.test("a sampling error → 500 JSON; the server keeps serving", async () => {
  const queue = new Queue({ maxInFlight: 1, maxWaiting: 0 });
  const f = createApp({ load: () => Promise.resolve(flaky(engine)), queue });
  const body = await errorOf(await f.request("/generate?seed=1&n=13"), 500);
  assert.match(body.error, /sampling failed: injected ORT failure/);
  assert.equal(queue.inFlight, 0);
  const ok = await f.request("/generate?seed=42");
  assert.equal(ok.status, 200);
  assert.deepEqual(await bytes(ok), await bytes(await get("/generate?seed=42")));
});

/** Start a long generation on `a` and resolve once its first step has run. */
async function started(a: ReturnType<typeof createApp>, signal: AbortSignal) {
  const runs = engine.runs;
  const response = a.request(new Request("http://x/generate?seed=1&steps=50&n=4", { signal }));
  while (engine.runs === runs) await new Promise((r) => setTimeout(r, 1));
  return { response };
}

Deno.test("a client disconnect cancels the generation and frees the slot", async () => {
  const queue = new Queue({ maxInFlight: 1, maxWaiting: 0 });
  const a = createApp({ load: () => Promise.resolve(engine), queue });
  const ctl = new AbortController();
  const before = engine.runs;
  const { response } = await started(a, ctl.signal);
  ctl.abort();
  await (await response).body?.cancel();
  assert.equal(queue.inFlight, 0);
  assert.ok(engine.runs - before < 50, `ran ${engine.runs - before} of 50 steps`);
});

Deno.test("busy → 503 with Retry-After", async () => {
  const queue = new Queue({ maxInFlight: 1, maxWaiting: 0 });
  const a = createApp({ load: () => Promise.resolve(engine), queue });
  const ctl = new AbortController();
  const first = (await started(a, ctl.signal)).response;
  assert.equal(queue.inFlight, 1);
  const r = await a.request("/generate?seed=2");
  const body = await errorOf(r, 503);
  assert.match(body.error, /busy/);
  assert.match(r.headers.get("Retry-After")!, /^[1-9]\d*$/);
  assert.equal(r.headers.get("Cache-Control"), "no-store");
  ctl.abort();
  await (await first).body?.cancel();
  assert.equal(queue.inFlight, 0);
});

Deno.test("a card's nullClassSteps: null-class requests default to them, in the PNG, the JSON and the OpenAPI doc", async () => {
  const m = await loadModel(
    await writeTinyModel({ T: 50, steps: 4, guidance: 1, nullClassSteps: 6 }),
  );
  const e = await createEngine(m, { backend: "wasm", threads: 1 });
  const a = createApp({ load: () => Promise.resolve(e) });
  const json = async (q: string) => (await (await a.request(`/generate?${q}`)).json()).params;
  assert.equal((await json("seed=1&guidance=0&format=json")).steps, 6);
  assert.equal((await json("seed=1&format=json")).steps, 6); // no label on a null-class card
  assert.equal((await json("seed=1&label=one&format=json")).steps, 4);
  const png = async (q: string) =>
    new Uint8Array(await (await a.request(`/generate?${q}`)).arrayBuffer());
  assert.deepEqual(await png("seed=3&guidance=0"), await png("seed=3&guidance=0&steps=6"));
  assert.notDeepEqual(await png("seed=3&guidance=0"), await png("seed=3&guidance=0&steps=4"));
  const doc = await (await a.request("/openapi.json")).json();
  const steps = doc.paths["/generate"].get.parameters[1];
  assert.equal(steps.schema.default, 4);
  assert.match(
    steps.description,
    /default 6 for a request that samples the null class \(guidance 0, or no label\), 4 otherwise/,
  );
});
