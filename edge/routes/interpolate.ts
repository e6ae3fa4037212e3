/**
 * `GET /interpolate?from=A&to=B&frames=F`: F images whose initial noise is the spherical
 * interpolation of seed A's and seed B's x_T, sampled by deterministic DDIM (η = 0), as a
 * one-row PNG strip or (`format=apng`) an animation with one frame per image. Frame 0 is
 * /generate?seed=A&sampler=ddim&eta=0 and frame F−1 seed B's, with the same other parameters.
 */
import { Hono } from "hono";
import { interpolate } from "../img2img.ts";
import { canonicalImage, corsFor, knownOr503, methodNotAllowed } from "./common.ts";
import { badRequest, type RouteContext } from "./context.ts";
import { etag, IMMUTABLE, runJob } from "./job.ts";
import { parseInterpolate } from "./params.ts";
import { apngBody, grid, jsonBody, pngBody } from "./render.ts";
import { FRAME_MS } from "./render.ts";

export function interpolateRoute(ctx: RouteContext): Hono {
  const app = new Hono();
  app.use("/interpolate", corsFor(["GET", "HEAD"]));
  app.get("/interpolate", async (c) => {
    const arrived = performance.now();
    const known = await knownOr503(c, ctx);
    if (known instanceof Response) return known;
    const { card, backend } = known;
    const parsed = parseInterpolate(new URL(c.req.url).searchParams, card, ctx.maxWork);
    if (!parsed.ok) return badRequest(c, "invalid query parameters", parsed.issues);
    const p = parsed.params;
    const tag = await etag([
      card.onnx.sha256,
      backend,
      "interpolate",
      canonicalImage(p),
      p.from,
      p.to,
      p.frames,
    ]);
    c.header("X-Seed", String(p.from));
    c.header("ETag", tag);
    c.header("Cache-Control", IMMUTABLE);
    if (c.req.header("If-None-Match")?.split(/\s*,\s*/).includes(tag)) return c.body(null, 304);
    if (c.req.method === "HEAD") {
      const type = { png: "image/png", apng: "image/apng", json: "application/json" }[p.format];
      c.header("Content-Type", type);
      return c.body(null, 200);
    }
    return await runJob(
      c,
      ctx,
      arrived,
      (engine, timing, signal) => interpolate(engine, { ...p, label: p.labels, timing }, signal),
      (x) => {
        if (p.format === "json") {
          return jsonBody(x, card, p.frames, {
            params: { ...canonicalImage(p), from: p.from, to: p.to, frames: p.frames },
            labels: p.labels === undefined ? null : p.labels,
          });
        }
        if (p.format === "png") {
          return pngBody(grid(x, card, { n: p.frames, scale: p.scale, cols: p.frames }));
        }
        const size = card.image.channels * card.image.size ** 2;
        const frames = Array.from(
          { length: p.frames },
          (_, f) => grid(x.subarray(f * size, (f + 1) * size), card, { n: 1, scale: p.scale }),
        );
        return apngBody(frames, FRAME_MS, FRAME_MS);
      },
    );
  });
  methodNotAllowed(app, "/interpolate", "GET, HEAD, OPTIONS");
  return app;
}
