/**
 * The `deno serve` command line that runs the edge with exactly the permissions Deno Deploy
 * grants (net, read, env: no writes, no FFI, no subprocesses), on a loopback port. Used by the
 * real-server tests and the soak so both exercise the deployment's permission set.
 */
export function serveArgs(port: number): string[] {
  return [
    "serve",
    "--allow-net",
    "--allow-read",
    "--allow-env",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "edge/main.ts",
  ];
}

/** The listening address of `deno task serve` (edge/serve.ts): PORT and HOST, validated. */
export function portFromEnv(
  env: (k: string) => string | undefined,
): { hostname: string; port: number } {
  const raw = env("PORT") || "8000";
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) {
    throw new Error(`PORT must be an integer in 0…65535, got "${raw}"`);
  }
  return { hostname: env("HOST") || "0.0.0.0", port };
}
