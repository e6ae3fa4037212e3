/**
 * The image routes, one Hono sub-app each, mounted by edge/app.ts with `app.route("/", …)`:
 * POST /denoise, POST /inpaint, GET /interpolate, and GET /generate?format=apng (before the
 * app's own /generate).
 */
import { Hono } from "hono";
import type { RouteContext } from "./context.ts";
import { denoiseRoute } from "./denoise.ts";
import { generateApngRoute } from "./generate_apng.ts";
import { inpaintRoute } from "./inpaint.ts";
import { interpolateRoute } from "./interpolate.ts";

export type { RouteContext } from "./context.ts";
export { MAX_BODY_BYTES } from "./upload.ts";

export function imageRoutes(ctx: RouteContext): Hono {
  return new Hono()
    .route("/", generateApngRoute(ctx))
    .route("/", denoiseRoute(ctx))
    .route("/", inpaintRoute(ctx))
    .route("/", interpolateRoute(ctx));
}
