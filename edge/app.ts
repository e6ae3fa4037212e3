/**
 * The HTTP API (Hono): `GET /generate` (PNG or JSON), `/model`, `/healthz`, `/openapi.json` and
 * the HTML page. The engine is loaded lazily on the first request and shared by all of them.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { cors } from "hono/cors";
import { encodePng, tileImages } from "../shared/image.ts";
import type { Engine, Timing } from "./engine.ts";
import { sha256Hex } from "./model.ts";
import { openapi } from "./openapi.ts";
import { APP_CSS, APP_JS, CSP, PAGE_HTML } from "./page.ts";
import {
  canonical,
  DEFAULT_MAX_WORK,
  type GenerateParams,
  type Issue,
  parseQuery,
} from "./params.ts";
import { Queue, QueueFullError } from "./queue.ts";
import { generate } from "./sampler.ts";

export interface AppOptions {
  /** Loads the engine; called once, on the first request that needs it. */
  load: () => Promise<Engine>;
  queue?: Queue;
  /** Cap on n × steps × passes per request. */
  maxWork?: number;
}

/** Paths and the methods they answer (HEAD comes with GET). */
const ROUTES: Record<string, string> = {
  "/": "GET, HEAD",
  "/app.js": "GET, HEAD",
  "/app.css": "GET, HEAD",
  "/favicon.ico": "GET, HEAD",
  "/generate": "GET, HEAD, OPTIONS",
  "/model": "GET, HEAD",
  "/healthz": "GET, HEAD",
  "/openapi.json": "GET, HEAD",
};

const IMMUTABLE = "public, max-age=31536000, immutable";

const ms = (v: number) => v.toFixed(1);

function badRequest(c: Context, error: string, issues: Issue[]) {
  return c.json({ error, issues }, 400);
}

