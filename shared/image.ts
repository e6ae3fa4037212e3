/**
 * Images as the sampler produces them (float, NCHW, [−1, 1]) turned into something a person can
 * look at: a tiled grid of 8-bit pixels, nearest-neighbour upscaled, PNG-encoded with fast-png.
 */
import { encode } from "fast-png";

export interface Grid {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

/** [−1, 1] → 0…255, rounded and clamped. */
export function toByte(v: number): number {
  const b = Math.round((v + 1) * 127.5);
  return b < 0 ? 0 : b > 255 ? 255 : b;
}

/** Columns of a near-square grid for n tiles. */
export function gridColumns(n: number): number {
  return Math.ceil(Math.sqrt(n));
}

/**
 * Tile n images (NCHW float in [−1, 1]) into an interleaved 8-bit grid with a 1-pixel gap
 * (×scale) between tiles, each pixel repeated scale×scale times.
 */
export function tileImages(
  x: ArrayLike<number>,
  n: number,
  channels: number,
  size: number,
  scale = 1,
  cols = gridColumns(n),
): Grid {
  const rows = Math.ceil(n / cols);
  const gap = n > 1 ? scale : 0;
  const tile = size * scale;
  const width = cols * tile + (cols - 1) * gap, height = rows * tile + (rows - 1) * gap;
  const data = new Uint8Array(width * height * channels);
  const plane = size * size;
  for (let k = 0; k < n; k++) {
    const ox = (k % cols) * (tile + gap), oy = Math.floor(k / cols) * (tile + gap);
    for (let y = 0; y < tile; y++) {
      const sy = Math.floor(y / scale);
      for (let xx = 0; xx < tile; xx++) {
        const sx = Math.floor(xx / scale);
        const o = ((oy + y) * width + ox + xx) * channels;
        for (let c = 0; c < channels; c++) {
          data[o + c] = toByte(x[k * channels * plane + c * plane + sy * size + sx]);
        }
      }
    }
  }
  return { width, height, channels, data };
}

export function encodePng(g: Grid): Uint8Array {
  return encode({ width: g.width, height: g.height, data: g.data, channels: g.channels, depth: 8 });
}
