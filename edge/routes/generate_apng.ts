/**
 * `GET /generate?…&format=apng`: the denoising as an animated PNG, one frame per step showing
 * the sampler's current prediction x̂₀ (not x_t, which is mostly noise until the end), the last
 * frame the final image — the same pixels `format=png` returns for the same query. Mounted
 * before edge/app.ts's /generate, which answers every other format.
 */
import { Hono } from "hono";
import { generate } from "../sampler.ts";
import { sampledLabels, workPasses } from "../params.ts";
import { canonicalImage, knownOr503 } from "./common.ts";
import { badRequest, type RouteContext } from "./context.ts";
import { etag, IMMUTABLE, runJob } from "./job.ts";
import { parseShared } from "./params.ts";
import { apngBody, FrameRecorder } from "./render.ts";
import { SAMPLERS } from "../../shared/samplers/mod.ts";

export function generateApngRoute(ctx: RouteContext): Hono {
  const app = new Hono();
  app.get("/generate", async (c, next) => {
    const query = new URL(c.req.url).searchParams;
    const formats = query.getAll("format");
    if (formats.length !== 1 || formats[0] !== "apng") return await next();
    const arrived = performance.now();
    const known = await knownOr503(c, ctx);
    if (known instanceof Response) return known;
    const { card, backend } = known;
    const r = parseShared(query, card, []);
    if (!r.params) return badRequest(c, "invalid query parameters", r.issues);
    const p = r.params;
    const label = sampledLabels({ ...p, format: "png" }, card);
    const work = p.n * p.steps * SAMPLERS[p.sampler].callsPerStep * workPasses(p, label, card);
    if (work > ctx.maxWork) {
      return badRequest(c, "invalid query parameters", [{
        path: "n",
        message: `work n × calls × passes = ${work} exceeds the cap of ${ctx.maxWork} ` +
          `(MAX_WORK); lower n or steps`,
      }]);
    }
    const tag = await etag([card.onnx.sha256, backend, "generate", canonicalImage(p)]);
    c.header("X-Seed", String(p.seed));
    c.header("ETag", tag);
    c.header("Cache-Control", p.seedGiven ? IMMUTABLE : "no-store");
    if (p.seedGiven && c.req.header("If-None-Match")?.split(/\s*,\s*/).includes(tag)) {
      return c.body(null, 304);
    }
    if (c.req.method === "HEAD") {
      c.header("Content-Type", "image/apng");
      return c.body(null, 200);
    }
    const frames = new FrameRecorder(card, { n: p.n, scale: p.scale });
    return await runJob(
      c,
      ctx,
      arrived,
      (engine, timing, signal) =>
        generate(engine, { ...p, label, timing, onDenoised: frames.onDenoised }, signal),
      (x) => apngBody(frames.finish(x)),
    );
  });
  return app;
}
