/**
 * Test fixtures: tiny but real models, built with the trainer's exporter from random weights and
 * written to a temporary directory (int8 ONNX + model card, exactly as `deno task export` does).
 */
import { exportModel, randomWeights, writeModel } from "../trainer/export.ts";
import type { UNetConfig } from "../shared/model_card.ts";

export interface TinyModelOptions {
  /** Number of classes; 0 = unconditional. */
  numClasses?: number;
  T?: number;
  steps?: number;
  guidance?: number;
  seed?: number;
}

export const TINY_LABELS = ["zero", "one", "two"];

/** Config of the tiny test UNet: 8×8×1, two levels, attention, a few thousand parameters. */
export function tinyConfig(numClasses: number): UNetConfig {
  return {
    imageSize: 8,
    inChannels: 1,
    channels: 8,
    channelMult: [1, 2],
    numResBlocks: 1,
    attention: true,
    groups: 4,
    numClasses,
  };
}

/** Export a tiny model into a fresh temp dir; returns the path of its model.json. */
export async function writeTinyModel(o: TinyModelOptions = {}): Promise<string> {
  const numClasses = o.numClasses ?? 3;
  const cfg = tinyConfig(numClasses);
  const result = await exportModel({
    cfg,
    weights: randomWeights(cfg, o.seed ?? 1, 0.5),
    quant: "int8",
    card: {
      name: numClasses > 0 ? "tiny-cond" : "tiny-uncond",
      schedule: { kind: "linear", T: o.T ?? 50 },
      labels: numClasses > 0 ? TINY_LABELS.slice(0, numClasses) : null,
      dataset: "random weights (test fixture)",
      training: {
        steps: 0,
        batch: 1,
        wallTimeSeconds: 0,
        finalLoss: null,
        backend: "none",
        command: "test",
      },
      sampling: { steps: o.steps ?? 4, eta: 1, guidance: o.guidance ?? (numClasses > 0 ? 1 : 0) },
    },
    createdAt: new Date(0),
  });
  const dir = await Deno.makeTempDir({ prefix: "ddpm-edge-test-" });
  await writeModel(dir, result);
  return `${dir}/model.json`;
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

/** Start `deno serve edge/main.ts` and wait until /healthz answers ready. */
export async function startServer(env: Record<string, string>): Promise<Server> {
  const port = freePort();
  const proc = new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      "--allow-net",
      "--allow-read",
      "--allow-env",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "edge/main.ts",
    ],
    cwd: new URL("..", import.meta.url),
    env: { ORT_BACKEND: "wasm", ORT_THREADS: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr: string[] = [];
  const drained = proc.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (s) => void stderr.push(s) }),
  );
  const url = `http://127.0.0.1:${port}`;
  const close = async () => {
    try {
      proc.kill("SIGTERM");
    } catch { /* already gone */ }
    await proc.status;
    await drained;
  };
  for (let i = 0; i < 600; i++) {
    const r = await fetch(`${url}/healthz`).catch(() => null);
    if (r) {
      const body = await r.json();
      if (body.status === "ready") return { url, close };
      if (body.status === "error") {
        await close();
        throw new Error(`server failed to load: ${body.error}`);
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await close();
  throw new Error(`server did not become ready: ${stderr.join("")}`);
}
