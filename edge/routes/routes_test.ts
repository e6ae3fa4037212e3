/**
 * The image routes through the real app (app.request) on a real engine running a tiny exported
 * model in onnxruntime-web: answers, headers, determinism, work counted in model calls, and the
 * refusals (4xx JSON naming the parameter or part).
 */
import assert from "node:assert/strict";
import { decode, decodeApng } from "fast-png";
import { encodePng } from "../../shared/image.ts";
import { grayPng } from "../../shared/png_testing.ts";
import { createApp } from "../app.ts";
import { createEngine } from "../engine.ts";
import { loadModel } from "../model.ts";
import { writeTinyModel } from "../testing.ts";
import { MAX_BODY_BYTES } from "./upload.ts";

const STEPS = 4;
const engine = await createEngine(
  await loadModel(await writeTinyModel({ T: 50, steps: STEPS, unlabeled: "random-label" })),
  { backend: "wasm", threads: 1 },
);
const app = createApp({ load: () => Promise.resolve(engine), maxWork: 64 });

const digit = grayPng(8, 8, Array.from({ length: 64 }, (_, i) => ((i * 37) % 7) * 40));

const post = (path: string, body: Uint8Array | string, type = "image/png") =>
  app.request(path, {
    method: "POST",
    body: body as BodyInit,
    headers: { "Content-Type": type },
  });

function form(parts: Record<string, Uint8Array | string>): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(parts)) {
    f.append(
      k,
      typeof v === "string" ? v : new Blob([v as BlobPart], { type: "image/png" }),
      "x.png",
    );
  }
  return f;
}

const inpaintReq = (q: string, parts: Record<string, Uint8Array | string>) =>
  app.request(`/inpaint?${q}`, { method: "POST", body: form(parts) });

async function issues(r: Response, status: number): Promise<string[]> {
  assert.equal(r.status, status, await r.clone().text());
  assert.match(r.headers.get("Content-Type") ?? "", /^application\/json/);
  const body = await r.json();
  assert.equal(typeof body.error, "string");
  return (body.issues ?? []).map((i: { path: string }) => i.path);
}

const pixels = async (r: Response) => decode(new Uint8Array(await r.arrayBuffer())).data;

Deno.test("POST /denoise: a PNG, /generate's headers, deterministic, runs `steps` model calls", async () => {
  const runs = engine.runs;
  const r = await post("/denoise?seed=3&strength=0.5&steps=3&scale=2", digit);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("Content-Type"), "image/png");
  assert.equal(r.headers.get("X-Seed"), "3");
  assert.match(r.headers.get("Server-Timing") ?? "", /model;dur=.*desc="3 runs"/);
  assert.equal(r.headers.get("Access-Control-Allow-Origin"), "*");
  const tag = r.headers.get("ETag");
  assert.match(tag ?? "", /^"[0-9a-f]{32}"$/);
  const png = decode(new Uint8Array(await r.arrayBuffer()));
  assert.deepEqual([png.width, png.height, png.channels], [16, 16, 1]);
  assert.equal(engine.runs - runs, 3);
  // Same input and query: same bytes and ETag; another input or strength: another ETag.
  const again = await post("/denoise?seed=3&strength=0.5&steps=3&scale=2", digit);
  assert.equal(again.headers.get("ETag"), tag);
  assert.deepEqual(await pixels(again), png.data);
  const other = await post(
    "/denoise?seed=3&strength=0.5&steps=3&scale=2",
    grayPng(8, 8, new Uint8Array(64)),
  );
  assert.notEqual(other.headers.get("ETag"), tag);
  await other.body?.cancel();
  const weaker = await post("/denoise?seed=3&strength=0.4&steps=3&scale=2", digit);
  assert.notEqual(weaker.headers.get("ETag"), tag);
  await weaker.body?.cancel();
  // Defaults: strength 0.5, steps ⌈0.5 × card steps⌉ = 2; any size and colour type in.
  const rgba = encodePng({
    width: 40,
    height: 30,
    channels: 4,
    data: new Uint8Array(4800).fill(200),
  });
  const d = await post("/denoise?seed=1", rgba);
  assert.match(d.headers.get("Server-Timing") ?? "", /desc="2 runs"/);
  assert.deepEqual([decode(new Uint8Array(await d.arrayBuffer())).width], [8]);
  // JSON: floats of the model's shape, the strength in the params.
  const j = await (await post("/denoise?seed=1&format=json&n=2", digit)).json();
  assert.deepEqual(j.shape, [2, 1, 8, 8]);
  assert.equal(j.params.strength, 0.5);
});

