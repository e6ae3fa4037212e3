/**
 * Image-to-image quality on real held-out MNIST digits (QUALITY.md, "Denoising and inpainting"):
 *
 * - denoise: clean digits + Gaussian noise σ (in [−1, 1] units, clipped and quantised to 8 bits
 *   as a PNG would carry them) through /denoise's path (edge/img2img.ts denoise, the card's
 *   sampler, null class) at each strength: classifier label accuracy, mean L2 distance to the
 *   clean digit ([0, 1] pixels) against the noisy input's, the share that ends closer;
 * - inpaint: masks (bottom/top/left half, centre square) over clean digits through /inpaint's
 *   path, without and with the true label, resample 1 and 3: kept pixels changed (must be 0),
 *   label accuracy, L2 to the clean digit inside the regenerated region;
 * - inpaint at the server's defaults: the bottom half of every one of the n digits regenerated
 *   with no label and the parameters an /inpaint request without a query gets (edge/routes/
 *   params.ts parseInpaint): the class-keep rate (classifier label accuracy).
 *
 *   deno run -A scripts/eval_img2img.ts [--n 500] [--grids DIR] [--model path/model.json]
 *     [--part all|denoise|inpaint|inpaint-defaults]
 */
import { parseCli, runCli } from "./cli_args.ts";
import { loadModel } from "../edge/model.ts";
import { createEngine, type Engine } from "../edge/engine.ts";
import { denoise, inpaint } from "../edge/img2img.ts";
import { encodePng, tileImages, toByte } from "../shared/image.ts";
import { fromUnit } from "../shared/resize.ts";
import { Rng } from "../shared/rng.ts";
import { classify, loadClassifier } from "./classifier/model.ts";
import { loadHeldOut } from "../trainer/data/datasets.ts";
import { type InpaintParams, parseInpaint } from "../edge/routes/params.ts";
import type { ModelCard } from "../shared/model_card.ts";

const PX = 784, SIDE = 28;

export interface Digits {
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

/** n held-out digits, classes interleaved (0, 1, …, 9, 0, …). */
export async function heldOutDigits(n: number): Promise<Digits> {
  const d = await loadHeldOut("mnist");
  if (!d.labels) throw new Error("MNIST without labels");
  const byClass: number[][] = Array.from({ length: 10 }, () => []);
  d.labels.forEach((c, i) => byClass[c].push(i));
  const order: number[] = [];
  for (let k = 0; order.length < Math.min(n, d.count); k++) {
    for (const list of byClass) if (k < list.length && order.length < n) order.push(list[k]);
  }
  const images = new Float32Array(order.length * PX);
  order.forEach((i, j) => images.set(d.images.subarray(i * PX, (i + 1) * PX), j * PX));
  return { images, labels: Int32Array.from(order, (i) => d.labels![i]), count: order.length };
}

/** x + σ·z, clipped to [−1, 1] and quantised to 8-bit levels (what an uploaded PNG holds). */
export function addNoise(x: Float32Array, sigma: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return x.map((v) => fromUnit((v + sigma * rng.normal() + 1) / 2));
}

/** Per image: L2 distance between a and b in [0, 1] pixels, over the flagged pixels (or all). */
export function distances(a: Float32Array, b: Float32Array, n: number, only?: Uint8Array) {
  return Array.from({ length: n }, (_, i) => {
    let s = 0;
    for (let p = 0; p < PX; p++) {
      if (only && !only[p]) continue;
      const d = (a[i * PX + p] - b[i * PX + p]) / 2;
      s += d * d;
    }
    return Math.sqrt(s);
  });
}

const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;

export function accuracy(
  c: Awaited<ReturnType<typeof loadClassifier>>,
  x: Float32Array,
  labels: Int32Array,
): number {
  const { logits } = classify(c, x, labels.length);
  let hits = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = Array.from(logits.subarray(i * 10, (i + 1) * 10));
    if (row.indexOf(Math.max(...row)) === labels[i]) hits++;
  }
  return hits / labels.length;
}

/** Run fn over the digits in batches of `batch`. */
async function batched(
  d: Digits,
  batch: number,
  fn: (x: Float32Array, labels: Int32Array, b: number) => Promise<Float32Array>,
): Promise<Float32Array> {
  const out = new Float32Array(d.count * PX);
  for (let i = 0, b = 0; i < d.count; i += batch, b++) {
    const m = Math.min(batch, d.count - i);
    out.set(
      await fn(d.images.subarray(i * PX, (i + m) * PX), d.labels.subarray(i, i + m), b),
      i * PX,
    );
  }
  return out;
}

