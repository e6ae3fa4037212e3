import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { loadModel, ModelLoadError, sha256Hex, toUrl } from "./model.ts";
import { silentServer, writeTinyModel } from "./testing.ts";

const cardPath = await writeTinyModel();
const dir = dirname(cardPath);
const cardJson = JSON.parse(await Deno.readTextFile(cardPath));

/** A copy of the model dir with the card edited and/or the ONNX bytes replaced. */
async function variant(edit: (card: typeof cardJson) => void, onnx?: Uint8Array): Promise<string> {
  const d = await Deno.makeTempDir({ prefix: "ddpm-edge-model-" });
  const card = structuredClone(cardJson);
  edit(card);
  await Deno.writeFile(join(d, "model.onnx"), onnx ?? await Deno.readFile(join(dir, "model.onnx")));
  await Deno.writeTextFile(join(d, "model.json"), JSON.stringify(card));
  return join(d, "model.json");
}

async function rejects(path: string, file: RegExp, reason: RegExp) {
  const err = await loadModel(path).then(() => null, (e) => e);
  assert.ok(err instanceof ModelLoadError, `expected a ModelLoadError, got ${err}`);
  assert.match(err.file, file);
  assert.match(err.message, reason);
}

Deno.test("loads a card and its verified ONNX file", async () => {
  const m = await loadModel(cardPath);
  assert.equal(m.card.name, "tiny-cond");
  assert.equal(m.onnx.byteLength, m.card.onnx.bytes);
  assert.equal(await sha256Hex(m.onnx), m.card.onnx.sha256);
  assert.equal(m.cardUrl.protocol, "file:");
  // Same result from a file: URL and from a path relative to the working directory.
  assert.equal((await loadModel(toUrl(cardPath))).card.onnx.sha256, m.card.onnx.sha256);
  const rel = relative(Deno.cwd(), cardPath);
  assert.ok(!rel.startsWith("/"));
  assert.equal((await loadModel(rel)).card.name, "tiny-cond");
});

Deno.test("sha256Hex matches a known digest", async () => {
  assert.equal(
    await sha256Hex(new TextEncoder().encode("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

Deno.test("a tampered ONNX file is refused, naming the file and the hash", async () => {
  const bytes = await Deno.readFile(join(dir, "model.onnx"));
  bytes[bytes.length - 1] ^= 1;
  await rejects(
    await variant(() => {}, bytes),
    /model\.onnx$/,
    /SHA-256 [0-9a-f]{64} does not match/,
  );
  await rejects(await variant(() => {}, bytes.subarray(1)), /model\.onnx$/, /bytes, card says/);
});

Deno.test("an invalid card is refused with the failing fields", async () => {
  await rejects(await variant((c) => delete c.onnx.sha256), /model\.json$/, /onnx\.sha256/);
  await rejects(await variant((c) => c.format = "other"), /model\.json$/, /format/);
  await rejects(await variant((c) => c.labels = ["a"]), /model\.json$/, /3 class names/);
  await rejects(await variant((c) => c.image.size = 16), /model\.json$/, /imageSize/);
  await rejects(await variant((c) => c.sampling.steps = 51), /model\.json$/, /exceeds schedule\.T/);
  await rejects(
    await variant((c) => c.sampling.nullClassSteps = 51),
    /model\.json$/,
    /nullClassSteps 51 exceeds schedule\.T/,
  );
  await rejects(
    await variant((c) => c.sampling.nullClassSteps = 0),
    /model\.json$/,
    /nullClassSteps/,
  );
  await rejects(
    await variant((c) => Object.assign(c.sampling, { steps: 2, timesteps: [30, 10] })),
    /model\.json$/,
    /sampling\.timesteps: timesteps must be strictly ascending/,
  );
  await rejects(
    await variant((c) => Object.assign(c.sampling, { steps: 3, timesteps: [10, 49] })),
    /model\.json$/,
    /sampling\.timesteps: timesteps has 2 entries, steps is 3/,
  );
});

Deno.test("missing files and broken JSON are named", async () => {
  await rejects(join(dir, "nope.json"), /nope\.json$/, /cannot read/);
  await rejects(await variant((c) => c.onnx.file = "gone.onnx"), /gone\.onnx$/, /cannot read/);
  const d = await Deno.makeTempDir();
  await Deno.writeTextFile(join(d, "model.json"), "{not json");
  await rejects(join(d, "model.json"), /model\.json$/, /not JSON/);
});

/** Resolve `p`, or reject after `ms` (so a hang fails the test instead of stalling it). */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

Deno.test("over http: a model loads; a server that never answers (or stalls mid-body) times out", async () => {
  // A real HTTP server for the good case, so the timeout is shown not to cut normal loads.
  const files = new Map([
    ["/m/model.json", await Deno.readFile(cardPath)],
    ["/m/model.onnx", await Deno.readFile(join(dir, "model.onnx"))],
  ]);
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const body = files.get(new URL(req.url).pathname);
    return body ? new Response(body) : new Response("no", { status: 404 });
  });
  const silent = silentServer();
  const stalled = silentServer("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{");
  try {
    const base = `http://127.0.0.1:${http.addr.port}`;
    const m = await within(loadModel(`${base}/m/model.json`, { fetchTimeoutMs: 2000 }), 10_000);
    assert.equal(m.card.name, "tiny-cond");
    assert.equal(await sha256Hex(m.onnx), m.card.onnx.sha256);
    await rejects(`${base}/m/gone.json`, /\/m\/gone\.json$/, /cannot read: HTTP 404/);

    for (const [server, what] of [[silent, "no answer"], [stalled, "stalled body"]] as const) {
      const url = `${server.url}/model.json`;
      const t0 = performance.now();
      const err = await within(loadModel(url, { fetchTimeoutMs: 300 }), 10_000).then(
        () => null,
        (e) => e,
      );
      const ms = performance.now() - t0;
      assert.ok(err instanceof ModelLoadError, `${what}: ${err}`);
      assert.equal(err.file, url);
      assert.equal(
        err.message,
        `${url}: cannot read: no complete answer within 300 ms (MODEL_FETCH_TIMEOUT_MS)`,
      );
      assert.ok(ms >= 290 && ms < 5000, `${what}: gave up after ${ms.toFixed(0)} ms`);
      assert.equal(server.accepted(), 1, `${what}: the request reached the listener`);
    }
  } finally {
    silent.close();
    stalled.close();
    await http.shutdown();
  }
});
