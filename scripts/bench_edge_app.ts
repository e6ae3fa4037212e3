/**
 * Edge timings: model load + session creation, one forward pass per batch size, and whole
 * `/generate` requests through the app (in-process).
 *
 *   deno run --allow-read --allow-env --allow-write scripts/bench_edge_app.ts \
 *     [model.json] [wasm|webgpu]
 *
 * Without a model path it benchmarks an MNIST-sized model (the trainer's defaults: 28×28×1,
 * c = 32, mult 1,2,2, one res block, attention, 10 classes, T = 1000) with random int8 weights.
 */
import { createApp } from "../edge/app.ts";
import { type Backend, createEngine } from "../edge/engine.ts";
import { loadModel } from "../edge/model.ts";
import { mnistUNet, untrained, writeRandomModel } from "../trainer/export/test_models.ts";

function mnistSized(): Promise<string> {
  return writeRandomModel({
    cfg: mnistUNet(),
    seed: 1,
    card: {
      name: "mnist-sized-random",
      schedule: { kind: "linear", T: 1000 },
      labels: null,
      dataset: "none (benchmark)",
      training: untrained("bench"),
    },
    prefix: "ddpm-edge-bench-",
  });
}

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function time(f: () => Promise<unknown>, reps: number): Promise<number> {
  await f();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await f();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

if (import.meta.main) {
  const path = Deno.args[0] ?? await mnistSized();
  const backend = (Deno.args[1] ?? "wasm") as Backend;
  let t0 = performance.now();
  const model = await loadModel(path);
  const tLoad = performance.now() - t0;
  t0 = performance.now();
  const engine = await createEngine(model, { backend });
  const tSession = performance.now() - t0;
  const { card } = model;
  console.log(
    `${card.name}: ${card.onnx.bytes} bytes ${card.onnx.quantization}, backend ${backend}`,
  );
  console.log(`load + verify ${tLoad.toFixed(0)} ms, session ${tSession.toFixed(0)} ms`);
  const size = card.image.channels * card.image.size ** 2;
  for (const n of [1, 2, 16, 32]) {
    const x = new Float32Array(n * size).fill(0.1);
    const ms = await time(() => engine.forward(x, n, 500, null), 5);
    console.log(`forward batch ${n}: ${ms.toFixed(1)} ms (${(ms / n).toFixed(2)} ms/image)`);
  }
  const app = createApp({ load: () => Promise.resolve(engine), maxWork: 1e9 });
  const label = card.labels ? "&label=3" : "";
  for (
    const q of [
      `seed=42`,
      `seed=42&steps=${card.sampling.steps}&n=16&scale=2`,
      `seed=42&steps=50&n=16${label}&guidance=3`,
    ]
  ) {
    const t = performance.now();
    const r = await app.request(`/generate?${q}`);
    const bytes = (await r.arrayBuffer()).byteLength;
    console.log(
      `GET /generate?${q}: ${r.status}, ${(performance.now() - t).toFixed(0)} ms, ${bytes} B, ` +
        r.headers.get("Server-Timing"),
    );
  }
}
