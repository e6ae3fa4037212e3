/**
 * A real server: `deno serve` in a subprocess with only --allow-net --allow-read --allow-env (the
 * Deno Deploy permissions), configured by environment variables, on a loopback port.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { decode } from "fast-png";
import { encodePng, tileImages } from "../shared/image.ts";
import { createEngine } from "./engine.ts";
import { DEFAULT_MODEL_CARD, loadModel, sha256Hex } from "./model.ts";
import { generate } from "./sampler.ts";
import { exitOrServe, silentServer, spawnServer, startServer, writeTinyModel } from "./testing.ts";

const cardPath = await writeTinyModel({ T: 200, steps: 4 });

Deno.test("deno serve with Deploy permissions serves the same bytes as in-process", async () => {
  const server = await startServer({ MODEL: cardPath });
  try {
    const r = await fetch(`${server.url}/generate?seed=42&n=4&scale=2`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("Content-Type"), "image/png");
    assert.equal(r.headers.get("X-Seed"), "42");
    assert.equal(r.headers.get("Cache-Control"), "public, max-age=31536000, immutable");
    assert.match(r.headers.get("Server-Timing")!, /model;dur=/);
    const served = new Uint8Array(await r.arrayBuffer());

    const engine = await createEngine(await loadModel(cardPath), { backend: "wasm", threads: 1 });
    const x = await generate(engine, { seed: 42, steps: 4, eta: 1, n: 4 });
    assert.deepEqual(served, encodePng(tileImages(x, 4, 1, 8, 2)));

    const head = await fetch(`${server.url}/generate?seed=42&n=4&scale=2`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("ETag"), r.headers.get("ETag"));
    assert.equal((await head.arrayBuffer()).byteLength, 0);

    const bad = await fetch(`${server.url}/generate?steps=201`);
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).issues[0].path, "steps");

    // Limits over the wire: long URIs → 414, GET bodies → 413, both JSON.
    const long = await fetch(`${server.url}/generate?seed=1&${"x".repeat(3000)}=1`);
    assert.equal(long.status, 414);
    assert.match((await long.json()).error, /URI too long: \d+ characters .* limit is 2048/);
    const longPath = await fetch(`${server.url}/${"a".repeat(8000)}`);
    assert.equal(longPath.status, 414);
    await longPath.body?.cancel();
    const withBody = await raw(
      server.url,
      "GET /generate?seed=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" +
        "Connection: close\r\n\r\nhello",
    );
    assert.equal(withBody.status, 413, withBody.text);
    assert.match(withBody.text, /request body not accepted/);
    // A Host header that makes no URL → 400 JSON (not a 500).
    const badHost = await raw(
      server.url,
      "GET /model HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
    );
    assert.equal(badHost.status, 400, badHost.text);
    assert.match(badHost.text, /Host header/);

    // A client that goes away stops its generation: 200 steps are not all run.
    const health = async () => await (await fetch(`${server.url}/healthz`)).json();
    const before = (await health()).runs;
    const ctl = new AbortController();
    // (8 × 200 = 1600 is within the default work cap of 2048.)
    let settled: Response | Error | undefined;
    const pending = fetch(`${server.url}/generate?seed=1&steps=200&n=8`, { signal: ctl.signal })
      .then((r) => settled = r, (e) => settled = e);
    while ((await health()).runs === before) {
      assert.equal(settled, undefined, "the generation answered before it ran");
      await new Promise((r) => setTimeout(r, 20));
    }
    ctl.abort();
    assert.equal(((await pending) as Error).name, "AbortError");
    let h = await health();
    while (h.queue.inFlight > 0) {
      await new Promise((r) => setTimeout(r, 20));
      h = await health();
    }
    console.log(`ran ${h.runs - before} of 200 steps before the disconnect took effect`);
    assert.ok(h.runs - before < 200, `ran ${h.runs - before} of 200 steps after the disconnect`);
    // And the server keeps serving.
    const again = await fetch(`${server.url}/generate?seed=42&n=4&scale=2`);
    assert.deepEqual(new Uint8Array(await again.arrayBuffer()), served);
  } finally {
    await server.close();
  }
});

/** Send raw HTTP/1.1 and return the status line and the rest. */
async function raw(url: string, request: string): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  await conn.write(new TextEncoder().encode(request));
  const chunks: Uint8Array[] = [];
  for await (const chunk of conn.readable) chunks.push(chunk);
  const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  return { status: Number(text.split(" ")[1]), text };
}

// Start-up faults: the server must refuse to start, with one line naming the file and reason.
const modelDir = dirname(cardPath);
const goodCard = JSON.parse(await Deno.readTextFile(cardPath));
const goodOnnx = await Deno.readFile(join(modelDir, "model.onnx"));

/** A model dir with the card edited and/or other ONNX bytes (null: no ONNX file). */
async function variant(
  edit: (card: typeof goodCard) => void,
  onnx: Uint8Array | null = goodOnnx,
): Promise<string> {
  const d = await Deno.makeTempDir({ prefix: "ddpm-edge-fault-" });
  const card = structuredClone(goodCard);
  edit(card);
  if (onnx) await Deno.writeFile(join(d, "model.onnx"), onnx);
  await Deno.writeTextFile(join(d, "model.json"), JSON.stringify(card));
  return join(d, "model.json");
}