export const MASKS: Record<string, (x: number, y: number) => boolean> = {
  "bottom half": (_x, y) => y >= SIDE / 2,
  "top half": (_x, y) => y < SIDE / 2,
  "left half": (x) => x < SIDE / 2,
  "centre 14×14": (x, y) => x >= 7 && x < 21 && y >= 7 && y < 21,
};

export function maskOf(name: string): Uint8Array {
  return Uint8Array.from(
    { length: PX },
    (_, p) => (MASKS[name](p % SIDE, Math.floor(p / SIDE)) ? 1 : 0),
  );
}

/** What POST /inpaint without a query samples with (no label: the null class). */
export function serverInpaintDefaults(card: ModelCard): InpaintParams {
  const r = parseInpaint(new URLSearchParams(), card, Infinity);
  if (!r.ok) throw new Error(`the card's defaults do not parse: ${JSON.stringify(r.issues)}`);
  return r.params;
}

/**
 * Regenerate `mask` of every digit through /inpaint's path with the server's defaults (no label),
 * seed 11 + batch: the inpainted digits and the class-keep rate.
 */
export async function inpaintAtServerDefaults(
  engine: Engine,
  classifier: Awaited<ReturnType<typeof loadClassifier>>,
  d: Digits,
  mask: Uint8Array,
  batch = 50,
): Promise<{ params: InpaintParams; images: Float32Array; keep: number; calls: number }> {
  const p = serverInpaintDefaults(engine.model.card);
  const runs0 = engine.runs;
  const images = await batched(
    d,
    batch,
    (x, labels, b) =>
      inpaint(engine, x, mask, { ...p, seed: 11 + b, n: labels.length, label: p.label }),
  );
  return {
    params: p,
    images,
    keep: accuracy(classifier, images, d.labels),
    calls: (engine.runs - runs0) / Math.ceil(d.count / batch),
  };
}

function writeRows(path: string, rows: Float32Array[], cols: number) {
  const all = new Float32Array(rows.length * cols * PX);
  rows.forEach((r, i) => all.set(r.subarray(0, cols * PX), i * cols * PX));
  return Deno.writeFile(path, encodePng(tileImages(all, rows.length * cols, 1, SIDE, 2, cols)));
}

