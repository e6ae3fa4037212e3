/**
 * The HTTP API (Hono): `GET /generate` (PNG or JSON), `/model`, `/healthz`, `/openapi.json` and
 * the HTML page. The engine starts loading when the app is created and is shared by all of them;
 * given the verified model (and backend) up front, the routes that need only the card — `/model`,
 * `/openapi.json`, query validation and `HEAD /generate` — answer without waiting for it.
 *
 * Limits: a request target (path + query) over MAX_URL_LENGTH characters → 414; a GET/HEAD with a
 * body → 413; a generation that takes longer than `timeoutMs` (from arrival, queueing included)
 * is aborted between steps → 504. If the engine fails to load, `/generate` answers 503 with the
 * reason and `/healthz` reports it (the process keeps running: the failure is visible remotely).
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { cors } from "hono/cors";
import { encodePng, tileImages } from "../shared/image.ts";
import type { ModelCard } from "../shared/model_card.ts";
import type { Backend, Engine } from "./engine.ts";
import { type Model, sha256Hex } from "./model.ts";
import { openapi } from "./openapi.ts";
import { APP_CSS, APP_JS, CSP, PAGE_HTML } from "./page.ts";
import {
  canonical,
  DEFAULT_MAX_WORK,
  type GenerateParams,
  type Issue,
  labelsUsed,
  parseQuery,
  sampledLabels,
} from "./params.ts";
import { Queue } from "./queue.ts";
import { generate } from "./sampler.ts";
import { imageRoutes } from "./routes/mod.ts";
import type { RouteContext } from "./routes/context.ts";
import { IMMUTABLE, type JobResult, runJob } from "./routes/job.ts";

export interface AppOptions {
  /** Loads the engine; called once, when the app is created. */
  load: () => Promise<Engine>;
  /** The verified model `load` will run: lets card-only routes answer while it loads. */
  model?: Model;
  /** The backend `load` will use (with `model`: lets HEAD /generate answer while it loads). */
  backend?: Backend;
  queue?: Queue;
  /** Cap on n × steps × passes per request. */
  maxWork?: number;
  /** A generation still running this long after the request arrived is aborted (504). */
  timeoutMs?: number;
}

/** Longest request target (path + query) accepted, in characters; longer → 414. */
export const MAX_URL_LENGTH = 2048;

/** Default per-request time limit (REQUEST_TIMEOUT_MS): twice a maximal default-cap request. */
export const DEFAULT_TIMEOUT_MS = 120_000;

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

function badRequest(c: Context, error: string, issues: Issue[]) {
  return c.json({ error, issues }, 400);
}

