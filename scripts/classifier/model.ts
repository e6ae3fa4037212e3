/**
 * The evaluation classifier: a dense MLP 784 → 256 → 128 → 10 (ReLU) on 28×28 grayscale digits,
 * trained once with tfjs (`train.ts`) on MNIST's training split; for emoji (`--data emoji`),
 * 3072 → 512 → 128 → 9 on 32×32 RGB (CHW, as the edge's images) by category, in
 * fixtures/classifier-emoji/ (`classifierDir`). Its 128-d penultimate
 * activations are the features for the project's FID; its softmax gives confidence, coverage
 * and conditional accuracy. Inference here is plain JS matmuls (no tfjs, no backend start-up).
 *
 * Files: `<dir>/classifier.json` (architecture, layer offsets, held-out accuracy, provenance)
 * and `<dir>/weights.bin` (little-endian float32, layers in order, each w [nin, nout] then b).
 */
import { join } from "node:path";
import { z } from "zod";

export const CLASSIFIER_DIR = new URL("../../fixtures/classifier/", import.meta.url).pathname;
/** The emoji category classifier (32×32 RGB, CHW). */
export const EMOJI_CLASSIFIER_DIR =
  new URL("../../fixtures/classifier-emoji/", import.meta.url).pathname;

/** The evaluation classifier of a model card's `dataset` (MNIST's for everything but emoji). */
export function classifierDir(dataset: string): string {
  return dataset === "emoji" ? EMOJI_CLASSIFIER_DIR : CLASSIFIER_DIR;
}

export const INPUT_SIZE = 28;
/** Layer widths, input first. */
export const LAYERS = [784, 256, 128, 10] as const;
/** Width of the feature layer (the penultimate activations). */
export const FEATURE_DIM = LAYERS[LAYERS.length - 2];
export const NUM_CLASSES = LAYERS[LAYERS.length - 1];

export const ClassifierCardSchema = z.object({
  format: z.literal("ddpm-edge/classifier@1"),
  architecture: z.object({
    kind: z.literal("mlp"),
    layers: z.array(z.number().int().positive()),
    activation: z.literal("relu"),
    /**
     * Pixels as fed to the network: [0, 1] (image in [−1, 1] mapped by (x + 1) / 2), e.g.
     * "28x28 grayscale in [0,1], row-major" or "32x32 RGB in [0,1], CHW (planes R, G, B)".
     */
    input: z.string(),
    featureLayer: z.number().int().nonnegative(),
  }),
  weights: z.object({
    file: z.string(),
    dtype: z.literal("float32"),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    /** Per layer: float offsets of w and b in the file. */
    tensors: z.array(z.object({
      name: z.string(),
      shape: z.array(z.number().int().positive()),
      offset: z.number().int().nonnegative(),
    })),
  }),
  data: z.object({
    dataset: z.string(),
    train: z.number().int().positive(),
    heldOut: z.number().int().positive(),
    split: z.string(),
    /** Class names, index = class (absent on the MNIST card: the digits 0…9). */
    labels: z.array(z.string()).optional(),
  }),
  heldOutAccuracy: z.number().min(0).max(1),
  training: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
});
export type ClassifierCard = z.infer<typeof ClassifierCardSchema>;

export interface Dense {
  nin: number;
  nout: number;
  /** [nin, nout] row-major. */
  w: Float32Array;
  b: Float32Array;
}

export interface Classifier {
  card: ClassifierCard;
  layers: Dense[];
}

export interface ClassifierOutput {
  n: number;
  /** n × FEATURE_DIM penultimate activations (after ReLU). */
  features: Float32Array;
  /** n × NUM_CLASSES logits. */
  logits: Float32Array;
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Tensors of the MLP in file order, with their float offsets. */
export function tensorLayout(layers: readonly number[] = LAYERS) {
  const out: { name: string; shape: number[]; offset: number }[] = [];
  let offset = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    out.push({ name: `dense${l}.w`, shape: [layers[l], layers[l + 1]], offset });
    offset += layers[l] * layers[l + 1];
    out.push({ name: `dense${l}.b`, shape: [layers[l + 1]], offset });
    offset += layers[l + 1];
  }
  return { tensors: out, total: offset };
}

/** Load the committed classifier (checks the weights' sha256 and size). */
export async function loadClassifier(dir = CLASSIFIER_DIR): Promise<Classifier> {
  const card = ClassifierCardSchema.parse(
    JSON.parse(await Deno.readTextFile(join(dir, "classifier.json"))),
  );
  const bytes = await Deno.readFile(join(dir, card.weights.file));
  const sha = await sha256Hex(bytes);
  if (sha !== card.weights.sha256) {
    throw new Error(`${card.weights.file}: sha256 ${sha} ≠ ${card.weights.sha256} in the card`);
  }
  const dims = card.architecture.layers;
  const { total } = tensorLayout(dims);
  if (bytes.byteLength !== total * 4) {
    throw new Error(`${card.weights.file}: ${bytes.byteLength} bytes, expected ${total * 4}`);
  }
  const all = new Float32Array(total);
  new Uint8Array(all.buffer).set(bytes); // little-endian hosts (x86, arm)
  const byName = new Map(card.weights.tensors.map((t) => [t.name, t]));
  const layers: Dense[] = [];
  for (let l = 0; l + 1 < dims.length; l++) {
    const w = byName.get(`dense${l}.w`), b = byName.get(`dense${l}.b`);
    if (!w || !b) throw new Error(`classifier card lacks dense${l}`);
    const nin = dims[l], nout = dims[l + 1];
    layers.push({
      nin,
      nout,
      w: all.subarray(w.offset, w.offset + nin * nout),
      b: all.subarray(b.offset, b.offset + nout),
    });
  }
  return { card, layers };
}

/** y = x W + b for n rows, optional ReLU. */
function denseForward(x: Float32Array, n: number, layer: Dense, relu: boolean): Float32Array {
  const { nin, nout, w, b } = layer;
  const y = new Float32Array(n * nout);
  const acc = new Float64Array(nout);
  for (let i = 0; i < n; i++) {
    acc.set(b);
    const xo = i * nin;
    for (let k = 0; k < nin; k++) {
      const v = x[xo + k];
      if (v === 0) continue;
      const wo = k * nout;
      for (let j = 0; j < nout; j++) acc[j] += v * w[wo + j];
    }
    const yo = i * nout;
    for (let j = 0; j < nout; j++) y[yo + j] = relu && acc[j] < 0 ? 0 : acc[j];
  }
  return y;
}

/**
 * Classify n images given as floats in [−1, 1] in the card's input layout (NCHW for RGB; for
 * one channel NCHW and NHWC are the same). Values outside [−1, 1] are clamped, as an 8-bit image
 * would be.
 */
export function classify(c: Classifier, images: ArrayLike<number>, n: number): ClassifierOutput {
  const px = c.layers[0].nin;
  if (images.length !== n * px) {
    throw new RangeError(`expected ${n}×${px} values, got ${images.length}`);
  }
  let h: Float32Array = new Float32Array(n * px);
  for (let i = 0; i < h.length; i++) {
    const v = (images[i] + 1) / 2;
    h[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  let features = h;
  for (let l = 0; l < c.layers.length; l++) {
    const last = l === c.layers.length - 1;
    h = denseForward(h, n, c.layers[l], !last);
    if (l === c.card.architecture.featureLayer) features = h;
  }
  return { n, features, logits: h };
}