Deno.test("POST /denoise refuses bad queries and bodies with 4xx JSON, without sampling", async () => {
  const runs = engine.runs;
  for (const s of ["0", "-0.1", "1.5", "abc", "", "NaN", "1e400"]) {
    assert.deepEqual(
      await issues(await post(`/denoise?strength=${s}`, digit), 400),
      ["strength"],
      s,
    );
  }
  assert.deepEqual(await issues(await post("/denoise?strength=0.5&strength=0.6", digit), 400), [
    "strength",
  ]);
  // strength 0.1 of T = 50: t₀ = 4, so at most 5 steps.
  const steps = await post("/denoise?strength=0.1&steps=6", digit);
  assert.deepEqual(await issues(steps, 400), ["steps"]);
  assert.deepEqual(await issues(await post("/denoise?n=64&steps=2", digit), 400), ["n"]);
  assert.deepEqual(await issues(await post("/denoise?bogus=1", digit), 400), ["bogus"]);
  assert.deepEqual(await issues(await post("/denoise", "hello", "text/plain"), 415), [
    "Content-Type",
  ]);
  assert.deepEqual(await issues(await post("/denoise", digit, "image/jpeg"), 415), [
    "Content-Type",
  ]);
  assert.deepEqual(await issues(await post("/denoise", digit.subarray(0, 40)), 400), ["body"]);
  assert.deepEqual(await issues(await post("/denoise", new Uint8Array(0)), 400), ["body"]);
  const big = new Uint8Array(MAX_BODY_BYTES + 1);
  big.set(digit);
  assert.deepEqual(await issues(await post("/denoise", big), 413), ["body"]);
  // A stream without Content-Length is cut off at the limit too.
  const stream = new ReadableStream({
    pull(ctl) {
      ctl.enqueue(new Uint8Array(256 * 1024));
    },
  });
  assert.equal(
    (await app.request("/denoise", {
      method: "POST",
      body: stream,
      headers: { "Content-Type": "image/png" },
      // @ts-ignore: Deno's fetch types know duplex
      duplex: "half",
    })).status,
    413,
  );
  const huge = digit.slice();
  new DataView(huge.buffer).setUint32(16, 60_000); // width in IHDR (CRC now wrong too)
  assert.deepEqual(await issues(await post("/denoise", huge), 400), ["body"]);
  assert.equal((await app.request("/denoise")).status, 405);
  assert.equal(
    (await app.request("/denoise", {
      method: "OPTIONS",
      headers: { Origin: "https://x", "Access-Control-Request-Method": "POST" },
    })).status,
    204,
  );
  assert.equal(engine.runs, runs);
});

Deno.test("POST /inpaint: kept pixels come back unchanged; white is regenerated", async () => {
  const img = Array.from({ length: 64 }, (_, i) => (i * 29) % 256);
  const mask = Array.from({ length: 64 }, (_, i) => (i % 8 >= 4 ? 255 : 0));
  for (
    const q of [
      "seed=4",
      "seed=4&sampler=dpm%2B%2B2m",
      "seed=4&resample=3&sampler=ddpm",
      "seed=5&n=2",
    ]
  ) {
    const runs = engine.runs;
    const r = await inpaintReq(q, { image: grayPng(8, 8, img), mask: grayPng(8, 8, mask) });
    assert.equal(r.status, 200, q);
    const out = await pixels(r);
    const n = q.includes("n=2") ? 2 : 1;
    for (let k = 0; k < n; k++) {
      for (let p = 0; p < 64; p++) {
        const v = out[(p >> 3) * (n * 8 + n - 1) + k * 9 + (p & 7)];
        if (mask[p] === 0) assert.equal(v, img[p], `${q}: kept pixel ${p}`);
      }
    }
    const want = q.includes("resample=3") ? STEPS + (STEPS - 1) * 2 : STEPS;
    assert.equal(engine.runs - runs, want, q);
  }
});

