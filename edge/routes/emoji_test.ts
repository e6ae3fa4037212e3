/**
 * Every route in colour, on the shipped emoji model (fixtures/models/emoji: 32×32 RGB, 9
 * categories; real ONNX in onnxruntime-web) through the real app: RGB PNGs out, RGB uploads in
 * (a real emoji with transparency), labels by category name or index, the same query giving the
 * same bytes.
 */
import assert from "node:assert/strict";
import { decode, decodeApng } from "fast-png";
import { decodePngInput } from "../../shared/png_input.ts";
import { toModelImage } from "../../shared/resize.ts";
import { toByte } from "../../shared/image.ts";
import { createApp } from "../app.ts";
import { createEngine } from "../engine.ts";
import { loadModel } from "../model.ts";

const MODEL = new URL("../../fixtures/models/emoji/model.json", import.meta.url);
const model = await loadModel(MODEL);
const engine = await createEngine(model, { backend: "wasm", threads: 1 });
const app = createApp({ load: () => Promise.resolve(engine) });
const S = 32;

/** A real 64-px emoji with a transparent background (the committed sample's pumpkin, Twemoji). */
const EMOJI_PNG = await Deno.readFile(
  new URL(
    "../../fixtures/emoji-sample/emoji-datasource-twitter/img/twitter/64/1f383.png",
    import.meta.url,
  ),
);

async function rgb(r: Response, width = S, height = S) {
  assert.equal(r.status, 200, await r.clone().text());
  const bytes = new Uint8Array(await r.arrayBuffer());
  const png = decode(bytes);
  assert.equal(png.channels, 3, "an RGB PNG");
  assert.deepEqual([png.width, png.height], [width, height]);
  return { bytes, data: png.data };
}

/** Not a gray image: some pixel's channels differ. */
const hasColour = (d: ArrayLike<number>) => {
  for (let p = 0; p + 2 < d.length; p += 3) if (d[p] !== d[p + 1] || d[p] !== d[p + 2]) return true;
  return false;
};

Deno.test("emoji card: 32×32×3, the 9 categories of emoji.json, credits for both image sets", () => {
  assert.deepEqual(model.card.image, { size: 32, channels: 3 });
  assert.equal(model.card.labels?.length, 9);
  assert.equal(model.card.labels?.[8], "Flags");
  assert.equal(model.card.dataset, "emoji");
  assert.deepEqual(model.card.credits?.map((c) => c.licence), ["Apache-2.0", "CC-BY-4.0"]);
  assert.match(model.card.credits![1].attribution, /Twemoji/);
});

Deno.test("emoji /generate: RGB PNG, byte-identical per query, label by name = by index", async () => {
  const a = await rgb(await app.request("/generate?seed=11&label=Flags"));
  const b = await rgb(await app.request("/generate?seed=11&label=Flags"));
  const c = await rgb(await app.request("/generate?seed=11&label=8"));
  assert.deepEqual(a.bytes, b.bytes);
  assert.deepEqual(a.bytes, c.bytes);
  assert.ok(hasColour(a.data), "the sample is in colour");
  const other = await rgb(await app.request("/generate?seed=11&label=Food%20%26%20Drink"));
  assert.notDeepEqual(other.bytes, a.bytes);
  const grid = await rgb(
    await app.request("/generate?seed=2&n=4&scale=2"),
    2 * (2 * S) + 2,
    2 * (2 * S) + 2,
  );
  assert.ok(hasColour(grid.data));
});

Deno.test("emoji /generate: an unknown category is a 400 naming label", async () => {
  const r = await app.request("/generate?seed=1&label=Weather");
  assert.equal(r.status, 400);
  const body = await r.json();
  assert.equal(body.issues[0].path, "label");
  assert.match(body.issues[0].message, /Smileys & Emotion/);
  assert.equal((await app.request("/generate?seed=1&label=9")).status, 400);
});

