import assert from "node:assert/strict";
import { decode, decodeApng } from "fast-png";
import { encodeApng } from "./apng.ts";
import { decodePngInput } from "./png_input.ts";

const frame = (v: number, delayMs = 100) => ({
  width: 5,
  height: 3,
  channels: 1,
  data: Uint8Array.from({ length: 15 }, (_, i) => (v * 40 + i) % 256),
  delayMs,
});

Deno.test("APNG: fast-png's decoder reads back every frame, delay and the loop count", () => {
  const frames = [frame(0), frame(1), frame(2, 1000)];
  const apng = encodeApng(frames);
  const d = decodeApng(apng, { checkCrc: true });
  assert.equal(d.numberOfFrames, 3);
  assert.equal(d.numberOfPlays, 0);
  assert.equal(d.frames.length, 3);
  d.frames.forEach((f, i) => {
    assert.deepEqual(Array.from(f.data), Array.from(frames[i].data), `frame ${i}`);
    assert.equal(f.delayNumber / f.delayDenominator, frames[i].delayMs / 1000);
  });
  // A PNG-only decoder sees the first frame; our upload checks accept the file.
  assert.deepEqual(Array.from(decode(apng).data), Array.from(frames[0].data));
  assert.equal(decodePngInput(apng).width, 5);
});

Deno.test("APNG: one frame, RGB, and refused inputs", () => {
  const rgb = { width: 2, height: 2, channels: 3, data: new Uint8Array(12).fill(7), delayMs: 0 };
  assert.equal(decodeApng(encodeApng([rgb])).frames.length, 1);
  assert.throws(() => encodeApng([]), /at least one frame/);
  assert.throws(() => encodeApng([frame(0), rgb]), /same|size and channels/);
});
