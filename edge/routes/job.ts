/**
 * One sampling job of /generate or an image route: through the shared queue,
 * aborted when the client leaves or REQUEST_TIMEOUT_MS (from arrival) passes, with the same
 * status codes (503 + Retry-After when the queue is full, 504 on time-out) and Server-Timing.
 */
import type { Context } from "hono";
import type { Engine, Timing } from "../engine.ts";
import { QueueFullError } from "../queue.ts";
import type { RouteContext } from "./context.ts";
import { unavailable } from "./context.ts";
import { sha256Hex } from "../model.ts";

export const IMMUTABLE = "public, max-age=31536000, immutable";

const ms = (v: number) => v.toFixed(1);

/** Strong ETag over the model, the backend, the route, its parameters and its input bytes. */
export async function etag(parts: unknown[]): Promise<string> {
  const key = new TextEncoder().encode(JSON.stringify(parts));
  return `"${(await sha256Hex(key)).slice(0, 32)}"`;
}

export type JobResult = { body: Uint8Array | string; type: string };

/**
 * Run `work` (sampling) then `render` (encoding) for a request that arrived at `arrived`;
 * answers the response, with X-Seed/ETag/Cache-Control already set by the caller.
 */
export async function runJob<T>(
  c: Context,
  ctx: RouteContext,
  arrived: number,
  work: (engine: Engine, timing: Timing, signal: AbortSignal) => Promise<T>,
  render: (result: T, engine: Engine) => JobResult,
): Promise<Response> {
  let e: Engine;
  try {
    e = await ctx.engine();
  } catch {
    return unavailable(c, ctx.failed() ?? "unknown error");
  }
  const gone = c.req.raw.signal;
  const limit = new AbortController();
  const timer = setTimeout(
    () => limit.abort(new DOMException("request timed out", "TimeoutError")),
    Math.max(0, ctx.timeoutMs - (performance.now() - arrived)),
  );
  const signal = AbortSignal.any([gone, limit.signal]);
  const timing: Timing = { modelMs: 0, runs: 0 };
  const t0 = performance.now();
  let tStart = t0, started = false;
  let result: T;
  try {
    result = await ctx.queue.run(() => {
      tStart = performance.now();
      started = true;
      return work(e, timing, signal);
    }, signal);
  } catch (err) {
    c.header("Cache-Control", "no-store");
    if (err instanceof QueueFullError) {
      c.header("Retry-After", String(err.retryAfterSeconds));
      return c.json({ error: err.message }, 503);
    }
    if (gone.aborted) return c.body(null, 499 as 400); // client gone: nobody reads this
    if (limit.signal.aborted) {
      const where = !started ? "waiting for a slot" : `after ${timing.runs} model runs`;
      return c.json({
        error: `timed out: not done within ${ctx.timeoutMs} ms (REQUEST_TIMEOUT_MS), ${where}; ` +
          `lower n or steps, or retry when the server is less busy`,
      }, 504);
    }
    console.error("sampling failed:", err);
    return c.json({ error: `sampling failed: ${(err as Error).message}` }, 500);
  } finally {
    clearTimeout(timer);
  }
  const tSampled = performance.now();
  const out = render(result, e);
  const tEnd = performance.now();
  c.header(
    "Server-Timing",
    `queue;dur=${ms(tStart - t0)}, model;dur=${ms(timing.modelMs)};desc="${timing.runs} runs", ` +
      `sample;dur=${ms(tSampled - tStart)}, encode;dur=${ms(tEnd - tSampled)}`,
  );
  c.header("X-Backend", e.backend);
  c.header("Content-Type", out.type);
  return c.body(out.body as Uint8Array<ArrayBuffer>, 200);
}
