/**
 * The model card's optional `classifier` field (issue 28) and writing it into an existing
 * `model.json` without touching any other field:
 *
 *   "classifier": { "file": "classifier.onnx", "sha256": "<hex of the file>",
 *                   "labels": [..K class names..], "scale": <recommended classifier_scale>,
 *                   "steps"?: <steps of a guided request>, "sampler"?: <its sampler>,
 *                   "highNoise"?: { "above": <t>, "factor": <scale factor above t> },
 *                   "training": { ...free-form: command, steps, accuracy by t... } }
 *
 * The card's schema (shared/model_card.ts) belongs to the edge; this module only writes.
 */
import { dirname, join } from "node:path";
import type { SamplerName } from "../../shared/samplers/mod.ts";
import type { HighNoiseScale } from "../../shared/sample.ts";
import { sha256Hex, writeAtomic } from "../export/model.ts";

/** The recommended classifier_scale written when none is given (the edge's sweep sets it). */
export const DEFAULT_CLASSIFIER_SCALE = 1;

export interface ClassifierCardField {
  file: string;
  sha256: string;
  labels: string[];
  scale: number;
  /** Steps and sampler of a guided request that names none (absent: the card's usual ones). */
  steps?: number;
  sampler?: SamplerName;
  /** The weaker scale above a timestep (absent: the request's scale at every step). */
  highNoise?: HighNoiseScale;
  training: Record<string, unknown>;
}

/**
 * `--high-noise ABOVE:FACTOR` (e.g. `850:0.375`): calls above original timestep ABOVE steer with
 * classifier_scale × FACTOR. Throws a RangeError naming the flag for anything else.
 */
export function parseHighNoise(v: string): HighNoiseScale {
  const m = /^\s*(\d+)\s*:\s*([0-9.eE+-]+)\s*$/.exec(v);
  const above = m ? Number(m[1]) : NaN, factor = m ? Number(m[2]) : NaN;
  if (!Number.isSafeInteger(above) || !Number.isFinite(factor) || factor < 0) {
    throw new RangeError(
      `--high-noise: expected ABOVE:FACTOR, a timestep and a factor ≥ 0 (e.g. 850:0.375), got "${v}"`,
    );
  }
  return { above, factor };
}

export class CardEditError extends Error {
  override name = "CardEditError";
}

/**
 * The card text with `classifier` set (replacing an existing one in place, else appended).
 * Cards are written as `JSON.stringify(card, null, 2)` + newline; a card in any other layout is
 * refused, so that every other field stays byte-identical.
 */
export function withClassifier(cardText: string, field: ClassifierCardField): string {
  let card: Record<string, unknown>;
  try {
    card = JSON.parse(cardText);
  } catch (e) {
    throw new CardEditError(`the card is not JSON: ${(e as Error).message}`);
  }
  if (card === null || typeof card !== "object" || Array.isArray(card)) {
    throw new CardEditError("the card is not a JSON object");
  }
  if (JSON.stringify(card, null, 2) + "\n" !== cardText) {
    throw new CardEditError(
      "the card is not laid out as the exporter writes it (JSON, 2-space indent, final newline); " +
        "re-export it first",
    );
  }
  if (typeof card.format !== "string" || !card.format.startsWith("ddpm-edge/model-card@")) {
    throw new CardEditError(`not a ddpm-edge model card (format ${JSON.stringify(card.format)})`);
  }
  const labels = card.labels;
  if (Array.isArray(labels) && JSON.stringify(labels) !== JSON.stringify(field.labels)) {
    throw new CardEditError(
      `the classifier's labels ${JSON.stringify(field.labels)} differ from the card's ` +
        JSON.stringify(labels),
    );
  }
  return JSON.stringify({ ...card, classifier: field }, null, 2) + "\n";
}

/**
 * Write `onnx` as `<dir of cardPath>/<field.file>`, then the card with its `classifier` field
 * (each through a temp file and a rename; the ONNX file first, so the card never names a file
 * that is not there yet). Returns the field as written.
 */
export async function installClassifier(
  cardPath: string,
  onnx: Uint8Array,
  field: Omit<ClassifierCardField, "sha256">,
): Promise<ClassifierCardField> {
  if (field.file.includes("/") || field.file.includes("\\") || field.file.startsWith(".")) {
    throw new CardEditError(`the classifier file must be a plain file name, got "${field.file}"`);
  }
  const full: ClassifierCardField = {
    file: field.file,
    sha256: await sha256Hex(onnx),
    labels: field.labels,
    scale: field.scale,
    ...(field.steps !== undefined ? { steps: field.steps } : {}),
    ...(field.sampler !== undefined ? { sampler: field.sampler } : {}),
    ...(field.highNoise !== undefined ? { highNoise: field.highNoise } : {}),
    training: field.training,
  };
  const text = withClassifier(await Deno.readTextFile(cardPath), full);
  await writeAtomic(join(dirname(cardPath), field.file), onnx);
  await writeAtomic(cardPath, new TextEncoder().encode(text));
  return full;
}
