/**
 * Reading untrusted uploads: a body limit (MAX_BODY_BYTES → 413, by Content-Length up front or
 * while streaming), the media type (→ 415), and PNG decoding (shared/png_input.ts: corrupt →
 * 400, a header declaring too many pixels → 413 before anything is inflated) into a model image.
 * Every refusal is JSON naming the part.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { decodePngInput, PngInputError, type Rgb } from "../../shared/png_input.ts";

/** Largest request body accepted on the upload routes (1 MiB). */
export const MAX_BODY_BYTES = 1 << 20;

export function limitBody(): MiddlewareHandler {
  return bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) =>
      c.json({
        error: `request body too large: the limit is ${MAX_BODY_BYTES} bytes (1 MiB)`,
        issues: [{ path: "body", message: `more than ${MAX_BODY_BYTES} bytes` }],
      }, 413),
  });
}

/** A refusal to answer with. */
export class UploadError extends Error {
  constructor(readonly status: 400 | 413 | 415, readonly path: string, message: string) {
    super(message);
  }
  respond(c: Context) {
    return c.json({
      error: this.status === 415 ? `unsupported media type: ${this.message}` : this.message,
      issues: [{ path: this.path, message: this.message }],
    }, this.status);
  }
}

/** The media type of a Content-Type value, lower-cased, without parameters. */
export function mediaType(value: string | undefined | null): string {
  return (value ?? "").split(";")[0].trim().toLowerCase();
}

/** Decode one uploaded PNG, mapping its errors to the part's name. */
export function decodeUpload(bytes: Uint8Array, path: string): Rgb {
  try {
    return decodePngInput(bytes);
  } catch (e) {
    if (e instanceof PngInputError) throw new UploadError(e.status, path, e.message);
    throw new UploadError(400, path, `not a valid PNG: ${(e as Error).message}`);
  }
}

/** The raw PNG body of a request whose Content-Type must be image/png. */
export async function pngBody(c: Context): Promise<Uint8Array> {
  const type = mediaType(c.req.header("Content-Type"));
  if (type !== "image/png") {
    throw new UploadError(
      415,
      "Content-Type",
      `${type || "no Content-Type"}; send the PNG itself as the body with Content-Type: image/png`,
    );
  }
  return new Uint8Array(await c.req.arrayBuffer());
}

/** Types a multipart file part may declare for a PNG. */
const PART_TYPES = ["image/png", "application/octet-stream", ""];

/**
 * The named file parts of a multipart/form-data body, as bytes (the body limit has run). A
 * missing part → 400 naming it; an unknown or repeated part, or a text field, → 400; a part
 * declaring a type other than image/png → 415.
 */
export async function multipartPngs<K extends string>(
  c: Context,
  names: readonly K[],
): Promise<Record<K, Uint8Array>> {
  const type = mediaType(c.req.header("Content-Type"));
  if (type !== "multipart/form-data") {
    throw new UploadError(
      415,
      "Content-Type",
      `${type || "no Content-Type"}; send multipart/form-data with parts ${names.join(" and ")}`,
    );
  }
  let form: FormData;
  try {
    form = await c.req.raw.formData();
  } catch (e) {
    throw new UploadError(400, "body", `malformed multipart/form-data (${(e as Error).message})`);
  }
  const seen = new Set<string>();
  for (const [key] of form) {
    if (!(names as readonly string[]).includes(key)) {
      throw new UploadError(400, key, `unknown part; the parts are ${names.join(", ")}`);
    }
    if (seen.has(key)) throw new UploadError(400, key, "part given more than once");
    seen.add(key);
  }
  const out = {} as Record<K, Uint8Array>;
  for (const name of names) {
    const part = form.get(name);
    if (part === null) throw new UploadError(400, name, `missing part ${name} (a PNG file)`);
    if (typeof part === "string") {
      throw new UploadError(400, name, "must be a file part (filename=…), not a text field");
    }
    if (!PART_TYPES.includes(mediaType(part.type))) {
      throw new UploadError(415, name, `part ${name} is ${part.type}; it must be image/png`);
    }
    out[name] = new Uint8Array(await part.arrayBuffer());
  }
  return out;
}