Deno.test("POST /inpaint refuses missing parts, bad parts and bad resampling", async () => {
  const g = grayPng(8, 8, new Uint8Array(64));
  assert.deepEqual(await issues(await inpaintReq("", { image: g }), 400), ["mask"]);
  assert.deepEqual(await issues(await inpaintReq("", { mask: g }), 400), ["image"]);
  assert.deepEqual(await issues(await inpaintReq("", { image: g, mask: "white" }), 400), ["mask"]);
  assert.deepEqual(
    await issues(await inpaintReq("", { image: g, mask: g, extra: g }), 400),
    ["extra"],
  );
  assert.deepEqual(await issues(await inpaintReq("", { image: g, mask: g.subarray(0, 30) }), 400), [
    "mask",
  ]);
  assert.deepEqual(
    await issues(await inpaintReq("resample=2&sampler=dpm%2B%2B2m", { image: g, mask: g }), 400),
    ["resample"],
  );
  assert.deepEqual(await issues(await inpaintReq("resample=11", { image: g, mask: g }), 400), [
    "resample",
  ]);
  assert.deepEqual(await issues(await inpaintReq("resample=10&n=3", { image: g, mask: g }), 400), [
    "n",
  ]);
  assert.deepEqual(await issues(await post("/inpaint", g), 415), ["Content-Type"]);
  const broken = await app.request("/inpaint", {
    method: "POST",
    body: '--xx\r\nContent-Disposition: form-data; name="image"\r\n\r\nabc',
    headers: { "Content-Type": "multipart/form-data; boundary=xx" },
  });
  // Deno's parser takes the unterminated part as a text field: refused as not a file part.
  assert.deepEqual(await issues(broken, 400), ["image"]);
  const unbounded = await app.request("/inpaint", {
    method: "POST",
    body: "whatever",
    headers: { "Content-Type": "multipart/form-data" },
  });
  assert.deepEqual(await issues(unbounded, 400), ["body"]);
  const typed = new FormData();
  typed.append("image", new Blob([g as BlobPart], { type: "image/gif" }), "a.gif");
  typed.append("mask", new Blob([g as BlobPart], { type: "image/png" }), "m.png");
  assert.deepEqual(
    await issues(await app.request("/inpaint", { method: "POST", body: typed }), 415),
    [
      "image",
    ],
  );
});

Deno.test("GET /interpolate: the ends are /generate?sampler=ddim&eta=0 of each seed", async () => {
  const F = 5;
  const r = await app.request(`/interpolate?from=11&to=12&frames=${F}&scale=2`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("Content-Type"), "image/png");
  const strip = decode(new Uint8Array(await r.arrayBuffer()));
  assert.deepEqual([strip.width, strip.height], [F * 16 + (F - 1) * 2, 16]);
  for (const [seed, f] of [[11, 0], [12, F - 1]]) {
    const g = decode(
      new Uint8Array(
        await (await app.request(`/generate?seed=${seed}&sampler=ddim&eta=0&scale=2`))
          .arrayBuffer(),
      ),
    );
    let worst = 0;
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        worst = Math.max(
          worst,
          Math.abs(strip.data[y * strip.width + f * 18 + x] - g.data[y * 16 + x]),
        );
      }
    }
    assert.ok(worst <= 1, `frame ${f} vs seed ${seed}: max |Δ| ${worst}`);
  }
  const a = await app.request(`/interpolate?from=11&to=12&frames=${F}&format=apng`);
  assert.equal(a.headers.get("Content-Type"), "image/apng");
  const apng = decodeApng(new Uint8Array(await a.arrayBuffer()));
  assert.equal(apng.frames.length, F);
  // HEAD and 304 answer from the query.
  const tag = r.headers.get("ETag")!;
  const runs = engine.runs;
  assert.equal(
    (await app.request(`/interpolate?from=11&to=12&frames=${F}&scale=2`, {
      headers: { "If-None-Match": tag },
    })).status,
    304,
  );
  assert.equal((await app.request(`/interpolate?from=11&to=12`, { method: "HEAD" })).status, 200);
  assert.equal(engine.runs, runs);
});

