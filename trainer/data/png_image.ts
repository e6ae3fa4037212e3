/** One PNG file or buffer → a training image, through the project's one decoding path. */
import { decodePngInput, FILE_LIMITS, type Rgb } from "../../shared/png_input.ts";
import { centerCrop, chwToHwc, toModelImage } from "../../shared/resize.ts";
import { DataError } from "./dataset.ts";

/**
 * Decode one PNG file into size × size × channels floats in [−1, 1] (HWC); DataError names the
 * file. The edge's decoder (shared/png_input.ts: every PNG type, alpha composited over black),
 * then the centred square, then the edge's area resize and 8-bit levels (shared/resize.ts), so
 * a file trains on exactly the pixels the edge would see for it.
 */
export async function readPngImage(
  file: string,
  size: number,
  channels: number,
): Promise<Float32Array> {
  return pngBytesToImage(await Deno.readFile(file), size, channels, file);
}

/** PNG bytes → size × size × channels floats in [−1, 1] (HWC), as readPngImage. */
export function pngBytesToImage(
  bytes: Uint8Array,
  size: number,
  channels: number,
  name: string,
): Float32Array {
  let rgb: Rgb;
  try {
    rgb = decodePngInput(bytes, FILE_LIMITS);
  } catch (e) {
    throw new DataError(`${name}: not a readable PNG (${(e as Error).message})`);
  }
  return chwToHwc(toModelImage(centerCrop(rgb), size, channels), channels, size);
}
