/**
 * `POST /inpaint`: RePaint on a multipart/form-data body with file parts `image` (the picture,
 * area-resized like /denoise's input) and `mask` (white = regenerate, black = keep; resized
 * nearest, threshold at half gray). At every step the kept region is replaced by the input
 * noised to that level, and at the end by the input itself: kept pixels come back unchanged.
 * `resample` > 1 redoes each step that many times (RePaint's resampling, one-step samplers).
 */
import { Hono } from "hono";
import { toModelImage, toRegenerateMask } from "../../shared/resize.ts";
import { sha256Hex } from "../model.ts";
import { inpaint } from "../img2img.ts";
import { canonicalImage, corsFor, knownOr503, methodNotAllowed } from "./common.ts";
import { badRequest, type RouteContext } from "./context.ts";
import { etag, IMMUTABLE } from "./job.ts";
import { parseInpaint } from "./params.ts";
import { runImageJob } from "./render.ts";
import { decodeUpload, limitBody, multipartPngs, UploadError } from "./upload.ts";

export const INPAINT_PARTS = ["image", "mask"] as const;

export function inpaintRoute(ctx: RouteContext): Hono {
  const app = new Hono();
  app.use("/inpaint", corsFor(["POST"]));
  app.post("/inpaint", limitBody(), async (c) => {
    const arrived = performance.now();
    const known = await knownOr503(c, ctx);
    if (known instanceof Response) return known;
    const { card, backend } = known;
    const parsed = parseInpaint(new URL(c.req.url).searchParams, card, ctx.maxWork);
    if (!parsed.ok) return badRequest(c, "invalid query parameters", parsed.issues);
    const p = parsed.params;
    let parts: Record<"image" | "mask", Uint8Array>;
    let input: Float32Array, regenerate: Uint8Array;
    try {
      parts = await multipartPngs(c, INPAINT_PARTS);
      input = toModelImage(
        decodeUpload(parts.image, "image"),
        card.image.size,
        card.image.channels,
      );
      regenerate = toRegenerateMask(decodeUpload(parts.mask, "mask"), card.image.size);
    } catch (e) {
      if (e instanceof UploadError) return e.respond(c);
      throw e;
    }
    c.header("X-Seed", String(p.seed));
    c.header(
      "ETag",
      await etag([
        card.onnx.sha256,
        backend,
        "inpaint",
        canonicalImage(p),
        p.resample,
        await sha256Hex(parts.image),
        await sha256Hex(parts.mask),
      ]),
    );
    c.header("Cache-Control", p.seedGiven ? IMMUTABLE : "no-store");
    return await runImageJob(
      c,
      ctx,
      arrived,
      card,
      p,
      { ...canonicalImage(p), resample: p.resample },
      (engine, timing, signal, onDenoised) =>
        inpaint(engine, input, regenerate, { ...p, label: p.label, timing, onDenoised }, signal),
    );
  });
  methodNotAllowed(app, "/inpaint", "POST, OPTIONS");
  return app;
}