Deno.test("GET /interpolate refuses bad parameters", async () => {
  const cases: [string, string[]][] = [
    ["to=2", ["from"]],
    ["from=1", ["to"]],
    ["from=1&to=2&frames=1", ["frames"]],
    ["from=1&to=2&frames=33", ["frames"]],
    ["from=x&to=2", ["from"]],
    ["from=1&to=2&seed=3", ["seed"]],
    ["from=1&to=2&sampler=ddpm", ["sampler"]],
    ["from=1&to=2&eta=1", ["eta"]],
    ["from=1&to=2&frames=32&steps=3", ["frames"]],
    ["from=1&from=2&to=3", ["from"]],
  ];
  for (const [q, paths] of cases) {
    assert.deepEqual(await issues(await app.request(`/interpolate?${q}`), 400), paths, q);
  }
});

Deno.test("GET /generate?format=apng: one x̂₀ frame per step, the last the PNG's image", async () => {
  for (
    const q of [
      "seed=8&n=3&scale=2",
      "seed=9&sampler=dpm%2B%2B2m-sde&steps=3",
      "seed=2&label=two&guidance=2",
    ]
  ) {
    const r = await app.request(`/generate?${q}&format=apng`);
    assert.equal(r.status, 200, q);
    assert.equal(r.headers.get("Content-Type"), "image/apng");
    assert.equal(r.headers.get("X-Seed"), /seed=(\d+)/.exec(q)![1]);
    const apng = decodeApng(new Uint8Array(await r.arrayBuffer()));
    const steps = /steps=(\d+)/.exec(q)?.[1] ?? STEPS;
    assert.equal(apng.frames.length, Number(steps), q);
    const png = await pixels(await app.request(`/generate?${q}`));
    assert.deepEqual(apng.frames.at(-1)!.data, png, q);
    assert.notDeepEqual(apng.frames[0].data, png, q);
  }
  const tag = (await app.request("/generate?seed=8&format=apng", { method: "HEAD" })).headers.get(
    "ETag",
  )!;
  assert.notEqual(
    tag,
    (await app.request("/generate?seed=8", { method: "HEAD" })).headers.get("ETag"),
  );
  assert.equal(
    (await app.request("/generate?seed=8&format=apng", { headers: { "If-None-Match": tag } }))
      .status,
    304,
  );
  assert.deepEqual(await issues(await app.request("/generate?format=apng&n=64"), 400), ["n"]);
  assert.deepEqual(await issues(await app.request("/generate?format=apng&format=png"), 400), [
    "format",
  ]);
  assert.deepEqual(await issues(await app.request("/generate?format=gif"), 400), ["format"]);
  const h = await (await app.request("/healthz")).json();
  assert.deepEqual(h.queue, { inFlight: 0, waiting: 0 });
});

Deno.test("OpenAPI documents the image routes with their limits", async () => {
  const doc = await (await app.request("/openapi.json")).json();
  for (
    const [path, method] of [["/denoise", "post"], ["/inpaint", "post"], ["/interpolate", "get"]]
  ) {
    assert.ok(doc.paths[path]?.[method], `${method} ${path}`);
    for (const s of ["400", "503"]) assert.ok(doc.paths[path][method].responses[s], `${path} ${s}`);
  }
  const names = (path: string, m: string) =>
    doc.paths[path][m].parameters.map((p: { name: string }) => p.name);
  assert.ok(names("/denoise", "post").includes("strength"));
  assert.ok(names("/inpaint", "post").includes("resample"));
  assert.deepEqual(names("/interpolate", "get").slice(0, 3), ["from", "to", "frames"]);
  assert.deepEqual(
    doc.paths["/inpaint"].post.requestBody.content["multipart/form-data"].schema.required,
    ["image", "mask"],
  );
  const format = doc.paths["/generate"].get.parameters.find((p: { name: string }) =>
    p.name === "format"
  );
  assert.deepEqual(format.schema.enum, ["png", "json", "apng"]);
  assert.match(doc.paths["/denoise"].post.description, new RegExp(`${MAX_BODY_BYTES} bytes`));
});
