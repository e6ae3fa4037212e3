/**
 * The bodies an image route answers with: a PNG (grid or strip), the JSON floats /generate's
 * `format=json` gives, or an APNG of the frames a `FrameRecorder` kept.
 */
import { encodeApng } from "../../shared/apng.ts";
import { encodePng, type Grid, tileImages } from "../../shared/image.ts";
import type { ModelCard } from "../../shared/model_card.ts";
import type { Context } from "hono";
import type { Engine, Timing } from "../engine.ts";
import type { RouteContext } from "./context.ts";
import { type JobResult, runJob } from "./job.ts";

export type ImageFormat = "png" | "json" | "apng";

/** APNG timing: each step's frame, and the last frame (the result), in milliseconds. */
export const FRAME_MS = 100;
export const LAST_FRAME_MS = 1500;

export interface Layout {
  n: number;
  scale: number;
  /** Tiles per row (default: the near-square grid /generate uses). */
  cols?: number;
}

export function grid(x: ArrayLike<number>, card: ModelCard, l: Layout): Grid {
  return tileImages(x, l.n, card.image.channels, card.image.size, l.scale, l.cols);
}

/**
 * Keeps one frame per sampling step from sample()'s `onDenoised` (the current prediction x̂₀,
 * tiled like the final image); `finish` replaces the last with the sample itself.
 */
export class FrameRecorder {
  readonly frames: Grid[] = [];
  constructor(private readonly card: ModelCard, private readonly layout: Layout) {}
  readonly onDenoised = (x0: Float64Array) =>
    void this.frames.push(grid(x0, this.card, this.layout));
  finish(x: Float32Array): Grid[] {
    this.frames.splice(Math.max(0, this.frames.length - 1), 1, grid(x, this.card, this.layout));
    return this.frames;
  }
}

export function apngBody(frames: Grid[], stepMs = FRAME_MS, lastMs = LAST_FRAME_MS): JobResult {
  const body = encodeApng(
    frames.map((g, i) => ({ ...g, delayMs: i === frames.length - 1 ? lastMs : stepMs })),
  );
  return { body, type: "image/apng" };
}

export function pngBody(g: Grid): JobResult {
  return { body: encodePng(g), type: "image/png" };
}

export function jsonBody(
  x: Float32Array,
  card: ModelCard,
  n: number,
  extra: Record<string, unknown>,
): JobResult {
  return {
    body: JSON.stringify({
      ...extra,
      model: card.name,
      shape: [n, card.image.channels, card.image.size, card.image.size],
      data: Array.from(x),
    }),
    type: "application/json",
  };
}

/**
 * `runJob` for an upload route (/denoise, /inpaint): `sample` draws the n images, then the answer
 * is their grid as PNG, the JSON floats with `params`, or (format=apng) the x̂₀ animation that
 * `sample`'s `onDenoised` fed.
 */
export function runImageJob(
  c: Context,
  ctx: RouteContext,
  arrived: number,
  card: ModelCard,
  p: Layout & { format: ImageFormat },
  params: Record<string, unknown>,
  sample: (
    engine: Engine,
    timing: Timing,
    signal: AbortSignal,
    onDenoised: ((x0: Float64Array) => void) | undefined,
  ) => Promise<Float32Array>,
): Promise<Response> {
  const layout = { n: p.n, scale: p.scale, cols: p.cols };
  const frames = p.format === "apng" ? new FrameRecorder(card, layout) : null;
  return runJob(
    c,
    ctx,
    arrived,
    (engine, timing, signal) => sample(engine, timing, signal, frames?.onDenoised),
    (x) =>
      p.format === "json"
        ? jsonBody(x, card, p.n, { params })
        : frames
        ? apngBody(frames.finish(x))
        : pngBody(grid(x, card, layout)),
  );
}
