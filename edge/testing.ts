/**
 * Test fixtures: tiny but real models, built with the trainer's exporter from random weights and
 * written to a temporary directory (int8 ONNX + model card, exactly as `deno task export` does).
 */
import type { UNetConfig } from "../shared/model_card.ts";
import { tinyUNet, untrained, writeRandomModel } from "../trainer/export/test_models.ts";
import { serveArgs } from "./serve_args.ts";
import type { SamplerName } from "../shared/samplers/mod.ts";

export interface TinyModelOptions {
  /** Number of classes; 0 = unconditional. */
  numClasses?: number;
  T?: number;
  steps?: number;
  guidance?: number;
  seed?: number;
  /** The card's sampling.unlabeled (absent: null class). */
  unlabeled?: "null-class" | "random-label";
  /** The card's sampling.sampler (absent: none, i.e. ddim). */
  sampler?: SamplerName;
  /** The card's sampling.nullClassSteps (absent: none, i.e. `steps`). */
  nullClassSteps?: number;
  /** Give the card Analytic-DPM statistics, estimated on the model as the exporter does. */
  analytic?: boolean;
}

export const TINY_LABELS = ["zero", "one", "two"];

/** Config of the tiny test UNet: 8×8×1, two levels, attention, a few thousand parameters. */
export function tinyConfig(numClasses: number): UNetConfig {
  return tinyUNet({ numClasses });
}

/** Export a tiny model into a fresh temp dir; returns the path of its model.json. */
export function writeTinyModel(o: TinyModelOptions = {}): Promise<string> {
  const numClasses = o.numClasses ?? 3;
  return writeRandomModel({
    cfg: tinyConfig(numClasses),
    seed: o.seed ?? 1,
    card: {
      name: numClasses > 0 ? "tiny-cond" : "tiny-uncond",
      schedule: { kind: "linear", T: o.T ?? 50 },
      labels: numClasses > 0 ? TINY_LABELS.slice(0, numClasses) : null,
      dataset: "random weights (test fixture)",
      training: untrained(),
      sampling: {
        steps: o.steps ?? 4,
        eta: 1,
        guidance: o.guidance ?? (numClasses > 0 ? 1 : 0),
        ...(o.unlabeled ? { unlabeled: o.unlabeled } : {}),
        ...(o.nullClassSteps ? { nullClassSteps: o.nullClassSteps } : {}),
        ...(o.sampler ? { sampler: o.sampler } : {}),
      },
    },
    analyticImages: o.analytic || o.sampler === "analytic" ? 16 : undefined,
    prefix: "ddpm-edge-test-",
    createdAt: new Date(0),
  });
}

/** A free loopback port. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export interface Server {
  url: string;
  close(): Promise<void>;
}

/** A `deno serve edge/main.ts` subprocess (Deploy permissions), not waited for. */
export interface Spawned extends Server {
  /** Exit status, once it exits. */
  status: Promise<Deno.CommandStatus>;
  /** Everything written to stderr so far (complete once `status` has resolved). */
  stderr(): string;
}

/** Start `deno serve edge/main.ts` on a free loopback port with the given environment. */
export function spawnServer(env: Record<string, string>): Spawned {
  const port = freePort();
  const proc = new Deno.Command(Deno.execPath(), {
    args: serveArgs(port),
    cwd: new URL("..", import.meta.url),
    env: { ORT_BACKEND: "wasm", ORT_THREADS: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const chunks: string[] = [];
  const drained = proc.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (s) => void chunks.push(s) }),
  );
  const status = proc.status.then(async (st) => (await drained, st));
  return {
    url: `http://127.0.0.1:${port}`,
    status,
    stderr: () => chunks.join(""),
    close: async () => {
      try {
        proc.kill("SIGTERM");
      } catch { /* already gone */ }
      await status;
    },
  };
}

/**
 * Wait until the server exits (resolves its status) or answers /healthz (resolves null: it
 * started). For start-up faults, which must stop it before it serves.
 */
export async function exitOrServe(s: Spawned): Promise<Deno.CommandStatus | null> {
  let exited: Deno.CommandStatus | undefined;
  s.status.then((st) => exited = st);
  while (!exited) {
    const r = await fetch(`${s.url}/healthz`).catch(() => null);
    if (r) {
      await r.body?.cancel();
      return null;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return exited;
}

/** Start `deno serve edge/main.ts` and wait until /healthz answers ready. */
export async function startServer(env: Record<string, string>): Promise<Server> {
  const server = spawnServer(env);
  let exited = false;
  server.status.then(() => exited = true);
  for (let polls = 0; !exited && polls < 1200; polls++) {
    const r = await fetch(`${server.url}/healthz`).catch(() => null);
    if (r) {
      const body = await r.json();
      if (body.status === "ready") return server;
      if (body.status === "error") {
        await server.close();
        throw new Error(`server failed to load: ${body.error}`);
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const why = exited ? "exited" : "did not become ready";
  await server.close();
  throw new Error(`server ${why}: ${server.stderr()}`);
}

/** A loopback HTTP address that never answers (see `silentServer`). */
export interface SilentServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Connections accepted so far. */
  accepted(): number;
  /** Close the listener and every accepted connection. */
  close(): void;
}

/**
 * A real TCP listener on 127.0.0.1 that accepts connections and then stays silent — or, given
 * `partial`, writes those bytes (e.g. headers promising a body) and then stalls.
 */
export function silentServer(partial?: string): SilentServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const conn of listener) {
        conns.push(conn);
        if (partial) await conn.write(new TextEncoder().encode(partial)).catch(() => {});
      }
    } catch { /* closed */ }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    accepted: () => conns.length,
    close: () => {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
    },
  };
}