Deno.test("start-up faults: no serving, exit 1, one stderr line naming file and reason", async () => {
  const flipped = goodOnnx.slice();
  flipped[flipped.length >> 1] ^= 0xff;
  const silent = silentServer();
  const cases: [string, Record<string, string>, RegExp][] = [
    [
      "missing card",
      { MODEL: "/nonexistent/model.json" },
      /\/nonexistent\/model\.json: cannot read/,
    ],
    [
      "missing ONNX",
      { MODEL: await variant(() => {}, null) },
      /ddpm-edge-fault-\w+\/model\.onnx: cannot read/,
    ],
    [
      "truncated ONNX",
      { MODEL: await variant(() => {}, goodOnnx.subarray(0, 1000)) },
      /\/model\.onnx: 1000 bytes, card says \d+/,
    ],
    [
      "corrupt ONNX (hash mismatch)",
      { MODEL: await variant(() => {}, flipped) },
      /\/model\.onnx: SHA-256 [0-9a-f]{64} does not match the card's [0-9a-f]{64}/,
    ],
    [
      "card failing the schema",
      { MODEL: await variant((c) => (c.sampling.steps = -1, delete c.onnx.sha256)) },
      /\/model\.json: not a valid model card: sampling\.steps: .*; onnx\.sha256: /,
    ],
    [
      "card that is not JSON",
      { MODEL: await variant(() => {}).then(async (p) => (await Deno.writeTextFile(p, "{"), p)) },
      /\/model\.json: not JSON: /,
    ],
    ["bad variable", { MODEL: cardPath, REQUEST_TIMEOUT_MS: "0" }, /REQUEST_TIMEOUT_MS must be/],
    [
      "bad fetch timeout",
      { MODEL: cardPath, MODEL_FETCH_TIMEOUT_MS: "soon" },
      /MODEL_FETCH_TIMEOUT_MS must be an integer ≥ 1, got "soon"/,
    ],
    [
      "MODEL URL that accepts and never answers",
      { MODEL: `${silent.url}/m/model.json`, MODEL_FETCH_TIMEOUT_MS: "500" },
      new RegExp(
        `^ddpm-edge: ${silent.url}/m/model\\.json: cannot read: no complete answer within 500 ms ` +
          `\\(MODEL_FETCH_TIMEOUT_MS\\)$`,
      ),
    ],
  ];
  try {
    await Promise.all(cases.map(async ([what, env, reason]) => {
      const server = spawnServer(env);
      const status = await exitOrServe(server);
      if (!status) await server.close();
      assert.ok(status, `${what}: the server started`);
      assert.equal(status.code, 1, what);
      const ours = server.stderr().split("\n").filter((l) => l.startsWith("ddpm-edge:"));
      assert.equal(ours.length, 1, `${what}: ${server.stderr()}`);
      assert.match(ours[0], reason, what);
    }));
    assert.equal(silent.accepted(), 1, "the MODEL request reached the silent listener");
  } finally {
    silent.close();
  }
});

Deno.test("an ONNX file matching its card that ORT cannot load: /healthz error, /generate 503", async () => {
  const garbage = new TextEncoder().encode("this is not an ONNX model ".repeat(40));
  const sha256 = await sha256Hex(garbage);
  const path = await variant(
    (c) => (c.onnx.bytes = garbage.byteLength, c.onnx.sha256 = sha256),
    garbage,
  );
  const server = spawnServer({ MODEL: path });
  try {
    let h: { status: string; error?: string };
    do {
      await new Promise((r) => setTimeout(r, 50));
      const r = await fetch(`${server.url}/healthz`).catch(() => null);
      h = r ? await r.json() : { status: "down" };
      if (r) assert.equal(r.status, h.status === "ready" ? 200 : 503);
    } while (h.status === "down" || h.status === "not-ready");
    assert.equal(h.status, "error");
    assert.match(h.error!, /\/model\.onnx: onnxruntime cannot create a session: /);
    const g = await fetch(`${server.url}/generate?seed=1`);
    assert.equal(g.status, 503);
    assert.match(g.headers.get("Content-Type")!, /^application\/json/);
    const body = await g.json();
    assert.equal(body.error, `model failed to load: ${h.error}`);
    // The card is still served (it was verified), for diagnosis.
    assert.equal((await (await fetch(`${server.url}/model`)).json()).onnx.sha256, sha256);
  } finally {
    await server.close();
  }
  const ours = server.stderr().split("\n").filter((l) => l.startsWith("ddpm-edge:"));
  assert.equal(ours.length, 1, server.stderr());
  assert.match(ours[0], /\/model\.onnx: onnxruntime cannot create a session/);
});

const defaultModel = await Deno.stat(DEFAULT_MODEL_CARD).then(() => true, () => false);
if (!defaultModel) {
  console.log(`default-model test skipped: ${DEFAULT_MODEL_CARD.pathname} not there yet`);
}

Deno.test({
  name: "with no MODEL set the server runs the shipped default model",
  ignore: !defaultModel,
  fn: async () => {
    const server = await startServer({});
    try {
      const card = await (await fetch(`${server.url}/model`)).json();
      assert.equal(card.onnx.sha256.length, 64);
      const label = card.labels ? `&label=${card.labels.length - 1}` : "";
      const r = await fetch(`${server.url}/generate?seed=42&steps=2&n=2${label}`);
      assert.equal(r.status, 200);
      const png = decode(new Uint8Array(await r.arrayBuffer()));
      const s = card.image.size;
      assert.deepEqual([png.width, png.height], [2 * s + 1, s]);
    } finally {
      await server.close();
    }
  },
});
