/**
 * Load an exported model: the card (`model.json`, validated with the shared zod schema) and the
 * ONNX file it names, checked against the card's byte count and SHA-256 before anything runs it.
 *
 * Paths are URLs: a `file:` URL is read with `Deno.readFile` (which also works on Deno Deploy for
 * files shipped with the deployment), `http(s):` with fetch, each file given at most
 * `fetchTimeoutMs` from request to last byte (a server that accepts and never answers would
 * otherwise hang start-up). A string path is taken relative to the working directory.
 */
import { type ModelCard, ModelCardSchema } from "../shared/model_card.ts";
import { checkedTimesteps } from "../shared/schedule.ts";

/** A verified model, ready to hand to `createEngine`. */
export interface Model {
  /** Where the card was read from. */
  readonly cardUrl: URL;
  readonly card: ModelCard;
  /** The ONNX bytes, whose SHA-256 matched the card. */
  readonly onnx: Uint8Array;
  /** The classifier's gradient graph (card `classifier`), whose SHA-256 matched; else absent. */
  readonly classifier?: Uint8Array;
}

/** A model that could not be loaded; the message names the file and the reason. */
export class ModelLoadError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
    this.name = "ModelLoadError";
  }
}

/** Default time limit per fetched model file (MODEL_FETCH_TIMEOUT_MS), request to last byte. */
export const DEFAULT_FETCH_TIMEOUT_MS = 30_000;

export interface LoadOptions {
  /** Time limit per http(s) file, from the request to the last byte of the body. */
  fetchTimeoutMs?: number;
}

/** The model shipped with the repository (conditional MNIST). */
export const DEFAULT_MODEL_CARD = new URL("../fixtures/models/mnist/model.json", import.meta.url);

/** Resolve a card location given as a URL, a URL string or a file path (relative to cwd). */
export function toUrl(path: string | URL): URL {
  if (path instanceof URL) return path;
  if (/^(file|https?):/.test(path)) return new URL(path);
  const cwd = Deno.cwd().replaceAll("\\", "/");
  return new URL(path, `file://${cwd.startsWith("/") ? "" : "/"}${cwd}/`);
}

/** A URL as shown in messages: the path for a file, else the whole URL. */
export function display(url: URL): string {
  return url.protocol === "file:" ? decodeURIComponent(url.pathname) : url.href;
}

async function readBytes(url: URL, timeoutMs: number): Promise<Uint8Array> {
  try {
    if (url.protocol === "file:") return await Deno.readFile(url);
    // The signal also aborts reading the body: a server that stalls mid-file times out too.
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`HTTP ${res.status}`);
    }
    return new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    const reason = (e as Error)?.name === "TimeoutError"
      ? `no complete answer within ${timeoutMs} ms (MODEL_FETCH_TIMEOUT_MS)`
      : (e as Error).message;
    throw new ModelLoadError(display(url), `cannot read: ${reason}`);
  }
}

/** Lower-case hex SHA-256. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Parse and cross-check a card; throws ModelLoadError naming `file`. */
export function parseCard(json: unknown, file: string): ModelCard {
  const r = ModelCardSchema.safeParse(json);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new ModelLoadError(file, `not a valid model card: ${issues.join("; ")}`);
  }
  const card = r.data, a = card.architecture;
  const fail = (reason: string) => {
    throw new ModelLoadError(file, reason);
  };
  if (card.image.size !== a.imageSize) {
    fail(`image.size ${card.image.size} ≠ architecture.imageSize ${a.imageSize}`);
  }
  if (card.image.channels !== a.inChannels) {
    fail(`image.channels ${card.image.channels} ≠ architecture.inChannels ${a.inChannels}`);
  }
  if (a.numClasses === 0 && card.labels !== null) fail("labels given for an unconditional model");
  if (a.numClasses > 0 && card.labels?.length !== a.numClasses) {
    fail(`labels must list ${a.numClasses} class names (architecture.numClasses)`);
  }
  const an = card.sampling.analytic, T = card.schedule.T;
  for (const key of ["steps", "nullClassSteps"] as const) {
    const steps = card.sampling[key];
    if (steps !== undefined && steps > T) fail(`sampling.${key} ${steps} exceeds schedule.T ${T}`);
  }
  if (card.sampling.timesteps) {
    try {
      checkedTimesteps(T, card.sampling.steps, card.sampling.timesteps);
    } catch (e) {
      fail(`sampling.timesteps: ${(e as Error).message}`);
    }
  }
  if (an && an.gamma.length !== T) {
    fail(`sampling.analytic.gamma has ${an.gamma.length} values, not T = ${T}`);
  }
  if (an?.gammaNull && an.gammaNull.length !== T) {
    fail(`sampling.analytic.gammaNull has ${an.gammaNull.length} values, not T = ${T}`);
  }
  if (card.sampling.nullClassSampler === "analytic" && !an) {
    fail("sampling.nullClassSampler is analytic but the card has no sampling.analytic statistics");
  }
  if (card.sampling.sampler === "analytic" && !an) {
    fail("sampling.sampler is analytic but the card has no sampling.analytic statistics");
  }
  const cl = card.classifier;
  if (cl && card.labels && cl.labels.join("\n") !== card.labels.join("\n")) {
    fail("classifier.labels must be the card's labels (a label names one class for both)");
  }
  if (cl && cl.file === card.onnx.file) fail("classifier.file must not be the UNet's file");
  if (cl?.steps !== undefined && cl.steps > T) {
    fail(`classifier.steps ${cl.steps} exceeds schedule.T ${T}`);
  }
  return card;
}

/** Load a model card and its ONNX file, verifying schema, size and SHA-256. */
export async function loadModel(
  cardPath: string | URL = DEFAULT_MODEL_CARD,
  opts: LoadOptions = {},
): Promise<Model> {
  const timeoutMs = opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const cardUrl = toUrl(cardPath);
  const file = display(cardUrl);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(await readBytes(cardUrl, timeoutMs)));
  } catch (e) {
    if (e instanceof ModelLoadError) throw e;
    throw new ModelLoadError(file, `not JSON: ${(e as Error).message}`);
  }
  const card = parseCard(json, file);
  const onnxUrl = new URL(card.onnx.file, cardUrl);
  const onnxFile = display(onnxUrl);
  const onnx = await readBytes(onnxUrl, timeoutMs);
  if (onnx.byteLength !== card.onnx.bytes) {
    throw new ModelLoadError(onnxFile, `${onnx.byteLength} bytes, card says ${card.onnx.bytes}`);
  }
  await checkSha(onnx, card.onnx.sha256, onnxFile);
  if (!card.classifier) return { cardUrl, card, onnx };
  const classifierUrl = new URL(card.classifier.file, cardUrl);
  const classifier = await readBytes(classifierUrl, timeoutMs);
  await checkSha(classifier, card.classifier.sha256, display(classifierUrl));
  return { cardUrl, card, onnx, classifier };
}

async function checkSha(bytes: Uint8Array, want: string, file: string): Promise<void> {
  const sha = await sha256Hex(bytes);
  if (sha !== want) {
    throw new ModelLoadError(file, `SHA-256 ${sha} does not match the card's ${want}`);
  }
}
