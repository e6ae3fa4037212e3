/**
 * PNGs from untrusted uploads, decoded defensively into RGB in [0, 1]. Before anything is
 * inflated the file must be a well-formed chunk sequence (signature, IHDR first with a valid
 * depth/colour type and CRC, every chunk inside the file, IEND present) whose declared size is
 * at most MAX_INPUT_SIDE per side and MAX_INPUT_PIXELS in all; the image data is then inflated
 * with a running cap of the size the header implies, so neither a huge header nor an IDAT that
 * inflates past its image (a decompression bomb) allocates more than a few MB. Only then does
 * fast-png decode it (every colour type, bit depth, palette, tRNS, Adam7). Transparency is
 * composited over black, the MNIST background.
 */
import { convertIndexedToRgb, decode } from "fast-png";
import { Unzlib } from "fflate";

/** Most pixels per side of an uploaded image. */
export const MAX_INPUT_SIDE = 4096;
/** Most pixels of an uploaded image (1024 × 1024: ≤ 8 MB decoded at 16-bit RGBA). */
export const MAX_INPUT_PIXELS = 1 << 20;

/** The size limits a decode enforces before inflating anything. */
export interface PngLimits {
  maxSide: number;
  maxPixels: number;
}
/** An upload's limits (the edge's). */
export const UPLOAD_LIMITS: PngLimits = { maxSide: MAX_INPUT_SIDE, maxPixels: MAX_INPUT_PIXELS };
/** A local training file's limits (the trainer's PNG folders: up to 16384² = 256 MP). */
export const FILE_LIMITS: PngLimits = { maxSide: 16384, maxPixels: 1 << 28 };

/** Why an upload cannot be used; `status` is the HTTP answer (400 malformed, 413 too large). */
export class PngInputError extends Error {
  constructor(readonly status: 400 | 413, message: string) {
    super(message);
    this.name = "PngInputError";
  }
}

export interface PngHeader {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlace: number;
}

/** Decoded pixels: RGB interleaved, values in [0, 1], alpha already composited over black. */
export interface Rgb {
  width: number;
  height: number;
  data: Float32Array;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Bit depths allowed per colour type (PNG spec 11.2.2). */
const DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

const bad = (m: string) => new PngInputError(400, `not a valid PNG: ${m}`);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309, as PNG uses) of bytes. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Whether the bytes start with the PNG signature. */
export function hasPngSignature(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

/** Bytes the filtered scanlines of an image take (what its zlib stream must inflate to). */
export function rawSize(h: PngHeader): number {
  const bpp = CHANNELS[h.colorType] * h.depth;
  const rows = (
    w: number,
    n: number,
  ) => (w === 0 || n === 0 ? 0 : n * (1 + Math.ceil(w * bpp / 8)));
  if (h.interlace === 0) return rows(h.width, h.height);
  // Adam7: seven passes, each a reduced image (x0, y0, dx, dy).
  const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [
    1,
    0,
    2,
    2,
  ], [
    0,
    1,
    1,
    2,
  ]];
  let total = 0;
  for (const [x0, y0, dx, dy] of passes) {
    total += rows(Math.ceil((h.width - x0) / dx), Math.ceil((h.height - y0) / dy));
  }
  return total;
}

/**
 * Check the file's structure and declared size without inflating anything; returns the header
 * and the concatenated image data (IDAT payloads).
 */
