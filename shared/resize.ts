/**
 * Uploaded pixels → what the model takes: area-averaging resize (each output pixel is the
 * mean of the source area it covers, exact coverage weights; a box filter when shrinking,
 * pixel replication with blended seams when enlarging), gray by Rec. 601 luma
 * (0.299 R + 0.587 G + 0.114 B, as PIL's "L"), values quantised to 8 bits and mapped to [−1, 1],
 * so an input's pixels are exactly what a kept region gives back. Masks resize nearest.
 */
import type { Rgb } from "./png_input.ts";

/** Coverage weights of an area resize from n source samples to m: per output, [index, w]…. */
function areaWeights(n: number, m: number): [number, number][][] {
  const scale = n / m;
  return Array.from({ length: m }, (_, o) => {
    const lo = o * scale, hi = (o + 1) * scale;
    const w: [number, number][] = [];
    for (let i = Math.floor(lo); i < Math.min(n, Math.ceil(hi)); i++) {
      const cover = Math.min(hi, i + 1) - Math.max(lo, i);
      if (cover > 0) w.push([i, cover / scale]);
    }
    return w;
  });
}

/** Area-resize one plane (row-major, width × height) to size × size. */
export function resizeArea(
  plane: ArrayLike<number>,
  width: number,
  height: number,
  size: number,
): Float32Array {
  const wx = areaWeights(width, size), wy = areaWeights(height, size);
  const rows = new Float64Array(height * size);
  for (let y = 0; y < height; y++) {
    for (let ox = 0; ox < size; ox++) {
      let v = 0;
      for (const [i, w] of wx[ox]) v += w * plane[y * width + i];
      rows[y * size + ox] = v;
    }
  }
  const out = new Float32Array(size * size);
  for (let oy = 0; oy < size; oy++) {
    for (let ox = 0; ox < size; ox++) {
      let v = 0;
      for (const [i, w] of wy[oy]) v += w * rows[i * size + ox];
      out[oy * size + ox] = v;
    }
  }
  return out;
}

/** Nearest-neighbour resize of one plane to size × size (source pixel under each centre). */
export function resizeNearest(
  plane: ArrayLike<number>,
  width: number,
  height: number,
  size: number,
): Float32Array {
  const out = new Float32Array(size * size);
  for (let oy = 0; oy < size; oy++) {
    const sy = Math.min(height - 1, Math.floor((oy + 0.5) * height / size));
    for (let ox = 0; ox < size; ox++) {
      const sx = Math.min(width - 1, Math.floor((ox + 0.5) * width / size));
      out[oy * size + ox] = plane[sy * width + sx];
    }
  }
  return out;
}

/** The planes a model of `channels` channels sees: one luma plane, or R, G, B. */
export function planes(img: Rgb, channels: number): Float32Array[] {
  const px = img.width * img.height, d = img.data;
  if (channels === 3) {
    return [0, 1, 2].map((c) => Float32Array.from({ length: px }, (_, p) => d[p * 3 + c]));
  }
  const luma = Float32Array.from(
    { length: px },
    (_, p) => 0.299 * d[p * 3] + 0.587 * d[p * 3 + 1] + 0.114 * d[p * 3 + 2],
  );
  return Array.from({ length: channels }, () => luma);
}

/** [0, 1] → the 8-bit level, as a model value in [−1, 1] (inverse of shared/image.ts toByte). */
export const fromUnit = (v: number) => {
  const b = Math.round(Math.min(1, Math.max(0, v)) * 255);
  return b / 127.5 - 1;
};

/** An image as model input: CHW, size × size, in [−1, 1] on the 8-bit grid. */
export function toModelImage(img: Rgb, size: number, channels: number): Float32Array {
  const out = new Float32Array(channels * size * size);
  planes(img, channels).forEach((p, c) => {
    const r = resizeArea(p, img.width, img.height, size);
    for (let j = 0; j < r.length; j++) out[c * size * size + j] = fromUnit(r[j]);
  });
  return out;
}

/**
 * A mask as size × size flags: 1 where the resized (nearest) mask is white (luma ≥ ½: the model
 * regenerates there), 0 where it is black (the input is kept).
 */
export function toRegenerateMask(img: Rgb, size: number): Uint8Array {
  const [luma] = planes(img, 1);
  const r = resizeNearest(luma, img.width, img.height, size);
  return Uint8Array.from(r, (v) => (v >= 0.5 ? 1 : 0));
}

/** The centred square of an image (side = the shorter side); a square image is returned as is. */
export function centerCrop(img: Rgb): Rgb {
  const side = Math.min(img.width, img.height);
  if (img.width === side && img.height === side) return img;
  const x0 = Math.floor((img.width - side) / 2), y0 = Math.floor((img.height - side) / 2);
  const data = new Float32Array(side * side * 3);
  for (let y = 0; y < side; y++) {
    const s = ((y0 + y) * img.width + x0) * 3;
    data.set(img.data.subarray(s, s + side * 3), y * side * 3);
  }
  return { width: side, height: side, data };
}

/** CHW model values (toModelImage) → HWC, the trainer's layout. */
export function chwToHwc(chw: Float32Array, channels: number, size: number): Float32Array {
  const hw = size * size, out = new Float32Array(chw.length);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < hw; p++) out[p * channels + c] = chw[c * hw + p];
  }
  return out;
}
