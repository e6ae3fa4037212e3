/**
 * `POST /denoise`: SDEdit on a PNG body (any size and colour type; area-resized to the model's
 * size, Rec. 601 gray for a 1-channel model, alpha over black). `strength` ∈ (0, 1] is the
 * fraction of the chain: the input is noised to t₀ = ⌈strength·T⌉ − 1 and `steps` sampler steps
 * of the chain cut at t₀ bring it back. No label: the null class (the input decides the class).
 */
import { Hono } from "hono";
import { toModelImage } from "../../shared/resize.ts";
import { sha256Hex } from "../model.ts";
import { denoise } from "../img2img.ts";
import { canonicalImage, corsFor, knownOr503, methodNotAllowed } from "./common.ts";
import { badRequest, type RouteContext } from "./context.ts";
import { etag, IMMUTABLE } from "./job.ts";
import { parseDenoise } from "./params.ts";
import { runImageJob } from "./render.ts";
import { decodeUpload, limitBody, pngBody as readPng, UploadError } from "./upload.ts";

export function denoiseRoute(ctx: RouteContext): Hono {
  const app = new Hono();
  app.use("/denoise", corsFor(["POST"]));
  app.post("/denoise", limitBody(), async (c) => {
    const arrived = performance.now();
    const known = await knownOr503(c, ctx);
    if (known instanceof Response) return known;
    const { card, backend } = known;
    const parsed = parseDenoise(new URL(c.req.url).searchParams, card, ctx.maxWork);
    if (!parsed.ok) return badRequest(c, "invalid query parameters", parsed.issues);
    const p = parsed.params;
    let bytes: Uint8Array, input: Float32Array;
    try {
      bytes = await readPng(c);
      input = toModelImage(decodeUpload(bytes, "body"), card.image.size, card.image.channels);
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
        "denoise",
        canonicalImage(p),
        p.strength,
        await sha256Hex(bytes),
      ]),
    );
    c.header("Cache-Control", p.seedGiven ? IMMUTABLE : "no-store");
    return await runImageJob(
      c,
      ctx,
      arrived,
      card,
      p,
      { ...canonicalImage(p), strength: p.strength },
      (engine, timing, signal, onDenoised) =>
        denoise(engine, input, { ...p, label: p.label, timing, onDenoised }, signal),
    );
  });
  methodNotAllowed(app, "/denoise", "POST, OPTIONS");
  return app;
}
