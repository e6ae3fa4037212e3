/**
 * `deno task serve` as a newcomer runs it: deno started by its full path with no deno on PATH,
 * PORT honoured; it answers /generate and its log carries no runtime warning.
 */
import assert from "node:assert/strict";
import { portFromEnv } from "./serve_args.ts";
import { writeTinyModel } from "./testing.ts";

Deno.test("portFromEnv: PORT and HOST with defaults; a bad PORT is named", () => {
  const env = (o: Record<string, string>) => (k: string) => o[k];
  assert.deepEqual(portFromEnv(env({})), { hostname: "0.0.0.0", port: 8000 });
  assert.deepEqual(portFromEnv(env({ PORT: "9001", HOST: "127.0.0.1" })), {
    hostname: "127.0.0.1",
    port: 9001,
  });
  for (const bad of ["x", "-1", "65536", "80.5"]) {
    assert.throws(() => portFromEnv(env({ PORT: bad })), /PORT must be an integer in 0…65535/);
  }
});

Deno.test("deno task serve: deno not on PATH, PORT honoured, no warning in the log", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["task", "serve"],
    cwd: new URL("..", import.meta.url),
    clearEnv: true,
    env: {
      PATH: "/nonexistent",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? "",
      NO_COLOR: "1",
      PORT: String(port),
      HOST: "127.0.0.1",
      ORT_BACKEND: "wasm",
      MODEL: await writeTinyModel({ T: 50, steps: 3 }),
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out: string[] = [];
  const drain = (s: ReadableStream<Uint8Array>) =>
    s.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (c) => void out.push(c) }),
    );
  const drained = Promise.all([drain(proc.stdout), drain(proc.stderr)]);
  try {
    let r: Response | null = null;
    for (let i = 0; i < 600 && !r; i++) {
      r = await fetch(`http://127.0.0.1:${port}/generate?seed=42`).catch(() => null);
      if (!r) await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(r, `no answer on port ${port}: ${out.join("")}`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("Content-Type"), "image/png");
    await r.arrayBuffer();
    // A second request after a first one answered (the legacy-abort warning came on the first).
    const again = await fetch(`http://127.0.0.1:${port}/generate?seed=43`);
    assert.equal(again.status, 200);
    await again.arrayBuffer();
  } finally {
    proc.kill("SIGTERM");
    await proc.status;
    await drained;
  }
  const log = out.join("");
  assert.match(log, new RegExp(`listening on http://127\\.0\\.0\\.1:${port}/`));
  const lines = log.split("\n").filter((s) => s.trim() !== "");
  const unexpected = lines.filter((s) => !/^(Task serve |ddpm-edge: listening on )/.test(s));
  assert.deepEqual(unexpected, [], `unexpected log lines:\n${log}`);
});
