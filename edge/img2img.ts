/**
 * Image-to-image on the engine, through the same sampling path as /generate (edge/sampler.ts →
 * shared/sample.ts): SDEdit denoising of an input, RePaint inpainting, and the deterministic
 * DDIM morph between two seeds. The HTTP routes (edge/routes/) and scripts/eval_img2img.ts call
 * these; inputs are model images (CHW in [−1, 1], shared/resize.ts).
 */
import { slerp, startTimestep } from "../shared/img2img.ts";
import { Rng } from "../shared/rng.ts";
import { makeSchedule, qSample, type Schedule } from "../shared/schedule.ts";
import type { ModelCard } from "../shared/model_card.ts";
import type { Engine } from "./engine.ts";
import { generate, type GenerateOptions } from "./sampler.ts";
import { inferLabels } from "./inpaint_label.ts";

/** What every image-to-image call shares with generate() (n images of one input). */
export type Common = Omit<GenerateOptions, "startAt" | "init" | "known">;

const sizeOf = (card: ModelCard) => card.image.channels * card.image.size ** 2;

const bases = new WeakMap<ModelCard, Schedule>();
function baseOf(card: ModelCard): Schedule {
  let b = bases.get(card);
  if (!b) bases.set(card, b = makeSchedule(card.schedule.kind, card.schedule.T));
  return b;
}

/** n copies of one image, or n images as given (length n·size). */
function repeat(image: Float32Array, n: number, size: number): Float32Array {
  if (image.length === n * size) return image;
  if (image.length !== size) throw new RangeError(`need 1 or ${n} images of ${size} values`);
  const out = new Float32Array(n * image.length);
  for (let i = 0; i < n; i++) out.set(image, i * image.length);
  return out;
}

/**
 * SDEdit's default partial-chain length: the card's steps scaled by the strength (at least 1,
 * at most the t₀ + 1 timesteps there are).
 */
export function defaultDenoiseSteps(card: ModelCard, strength: number): number {
  const t0 = startTimestep(card.schedule.T, strength);
  return Math.min(t0 + 1, Math.max(1, Math.ceil(strength * card.sampling.steps)));
}

/**
 * SDEdit (Meng et al. 2022) of one input (n samples) or of n inputs: the input noised to t₀ = ⌈strength·T⌉ − 1 by qSample with the
 * seed's first normals as ε, then `steps` sampler steps picked out of t₀ + 1 timesteps.
 */
export async function denoise(
  engine: Engine,
  input: Float32Array,
  o: Common & { strength: number },
  signal?: AbortSignal,
): Promise<Float32Array> {
  const { card } = engine.model;
  const t0 = startTimestep(card.schedule.T, o.strength);
  const base = baseOf(card), x0 = repeat(input, o.n, sizeOf(card));
  return await generate(engine, {
    ...o,
    startAt: t0,
    init: (x) => void qSample(base, t0, x0, x, x),
  }, signal);
}

/**
 * RePaint (Lugmayr et al. 2022) of one input (n samples) or n inputs: `regenerate` flags (size², 1 = generate, 0 = keep the input)
 * apply to every channel and image; `resample` rounds per step (1 = none). With `inferLabel` and
 * no label, each image is first given the class its kept pixels read as (edge/inpaint_label.ts)
 * and sampled conditioned on it; otherwise no label samples the null class.
 */
export async function inpaint(
  engine: Engine,
  input: Float32Array,
  regenerate: Uint8Array,
  o: Common & { resample: number; inferLabel?: boolean },
  signal?: AbortSignal,
): Promise<Float32Array> {
  const { card } = engine.model;
  const plane = regenerate.length;
  const keep = new Uint8Array(o.n * sizeOf(card));
  for (let j = 0; j < keep.length; j++) keep[j] = regenerate[j % plane] ? 0 : 1;
  const x0 = repeat(input, o.n, sizeOf(card));
  const label = o.label === undefined && o.inferLabel
    ? Array.from(await inferLabels(engine, baseOf(card), x0, keep, o.n, o.seed, o.timing, signal))
    : o.label;
  return await generate(engine, {
    ...o,
    label,
    known: { x0, keep, resample: o.resample },
  }, signal);
}

/**
 * `frames` images whose initial noise is the slerp of seed `from`'s and seed `to`'s (the x_T
 * /generate draws for them), sampled by deterministic DDIM (η = 0): the first and last frames
 * are /generate?seed=from|to&sampler=ddim&eta=0. `label` is one class or one per frame.
 */
export async function interpolate(
  engine: Engine,
  o: Omit<Common, "seed" | "n" | "sampler" | "eta"> & { from: number; to: number; frames: number },
  signal?: AbortSignal,
): Promise<Float32Array> {
  const { card } = engine.model;
  const size = card.image.channels * card.image.size ** 2;
  const a = new Rng(o.from).fillNormal(new Float32Array(size));
  const b = new Rng(o.to).fillNormal(new Float32Array(size));
  return await generate(engine, {
    ...o,
    seed: o.from,
    n: o.frames,
    sampler: "ddim",
    eta: 0,
    init: (x) => {
      for (let f = 0; f < o.frames; f++) {
        slerp(a, b, f / (o.frames - 1), x.subarray(f * size, (f + 1) * size));
      }
    },
  }, signal);
}
