/**
 * What the image routes need from the app (edge/app.ts builds it once): the engine, what is
 * known before it loads, the shared queue and the limits. Routes are Hono sub-apps mounted with
 * `app.route("/", …)`.
 */
import type { Context } from "hono";
import type { ModelCard } from "../../shared/model_card.ts";
import type { Backend, Engine } from "../engine.ts";
import type { Queue } from "../queue.ts";

export interface RouteContext {
  /** The engine (rejects when it failed to load). */
  engine(): Promise<Engine>;
  /** The card and backend, without waiting for the engine when the app was given them. */
  known(): Promise<{ card: ModelCard; backend: Backend }>;
  /** The load error, once the engine has failed; else null. */
  failed(): string | null;
  queue: Queue;
  /** Cap on model calls × images × passes per request (MAX_WORK). */
  maxWork: number;
  timeoutMs: number;
}

/** 503 with the load error (the same answer /generate gives). */
export function unavailable(c: Context, error: string) {
  c.header("Cache-Control", "no-store");
  return c.json({ error: `model failed to load: ${error}` }, 503);
}

export interface Issue {
  path: string;
  message: string;
}

/** 400 naming the offending parameters or parts. */
export function badRequest(c: Context, error: string, issues: Issue[]) {
  return c.json({ error, issues }, 400);
}
