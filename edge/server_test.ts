/**
 * A real server: `deno serve` in a subprocess with only --allow-net --allow-read --allow-env (the
 * Deno Deploy permissions), configured by environment variables, on a loopback port.
 */
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { encodePng, tileImages } from "../shared/image.ts";
import { createEngine } from "./engine.ts";
import { DEFAULT_MODEL_CARD, loadModel } from "./model.ts";
import { generate } from "./sampler.ts";
import { startServer, writeTinyModel } from "./testing.ts";

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

    // A client that goes away stops its generation: 200 steps are not all run.
    const health = async () => await (await fetch(`${server.url}/healthz`)).json();
    const before = (await health()).runs;
    const ctl = new AbortController();
    const pending = fetch(`${server.url}/generate?seed=1&steps=200&n=16`, { signal: ctl.signal })
      .catch((e) => e);
    while ((await health()).runs === before) await new Promise((r) => setTimeout(r, 20));
    ctl.abort();
    assert.equal((await pending).name, "AbortError");
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

Deno.test("a bad model path makes /healthz report the error naming the file", async () => {
  await assert.rejects(
    startServer({ MODEL: "/nonexistent/model.json" }),
    /server failed to load: \/nonexistent\/model\.json: cannot read/,
  );
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