Deno.test("emoji format=apng: RGB frames, the last one the PNG's image", async () => {
  const r = await app.request("/generate?seed=4&label=Animals%20%26%20Nature&format=apng");
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("Content-Type"), "image/apng");
  const apng = decodeApng(new Uint8Array(await r.arrayBuffer()));
  assert.ok(apng.frames.length >= 2);
  assert.equal(apng.channels, 3);
  const png = await rgb(await app.request("/generate?seed=4&label=Animals%20%26%20Nature"));
  const last = apng.frames.at(-1)!.data;
  for (let p = 0; p < S * S; p++) {
    for (let c = 0; c < 3; c++) assert.equal(last[p * 3 + c], png.data[p * 3 + c], `pixel ${p}`);
  }
});

Deno.test("emoji /denoise: an RGB upload with transparency in, an RGB PNG out, deterministic", async () => {
  const send = () =>
    app.request("/denoise?seed=3&strength=0.3&label=Food%20%26%20Drink", {
      method: "POST",
      body: EMOJI_PNG as BodyInit,
      headers: { "Content-Type": "image/png" },
    });
  const a = await rgb(await send());
  const b = await rgb(await send());
  assert.deepEqual(a.bytes, b.bytes);
  assert.ok(hasColour(a.data));
  // At strength 0.3 the result stays close to the (alpha-over-black, 2×2-averaged) input.
  const input = toModelImage(decodePngInput(EMOJI_PNG), S, 3);
  let diff = 0;
  for (let p = 0; p < S * S; p++) {
    for (let c = 0; c < 3; c++) diff += Math.abs(a.data[p * 3 + c] - toByte(input[c * S * S + p]));
  }
  console.log(`emoji /denoise strength 0.3: mean |Δ| ${(diff / (3 * S * S)).toFixed(1)} levels`);
  assert.ok(diff / (3 * S * S) < 40, `mean difference ${diff / (3 * S * S)}`);
});

Deno.test("emoji /inpaint: the kept RGB pixels come back exactly, the rest is regenerated", async () => {
  const mask = new Uint8Array(S * S * 3);
  for (let y = S / 2; y < S; y++) mask.fill(255, y * S * 3, (y + 1) * S * 3); // bottom half
  const { encode } = await import("fast-png");
  const maskPng = encode({ width: S, height: S, data: mask, channels: 3, depth: 8 });
  const f = new FormData();
  f.append("image", new Blob([EMOJI_PNG as BlobPart], { type: "image/png" }), "e.png");
  f.append("mask", new Blob([maskPng as BlobPart], { type: "image/png" }), "m.png");
  const out = await rgb(
    await app.request("/inpaint?seed=5&label=Food%20%26%20Drink", {
      method: "POST",
      body: f,
    }),
  );
  const input = toModelImage(decodePngInput(EMOJI_PNG), S, 3);
  let changed = 0;
  for (let p = 0; p < S * S; p++) {
    for (let c = 0; c < 3; c++) {
      const want = toByte(input[c * S * S + p]);
      if (p < (S * S) / 2) assert.equal(out.data[p * 3 + c], want, `kept pixel ${p}`);
      else if (out.data[p * 3 + c] !== want) changed++;
    }
  }
  assert.ok(changed > 0, "the masked half was regenerated");
});

Deno.test("emoji /interpolate: an RGB strip whose ends are /generate's deterministic samples", async () => {
  const strip = await rgb(
    await app.request("/interpolate?from=5&to=6&frames=3&label=Symbols"),
    3 * S + 2,
    S,
  );
  const end = await rgb(await app.request("/generate?seed=6&label=Symbols&sampler=ddim&eta=0"));
  let worst = 0;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      for (let c = 0; c < 3; c++) {
        const width = 3 * S + 2;
        const s = strip.data[(y * width + 2 * (S + 1) + x) * 3 + c];
        worst = Math.max(worst, Math.abs(s - end.data[(y * S + x) * 3 + c]));
      }
    }
  }
  assert.ok(worst <= 2, `last frame vs /generate: ${worst} levels`);
});
