/**
 * A small APNG (animated PNG) encoder on top of fast-png: each frame is encoded as an ordinary
 * PNG and its IDAT payload rewrapped — as the first frame's IDAT, then as fdAT chunks — behind
 * acTL/fcTL chunks (APNG 1.0 spec). Every frame covers the whole canvas (no offsets, dispose
 * none, blend source), and the first frame is the default image that PNG-only viewers show.
 * (npm's APNG encoders are upng-js 2.1.0 and forks of it, unpublished since 2017–2020; fast-png,
 * already used here, decodes APNG but does not encode it.)
 */
import { encode } from "fast-png";
import type { Grid } from "./image.ts";
import { crc32 } from "./png_input.ts";

export interface ApngFrame extends Grid {
  /** How long the frame shows, in milliseconds (rounded to 1/1000 s; 0 = as fast as possible). */
  delayMs: number;
}

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  out.set(ascii(type), 4);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(8, 8 + data.length), crc32(ascii(type))));
  return out;
}

/** The chunks of a PNG file as [type, payload]. */
function chunks(png: Uint8Array): [string, Uint8Array][] {
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out: [string, Uint8Array][] = [];
  for (let at = 8; at < png.length;) {
    const length = v.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    out.push([type, png.subarray(at + 8, at + 8 + length)]);
    at += 12 + length;
  }
  return out;
}

function u32(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => v.setUint32(i * 4, x));
  return out;
}

/** fcTL: the frame's region (the whole canvas), delay and dispose/blend ops. */
function frameControl(seq: number, f: ApngFrame): Uint8Array {
  const data = new Uint8Array(26);
  const v = new DataView(data.buffer);
  v.setUint32(0, seq);
  v.setUint32(4, f.width);
  v.setUint32(8, f.height);
  // x/y offsets 0 (bytes 12…19)
  v.setUint16(20, Math.max(0, Math.round(f.delayMs)));
  v.setUint16(22, 1000);
  // dispose_op 0 (none), blend_op 0 (source)
  return chunk("fcTL", data);
}

/** Encode frames of equal size and channels as an APNG that loops `plays` times (0: forever). */
export function encodeApng(frames: ApngFrame[], plays = 0): Uint8Array {
  if (frames.length === 0) throw new RangeError("an APNG needs at least one frame");
  const [first] = frames;
  for (const f of frames) {
    if (f.width !== first.width || f.height !== first.height || f.channels !== first.channels) {
      throw new RangeError("every frame must have the first frame's size and channels");
    }
    if (!(f.delayMs >= 0 && f.delayMs <= 65535)) throw new RangeError(`delay ${f.delayMs} ms`);
  }
  const parts: Uint8Array[] = [Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)];
  let seq = 0;
  frames.forEach((f, i) => {
    const png = encode({
      width: f.width,
      height: f.height,
      data: f.data,
      channels: f.channels,
      depth: 8,
    });
    const cs = chunks(png);
    if (i === 0) {
      parts.push(chunk("IHDR", cs.find(([t]) => t === "IHDR")![1]));
      parts.push(chunk("acTL", u32(frames.length, plays)));
    }
    parts.push(frameControl(seq++, f));
    for (const [type, data] of cs) {
      if (type !== "IDAT") continue;
      if (i === 0) parts.push(chunk("IDAT", data));
      else {
        const fd = new Uint8Array(4 + data.length);
        new DataView(fd.buffer).setUint32(0, seq++);
        fd.set(data, 4);
        parts.push(chunk("fdAT", fd));
      }
    }
  });
  parts.push(chunk("IEND", new Uint8Array(0)));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}
