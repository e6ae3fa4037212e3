/** Pieces every image route uses: its CORS policy, the 405 answer, the card-or-503 step. */
import type { Context, Hono, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { ModelCard } from "../../shared/model_card.ts";
import type { Backend } from "../engine.ts";
import { canonical } from "../params.ts";
import { type RouteContext, unavailable } from "./context.ts";
import type { ImageParams } from "./params.ts";

/** Any origin, no credentials; the headers /generate exposes. */
export function corsFor(methods: string[]): MiddlewareHandler {
  return cors({
    origin: "*",
    allowMethods: methods,
    exposeHeaders: ["X-Seed", "ETag", "Server-Timing"],
  });
}

/** 405 with Allow for the other methods on `path`. */
export function methodNotAllowed(app: Hono, path: string, allow: string): void {
  app.all(path, (c) => {
    c.header("Allow", allow);
    return c.json(
      { error: `method ${c.req.method} not allowed on ${path}; allowed: ${allow}` },
      405,
    );
  });
}

/** The card and backend, or the 503 to answer when the model failed to load. */
export async function knownOr503(
  c: Context,
  ctx: RouteContext,
): Promise<{ card: ModelCard; backend: Backend } | Response> {
  const failed = ctx.failed();
  if (failed !== null) return unavailable(c, failed);
  try {
    return await ctx.known();
  } catch {
    return unavailable(c, ctx.failed() ?? "unknown error");
  }
}

/** The output-determining parameters, in a fixed order (ETag, JSON body). */
export function canonicalImage(p: ImageParams) {
  return { ...canonical({ ...p, format: "png" }), format: p.format };
}