export function createApp(o: AppOptions): Hono {
  const queue = o.queue ?? new Queue();
  const maxWork = o.maxWork ?? DEFAULT_MAX_WORK;
  let state: { status: "idle" | "loading" } | { status: "ready"; engine: Engine } | {
    status: "error";
    error: string;
  } = { status: "idle" };
  let pending: Promise<Engine> | undefined;
  const engine = (): Promise<Engine> => {
    if (!pending) {
      state = { status: "loading" };
      pending = o.load().then(
        (e) => (state = { status: "ready", engine: e }, e),
        (err) => {
          state = { status: "error", error: (err as Error).message };
          throw err;
        },
      );
    }
    return pending;
  };

  const app = new Hono();

  app.use("*", async (c, next) => {
    await next();
    c.header("X-Content-Type-Options", "nosniff");
  });
  app.use(
    "/generate",
    cors({
      origin: "*",
      allowMethods: ["GET", "HEAD"],
      exposeHeaders: ["X-Seed", "ETag", "Server-Timing"],
    }),
  );

  app.get("/", (c) => {
    c.header("Content-Security-Policy", CSP);
    c.header("Referrer-Policy", "no-referrer");
    return c.html(PAGE_HTML);
  });
  app.get(
    "/app.js",
    (c) => c.body(APP_JS, 200, { "Content-Type": "text/javascript; charset=utf-8" }),
  );
  app.get("/app.css", (c) => c.body(APP_CSS, 200, { "Content-Type": "text/css; charset=utf-8" }));

  app.get("/favicon.ico", (c) => c.body(null, 204, { "Cache-Control": "public, max-age=86400" }));

  app.get("/healthz", (c) => {
    if (state.status === "idle") engine().catch(() => {});
    const s = state;
    if (s.status === "ready") {
      return c.json({
        status: "ready",
        backend: s.engine.backend,
        model: s.engine.model.card.name,
        /** Session runs since start (one per sampling step). */
        runs: s.engine.runs,
        queue: {
          inFlight: queue.inFlight,
          waiting: queue.waiting,
        },
      });
    }
    if (s.status === "error") return c.json({ status: "error", error: s.error }, 503);
    return c.json({ status: "not-ready", reason: "model loading" }, 503);
  });

  app.get("/model", async (c) => c.json((await engine()).model.card));

  app.get("/openapi.json", async (c) => c.json(openapi((await engine()).model.card, maxWork)));

  app.get("/generate", async (c) => {
    const e = await engine();
    const parsed = parseQuery(new URL(c.req.url).searchParams, e.model.card, maxWork);
    if (!parsed.ok) return badRequest(c, "invalid query parameters", parsed.issues);
    const p = parsed.params;
    const etag = await etagFor(e, p);
    c.header("X-Seed", String(p.seed));
    c.header("ETag", etag);
    c.header("Cache-Control", p.seedGiven ? IMMUTABLE : "no-store");
    if (p.seedGiven && c.req.header("If-None-Match")?.split(/\s*,\s*/).includes(etag)) {
      return c.body(null, 304);
    }
    // HEAD answers from the query alone (headers only, nothing sampled).
    if (c.req.method === "HEAD") {
      c.header("Content-Type", p.format === "json" ? "application/json" : "image/png");
      return c.body(null, 200);
    }
    const signal = c.req.raw.signal;
    const timing: Timing = { modelMs: 0, runs: 0 };
    const t0 = performance.now();
    let tStart = t0;
    let x: Float32Array;
    try {
      x = await queue.run(() => {
        tStart = performance.now();
        return generate(e, { ...p, timing }, signal);
      }, signal);
    } catch (err) {
      if (err instanceof QueueFullError) {
        c.header("Retry-After", String(err.retryAfterSeconds));
        c.header("Cache-Control", "no-store");
        return c.json({ error: err.message }, 503);
      }
      if (signal.aborted) return c.body(null, 499 as 400); // client gone: nobody reads this
      console.error("generate failed:", err);
      c.header("Cache-Control", "no-store");
      return c.json({ error: `sampling failed: ${(err as Error).message}` }, 500);
    }
    const tSampled = performance.now();
    const { card } = e.model;
    let body: Uint8Array | string;
    if (p.format === "json") {
      body = JSON.stringify({
        params: canonical(p),
        backend: e.backend,
        model: card.name,
        shape: [p.n, card.image.channels, card.image.size, card.image.size],
        data: Array.from(x),
      });
      c.header("Content-Type", "application/json");
    } else {
      body = encodePng(tileImages(x, p.n, card.image.channels, card.image.size, p.scale));
      c.header("Content-Type", "image/png");
    }
    const tEnd = performance.now();
    c.header(
      "Server-Timing",
      `queue;dur=${ms(tStart - t0)}, model;dur=${ms(timing.modelMs)};desc="${timing.runs} runs", ` +
        `sample;dur=${ms(tSampled - tStart)}, encode;dur=${ms(tEnd - tSampled)}`,
    );
    c.header("X-Backend", e.backend);
    return c.body(body as Uint8Array<ArrayBuffer>, 200);
  });

  for (const [path, allow] of Object.entries(ROUTES)) {
    app.all(path, (c) => {
      c.header("Allow", allow);
      return c.json(
        { error: `method ${c.req.method} not allowed on ${path}; allowed: ${allow}` },
        405,
      );
    });
  }
  app.notFound((c) => c.json({ error: `not found: ${new URL(c.req.url).pathname}` }, 404));
  app.onError((err, c) => {
    console.error(err);
    return c.json({ error: err.message }, 500);
  });
  return app;
}

/** Strong ETag: the model's hash, the backend and every output-determining parameter. */
async function etagFor(e: Engine, p: GenerateParams): Promise<string> {
  const key = JSON.stringify([e.model.card.onnx.sha256, e.backend, canonical(p)]);
  return `"${(await sha256Hex(new TextEncoder().encode(key))).slice(0, 32)}"`;
}
