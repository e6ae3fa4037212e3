/**
 * Test helper: PNG files written byte by byte (filter 0 scanlines, zlib from fflate), so tests
 * can make every colour type and bit depth, palettes, tRNS, and broken files on purpose.
 */
import { zlibSync } from "fflate";
import { crc32 } from "./png_input.ts";

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  out.set(ascii(type), 4);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(data, crc32(ascii(type))));
  return out;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

export const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

export function ihdr(w: number, h: number, depth: number, colorType: number, interlace = 0) {
  const d = new Uint8Array(13);
  const v = new DataView(d.buffer);
  v.setUint32(0, w);
  v.setUint32(4, h);
  d.set([depth, colorType, 0, 0, interlace], 8);
  return pngChunk("IHDR", d);
}

export interface RawPng {
  width: number;
  height: number;
  depth: 1 | 2 | 4 | 8 | 16;
  colorType: 0 | 2 | 3 | 4 | 6;
  /** Samples, row-major, channels interleaved (indices for colour type 3). */
  samples: ArrayLike<number>;
  palette?: [number, number, number][];
  trns?: Uint8Array;
  /** Extra chunks before IEND. */
  extra?: Uint8Array[];
}

const CH = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as const;

/** Pack samples into filter-0 scanlines (MSB first below 8 bits, big-endian at 16). */
export function scanlines(p: RawPng): Uint8Array {
  const ch = CH[p.colorType];
  const rowBytes = Math.ceil(p.width * ch * p.depth / 8);
  const out = new Uint8Array(p.height * (1 + rowBytes));
  for (let y = 0; y < p.height; y++) {
    const row = out.subarray(y * (1 + rowBytes) + 1, (y + 1) * (1 + rowBytes));
    for (let i = 0; i < p.width * ch; i++) {
      const s = p.samples[y * p.width * ch + i];
      if (p.depth === 16) {
        row[2 * i] = s >> 8;
        row[2 * i + 1] = s & 0xff;
      } else if (p.depth === 8) row[i] = s;
      else {
        const bit = i * p.depth;
        row[bit >> 3] |= s << (8 - p.depth - (bit & 7));
      }
    }
  }
  return out;
}

export function writePng(p: RawPng): Uint8Array {
  const parts = [SIGNATURE, ihdr(p.width, p.height, p.depth, p.colorType)];
  if (p.palette) parts.push(pngChunk("PLTE", Uint8Array.from(p.palette.flat())));
  if (p.trns) parts.push(pngChunk("tRNS", p.trns));
  parts.push(pngChunk("IDAT", zlibSync(scanlines(p))), ...(p.extra ?? []));
  parts.push(pngChunk("IEND", new Uint8Array(0)));
  return concat(parts);
}

/** An 8-bit gray PNG of the given pixels. */
export function grayPng(width: number, height: number, pixels: ArrayLike<number>): Uint8Array {
  return writePng({ width, height, depth: 8, colorType: 0, samples: pixels });
}