export function inspectPng(
  bytes: Uint8Array,
  limits: PngLimits = UPLOAD_LIMITS,
): { header: PngHeader; idat: Uint8Array[] } {
  if (!hasPngSignature(bytes)) throw bad("no PNG signature");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let header: PngHeader | null = null;
  const idat: Uint8Array[] = [];
  let palette = false, ended = false;
  for (let at = 8; !ended;) {
    if (at + 12 > bytes.length) throw bad(`truncated at byte ${at} (no IEND chunk)`);
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (!/^[A-Za-z]{4}$/.test(type)) throw bad(`bad chunk type at byte ${at}`);
    if (length > 0x7fffffff || at + 12 + length > bytes.length) {
      throw bad(`chunk ${type} at byte ${at} runs past the end of the file`);
    }
    const data = bytes.subarray(at + 8, at + 8 + length);
    const crc = view.getUint32(at + 8 + length);
    if (crc32(data, crc32(bytes.subarray(at + 4, at + 8))) !== crc) {
      throw bad(`CRC mismatch in chunk ${type} at byte ${at}`);
    }
    if (header === null && type !== "IHDR") throw bad("the first chunk is not IHDR");
    switch (type) {
      case "IHDR": {
        if (header !== null) throw bad("more than one IHDR");
        if (length !== 13) throw bad(`IHDR is ${length} bytes, not 13`);
        const d = new DataView(data.buffer, data.byteOffset, 13);
        const h: PngHeader = {
          width: d.getUint32(0),
          height: d.getUint32(4),
          depth: data[8],
          colorType: data[9],
          interlace: data[12],
        };
        if (h.width === 0 || h.height === 0) throw bad(`zero size ${h.width}×${h.height}`);
        if (!DEPTHS[h.colorType]?.includes(h.depth)) {
          throw bad(`colour type ${h.colorType} with bit depth ${h.depth}`);
        }
        if (data[10] !== 0 || data[11] !== 0 || h.interlace > 1) {
          throw bad("unknown compression, filter or interlace method");
        }
        if (
          h.width > limits.maxSide || h.height > limits.maxSide ||
          h.width * h.height > limits.maxPixels
        ) {
          throw new PngInputError(
            413,
            `image too large: the PNG header declares ${h.width}×${h.height} pixels; the limit ` +
              `is ${limits.maxSide} per side and ${limits.maxPixels} in all`,
          );
        }
        header = h;
        break;
      }
      case "PLTE":
        palette = true;
        break;
      case "IDAT":
        idat.push(data);
        break;
      case "IEND":
        ended = true;
        break;
    }
    at += 12 + length;
  }
  if (!header) throw bad("no IHDR");
  if (header.colorType === 3 && !palette) throw bad("an indexed-colour image without PLTE");
  if (idat.length === 0) throw bad("no image data (IDAT)");
  return { header, idat };
}

/** Inflate the image data, refusing a stream that inflates past `cap` bytes or is incomplete. */
function boundedInflate(idat: Uint8Array[], cap: number): number {
  let total = 0, done = false;
  const z = new Unzlib((chunk, final) => {
    total += chunk.length;
    if (total > cap) throw bad(`image data inflates past the ${cap} bytes its size needs`);
    if (final) done = true;
  });
  try {
    idat.forEach((d, i) => z.push(d, i === idat.length - 1));
  } catch (e) {
    if (e instanceof PngInputError) throw e;
    throw bad(`corrupt image data (${(e as Error).message})`);
  }
  if (!done) throw bad("truncated image data");
  return total;
}

/** Gray samples below 8 bits, which fast-png leaves packed (rows MSB first, byte-aligned). */
function unpack(packed: ArrayLike<number>, width: number, height: number, depth: number) {
  const rowBytes = Math.ceil(width * depth / 8), mask = (1 << depth) - 1;
  if (packed.length !== rowBytes * height) throw bad("packed samples of the wrong length");
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      out[y * width + x] = (packed[y * rowBytes + (bit >> 3)] >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/**
 * Decode a PNG into RGB in [0, 1], alpha composited over black (see the module comment for what
 * is refused). The one decoder of the project: the edge's uploads and the trainer's PNG files and
 * emoji both come through here, so the two sides see the same pixels.
 */
export function decodePngInput(bytes: Uint8Array, limits: PngLimits = UPLOAD_LIMITS): Rgb {
  const { header, idat } = inspectPng(bytes, limits);
  const need = rawSize(header);
  if (boundedInflate(idat, need) < need) throw bad("image data shorter than its size needs");
  let png;
  try {
    png = decode(bytes, { checkCrc: true });
  } catch (e) {
    throw bad((e as Error).message);
  }
  const { width, height } = png;
  const px = width * height;
  let src = png.data;
  let channels = png.channels;
  let max = 2 ** png.depth - 1;
  if (png.palette) {
    src = convertIndexedToRgb(png);
    channels = src.length / px;
    max = 255;
  } else if (png.depth < 8) src = unpack(src, width, height, png.depth);
  if (src.length !== px * channels || ![1, 2, 3, 4].includes(channels)) {
    throw bad(`decoded to ${src.length} values for ${width}×${height}`);
  }
  const key = !png.palette && png.transparency ? Array.from(png.transparency) : null;
  const out = new Float32Array(px * 3);
  const color = channels >= 3;
  const alpha = channels === 2 || channels === 4;
  for (let p = 0; p < px; p++) {
    const o = p * channels;
    const r = src[o], g = color ? src[o + 1] : r, b = color ? src[o + 2] : r;
    let a = alpha ? src[o + channels - 1] / max : 1;
    if (key && (color ? r === key[0] && g === key[1] && b === key[2] : r === key[0])) a = 0;
    out[p * 3] = (r / max) * a;
    out[p * 3 + 1] = (g / max) * a;
    out[p * 3 + 2] = (b / max) * a;
  }
  return { width, height, data: out };
}
