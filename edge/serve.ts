/**
 * `deno task serve`: the edge on PORT (default 8000) and HOST (default 0.0.0.0), started by
 * whichever deno runs the task — the task runner resolves `deno` to its own executable, so this
 * works with deno on PATH or not (a `sh -c 'exec deno …'` task did not). Same permissions as
 * `deno serve edge/main.ts` (net, read, env), which is what Deno Deploy runs.
 */
import { portFromEnv } from "./serve_args.ts";
import app from "./main.ts";

const { hostname, port } = (() => {
  try {
    return portFromEnv((k) => Deno.env.get(k));
  } catch (e) {
    console.error(`ddpm-edge: ${(e as Error).message}`);
    Deno.exit(1);
  }
})();

Deno.serve({
  hostname,
  port,
  onListen: ({ hostname, port }) =>
    console.log(
      `ddpm-edge: listening on http://${
        hostname.includes(":") ? `[${hostname}]` : hostname
      }:${port}/`,
    ),
}, app.fetch);