export async function main(argv: string[]) {
  const { values } = parseCli({
    args: argv,
    options: {
      n: { type: "string", default: "500" },
      model: { type: "string", default: "fixtures/models/mnist/model.json" },
      grids: { type: "string" },
      batch: { type: "string", default: "50" },
      part: { type: "string", default: "all" },
    },
  }, {
    name: "eval_img2img",
    summary: "image-to-image quality (denoising, inpainting) on real held-out MNIST digits",
  });
  const n = Number(values.n), batch = Number(values.batch);
  const model = await loadModel(values.model!);
  const engine: Engine = await createEngine(model, { backend: "wasm", threads: 1 });
  const card = model.card;
  const classifier = await loadClassifier();
  const d = await heldOutDigits(n);
  const s = card.sampling;
  const sampler = s.sampler ?? "ddim";
  const common = {
    spacing: s.spacing,
    sampler,
    eta: s.eta,
    guidance: s.guidance,
  };
  console.log(
    `model ${card.name} (${card.onnx.sha256.slice(0, 12)}), sampler ${sampler}, spacing ` +
      `${s.spacing}, eta ${s.eta}, card steps ${s.steps}; ${d.count} held-out digits`,
  );
  console.log(
    `clean digits: label accuracy ${accuracy(classifier, d.images, d.labels).toFixed(3)}`,
  );

  // Denoise.
  const strengths = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0];
  const tenDigits = (x: Float32Array) => x.subarray(0, 10 * PX);
  for (const sigma of values.part.startsWith("inpaint") ? [] : [0.5, 1.0]) {
    const noisy = addNoise(d.images, sigma, 1000 + sigma * 10);
    const dn = distances(noisy, d.images, d.count);
    console.log(`\n### σ = ${sigma}\n`);
    console.log("| strength | steps | label accuracy | L2 to clean | closer than the input |");
    console.log("| -------: | ----: | -------------: | ----------: | --------------------: |");
    console.log(
      `| input (noisy) | – | ${accuracy(classifier, noisy, d.labels).toFixed(3)} | ` +
        `${mean(dn).toFixed(2)} | – |`,
    );
    const grid: Float32Array[] = [tenDigits(d.images), tenDigits(noisy)];
    for (const strength of strengths) {
      let steps = 0;
      const t0 = performance.now();
      const out = await batched({ ...d, images: noisy }, batch, (x, labels, b) => {
        const o = { ...common, seed: 7 + b, n: labels.length, strength };
        return denoise(engine, x, {
          ...o,
          steps: steps = Math.min(
            Math.ceil(strength * card.schedule.T),
            Math.max(1, Math.ceil(strength * s.steps)),
          ),
        });
      });
      const ms = performance.now() - t0;
      const dd = distances(out, d.images, d.count);
      const closer = dd.filter((v, i) => v < dn[i]).length / d.count;
      console.log(
        `| ${strength} | ${steps} | ${accuracy(classifier, out, d.labels).toFixed(3)} | ` +
          `${mean(dd).toFixed(2)} | ${closer.toFixed(3)} |`,
      );
      if ([0.2, 0.4, 0.6, 0.8].includes(strength)) grid.push(tenDigits(out));
      void ms;
    }
    if (values.grids) {
      await writeRows(`${values.grids}/denoise_sigma${sigma}.png`, grid, 10);
    }
  }

  if (values.part === "inpaint-defaults" || values.part === "all" || values.part === "inpaint") {
    const r = await inpaintAtServerDefaults(engine, classifier, d, maskOf("bottom half"), batch);
    const p = r.params;
    console.log(
      `\nunlabelled /inpaint at the server's defaults (${p.sampler}, ${p.steps} steps, ` +
        `${p.spacing}, resample ${p.resample}, ` +
        `${p.inferLabel ? "class read off the kept pixels" : "null class"}; ${r.calls} model ` +
        `calls per batch), bottom half of ${d.count} held-out digits: class kept ` +
        r.keep.toFixed(3),
    );
    if (values.grids) {
      await writeRows(`${values.grids}/inpaint_defaults.png`, [
        tenDigits(d.images),
        tenDigits(r.images),
      ], 10);
    }
    if (values.part === "inpaint-defaults") return;
  }

  // Inpaint (resampling with ddpm when the card's sampler is multistep, which cannot redo steps).
  if (values.part === "denoise") return;
  console.log(
    "\n| mask | label | sampler | resample | kept pixels changed | label accuracy | L2 in region | L2 of a mid-grey fill |",
  );
  console.log(
    "| ---- | ----- | ------- | -------: | ------------------: | -------------: | -----------: | --------------------: |",
  );
  const m = Math.min(d.count, 200);
  const sub: Digits = {
    images: d.images.subarray(0, m * PX),
    labels: d.labels.subarray(0, m),
    count: m,
  };
  for (const name of Object.keys(MASKS)) {
    const mask = maskOf(name);
    const masked = sub.images.map((v, j) => (mask[j % PX] ? 0 : v));
    const grey = distances(masked, sub.images, m, mask);
    const grid: Float32Array[] = [tenDigits(sub.images), tenDigits(masked)];
    const configs = [[false, 1, sampler], [true, 1, sampler], [false, 3, "ddpm"]] as const;
    for (const [labelled, resample, inpaintSampler] of configs) {
      const out = await batched(sub, batch, (x, labels, b) =>
        inpaint(engine, x, mask, {
          ...common,
          sampler: inpaintSampler,
          seed: 11 + b,
          n: labels.length,
          steps: s.steps,
          label: labelled ? Array.from(labels) : undefined,
          resample,
        }));
      let changed = 0;
      for (let j = 0; j < out.length; j++) {
        if (!mask[j % PX] && toByte(out[j]) !== toByte(sub.images[j])) changed++;
      }
      const dr = distances(out, sub.images, m, mask);
      console.log(
        `| ${name} | ${labelled ? "true" : "none"} | ${inpaintSampler} | ${resample} | ` +
          `${changed} | ` +
          `${accuracy(classifier, out, sub.labels).toFixed(3)} | ${mean(dr).toFixed(2)} | ` +
          `${mean(grey).toFixed(2)} |`,
      );
      grid.push(tenDigits(out));
    }
    if (values.grids) {
      await writeRows(`${values.grids}/inpaint_${name.split(" ")[0]}.png`, grid, 10);
    }
  }
}

if (import.meta.main) await runCli(() => main(Deno.args));
