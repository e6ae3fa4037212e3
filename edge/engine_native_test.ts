/**
 * ORT_BACKEND=native (onnxruntime-node) on the shipped model: images match wasm's within
 * rounding, runs are deterministic, and a real `deno serve` with --allow-ffi serves them (and
 * refuses to start without it). Needs FFI (`deno task test` runs with --allow-all); skipped with
 * the reason printed when onnxruntime-node's binary cannot load here.
 */
import assert from "node:assert/strict";
import { encodePng, tileImages } from "../shared/image.ts";
import { createEngine, type Engine } from "./engine.ts";
import { DEFAULT_MODEL_CARD, loadModel } from "./model.ts";
import { generate } from "./sampler.ts";
import { serveArgs } from "./serve_args.ts";

const model = await loadModel(DEFAULT_MODEL_CARD);

async function nativeOrReason(): Promise<Engine | string> {
  try {
    return await createEngine(model, { backend: "native", threads: 1 });
  } catch (e) {
    return `onnxruntime-node cannot run here: ${(e as Error).message.split("\n")[0]}`;
  }
}

const native = await nativeOrReason();
const skip = typeof native === "string";
if (skip) console.log(`engine_native_test skipped: ${native}`);

const { card } = model;
const S = card.image.size;
/** A request at the card's defaults: what GET /generate?seed=…&n=… samples. */
const request = (seed: number, n: number, label?: number) => ({
  seed,
  steps: card.sampling.steps,
  eta: card.sampling.eta,
  n,
  label: label ?? Array.from({ length: n }, (_, i) => (seed + i) % 10),
});
const pixels = (x: Float32Array, n: number) => tileImages(x, n, card.image.channels, S).data;

Deno.test({
  name: "native: the shipped model's images match wasm's within 2/255 mean absolute difference",
  ignore: skip,
  fn: async () => {
    const wasm = await createEngine(model, { backend: "wasm", threads: 1 });
    const e = native as Engine;
    assert.equal(e.backend, "native");
    let total = 0, count = 0, worst = 0;
    for (const [seed, n, guidance] of [[1, 8, 1], [2, 8, 1], [3, 4, 3]] as const) {
      const o = { ...request(seed, n), guidance };
      const a = pixels(await generate(wasm, o), n), b = pixels(await generate(e, o), n);
      let d = 0;
      for (let i = 0; i < a.length; i++) d += Math.abs(a[i] - b[i]);
      total += d;
      count += a.length;
      worst = Math.max(worst, d / a.length);
    }
    console.log(
      `mean |wasm − native| = ${(total / count).toFixed(3)}/255 (worst request ${
        worst.toFixed(3)
      })`,
    );
    assert.ok(total / count <= 2, `mean abs diff ${total / count}/255`);
    assert.ok(worst <= 2, `a request differs by ${worst}/255 on average`);
  },
});

Deno.test({
  name: "native: deterministic across calls and sessions; forward batches are independent",
  ignore: skip,
  fn: async () => {
    const e = native as Engine;
    const o = { ...request(7, 3), guidance: 2 };
    const a = await generate(e, o);
    assert.deepEqual(await generate(e, o), a);
    const again = await createEngine(model, { backend: "native", threads: 1, release: true });
    assert.deepEqual(await generate(again, o), a);
    assert.equal(again.model.onnx.length, 0, "release drops the bytes");
    assert.equal(again.model.card, model.card);
    assert.notDeepEqual(await generate(e, { ...o, seed: 8 }), a);
    // Chunking over maxBatch (8, as on wasm) gives the same images as one run per chunk.
    assert.equal(e.maxBatch, 8);
    const size = S * S;
    const x = new Float32Array(10 * size).map((_, i) => Math.sin(i));
    const whole = await e.forward(x, 10, 300, null);
    const first = await e.forward(x.slice(0, 8 * size), 8, 300, null);
    assert.deepEqual(whole.subarray(0, 8 * size), first);
  },
});

/** `deno serve edge/main.ts` with the Deploy permissions plus `extra`, on a free port. */
function serve(env: Record<string, string>, extra: string[]) {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const args = serveArgs(port);
  args.splice(1, 0, ...extra);
  const proc = new Deno.Command(Deno.execPath(), {
    args,
    cwd: new URL("..", import.meta.url),
    env: { ORT_THREADS: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return { url: `http://127.0.0.1:${port}`, proc };
}

Deno.test({
  name: "ORT_BACKEND=native: /healthz says native, PNGs are the in-process native bytes",
  ignore: skip,
  fn: async () => {
    const { url, proc } = serve({ ORT_BACKEND: "native" }, ["--allow-ffi"]);
    try {
      let health: { status?: string; backend?: string } = {};
      for (let i = 0; i < 600 && health.status !== "ready"; i++) {
        health = await fetch(`${url}/healthz`).then((r) => r.json()).catch(() => ({}));
        if (health.status !== "ready") await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(health.status, "ready");
      assert.equal(health.backend, "native");
      const r = await fetch(`${url}/generate?seed=42&n=4&label=3`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("X-Backend"), "native");
      const png = new Uint8Array(await r.arrayBuffer());
      const x = await generate(native as Engine, request(42, 4, 3));
      assert.deepEqual(png, encodePng(tileImages(x, 4, 1, S, 1)));
      const again = await fetch(`${url}/generate?seed=42&n=4&label=3`);
      assert.equal(again.headers.get("ETag"), r.headers.get("ETag"));
      assert.deepEqual(new Uint8Array(await again.arrayBuffer()), png);
      const bad = await fetch(`${url}/generate?steps=0`);
      assert.equal(bad.status, 400);
      await bad.body?.cancel();
    } finally {
      proc.kill("SIGTERM");
      await proc.stderr.cancel();
      await proc.status;
    }
  },
});

Deno.test("ORT_BACKEND=native without --allow-ffi refuses to start, saying so", async () => {
  const { proc } = serve({ ORT_BACKEND: "native" }, []);
  const [status, err] = await Promise.all([
    proc.status,
    new Response(proc.stderr).text(),
  ]);
  assert.equal(status.code, 1);
  assert.match(err, /ddpm-edge: ORT_BACKEND=native .*--allow-ffi/);
});