export function createApp(o: AppOptions): Hono {
  const queue = o.queue ?? new Queue();
  const maxWork = o.maxWork ?? DEFAULT_MAX_WORK;
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let state: { status: "loading" } | { status: "ready"; engine: Engine } | {
    status: "error";
    error: string;
  } = { status: "loading" };
  const pending = Promise.resolve().then(o.load).then(
    (e) => (state = { status: "ready", engine: e }, e),
    (err) => {
      state = { status: "error", error: (err as Error)?.message ?? String(err) };
      throw err;
    },
  );
  pending.catch(() => {}); // reported by /healthz and /generate, not as an unhandled rejection
  const engine = (): Promise<Engine> => pending;
  /** The card, without waiting for the engine when the model was given. */
  const card = async () => o.model?.card ?? (await engine()).model.card;
  const unavailable = (c: Context) => {
    c.header("Cache-Control", "no-store");
    return c.json({ error: `model failed to load: ${(state as { error: string }).error}` }, 503);
  };

  const app = new Hono();

  app.use("*", async (c, next) => {
    await next();
    c.header("X-Content-Type-Options", "nosniff");
  });
  app.use("*", async (c, next) => {
    let url: URL;
    try {
      url = new URL(c.req.url);
    } catch {
      // The runtime builds the URL from the Host header; one that is no authority ("a b",
      // "[::1", "x:99999") makes it unparseable.
      return c.json(
        { error: "bad request: the Host header and path do not form a valid URL" },
        400,
      );
    }
    const length = url.pathname.length + url.search.length;
    if (length > MAX_URL_LENGTH) {
      return c.json({
        error: `URI too long: ${length} characters of path and query; the limit is ` +
          `${MAX_URL_LENGTH}`,
      }, 414);
    }
    const method = c.req.method;
    const hasBody = Number(c.req.header("Content-Length") ?? 0) > 0 ||
      c.req.header("Transfer-Encoding") !== undefined;
    if ((method === "GET" || method === "HEAD") && hasBody) {
      return c.json({ error: `request body not accepted: ${method} takes no body` }, 413);
    }
    await next();
  });
  app.use(
    "/generate",
    cors({
      origin: "*",
      allowMethods: ["GET", "HEAD"],
      exposeHeaders: ["X-Seed", "ETag", "Server-Timing"],
    }),
  );

  const routeContext: RouteContext = {
    engine,
    known: async () =>
      o.model && o.backend
        ? { card: o.model.card, backend: o.backend }
        : await engine().then((e) => ({ card: e.model.card, backend: e.backend })),
    failed: () => state.status === "error" ? state.error : null,
    queue,
    maxWork,
    timeoutMs,
  };
  // POST /denoise, POST /inpaint, GET /interpolate, GET /generate?format=apng (edge/routes/).
  app.route("/", imageRoutes(routeContext));

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
    const s = state;
    if (s.status === "ready") {
      return c.json({
        status: "ready",
        backend: s.engine.backend,
        model: s.engine.model.card.name,
        /** Forward passes since start (one per sampling step). */
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

  app.get("/model", async (c) => {
    if (!o.model && state.status === "error") return unavailable(c);
    return c.json(await card());
  });

  app.get("/openapi.json", async (c) => {
    if (!o.model && state.status === "error") return unavailable(c);
    return c.json(
      openapi(await card(), { maxWork, maxUrlLength: MAX_URL_LENGTH, timeoutMs }),
    );
  });

  app.get("/generate", async (c) => {
    const arrived = performance.now();
    if (state.status === "error") return unavailable(c);
    let known: { card: ModelCard; backend: Backend };
    try {
      known = o.model && o.backend
        ? { card: o.model.card, backend: o.backend }
        : await engine().then((e) => ({ card: e.model.card, backend: e.backend }));
    } catch {
      return unavailable(c);
    }
    const parsed = parseQuery(new URL(c.req.url).searchParams, known.card, maxWork);
    if (!parsed.ok) return badRequest(c, "invalid query parameters", parsed.issues);
    const p = parsed.params;
    const etag = await etagFor(known.card, known.backend, p);
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
    // Queue, disconnect and REQUEST_TIMEOUT_MS (from arrival), as every image route runs.
    return await runJob(
      c,
      routeContext,
      arrived,
      (e, timing, signal) =>
        generate(e, { ...p, label: sampledLabels(p, e.model.card), timing }, signal),
      (x, e): JobResult => {
        const { card } = e.model;
        if (p.format === "json") {
          return {
            type: "application/json",
            body: JSON.stringify({
              params: canonical(p),
              /** The class of each image (drawn from the seed when none was asked for), or null. */
              labels: labelsUsed(p, card),
              backend: e.backend,
              model: card.name,
              shape: [p.n, card.image.channels, card.image.size, card.image.size],
              data: Array.from(x),
            }),
          };
        }
        return {
          type: "image/png",
          body: encodePng(tileImages(x, p.n, card.image.channels, card.image.size, p.scale)),
        };
      },
    );
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
async function etagFor(card: ModelCard, backend: Backend, p: GenerateParams): Promise<string> {
  const key = JSON.stringify([card.onnx.sha256, backend, canonical(p)]);
  return `"${(await sha256Hex(new TextEncoder().encode(key))).slice(0, 32)}"`;
}
