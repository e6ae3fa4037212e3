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
