/** The OpenAPI description of the image routes (edge/routes/), with their real limits. */
import type { ModelCard } from "../shared/model_card.ts";
import { MAX_INPUT_PIXELS, MAX_INPUT_SIDE } from "../shared/png_input.ts";
import { type ApiLimits, error, json } from "./openapi_common.ts";
import {
  DEFAULT_FRAMES,
  DEFAULT_STRENGTH,
  MAX_FRAMES,
  MAX_RESAMPLE,
  MIN_FRAMES,
} from "./routes/params.ts";
import { MAX_BODY_BYTES } from "./routes/upload.ts";
import { LABEL_LEVELS } from "./inpaint_label.ts";

type Param = { name: string; in: string; description: string; schema: Record<string, unknown> };

const query = (name: string, description: string, schema: Record<string, unknown>) => ({
  name,
  in: "query",
  required: false,
  description,
  schema,
});

const binary = { schema: { type: "string", format: "binary" } };

export function imagePaths(card: ModelCard, limits: ApiLimits, generate: Param[]) {
  const { maxWork, timeoutMs } = limits;
  const S = card.image.size, C = card.image.channels;
  const pick = (names: string[]) => generate.filter((p) => names.includes(p.name));
  const without = (names: string[]) => generate.filter((p) => !names.includes(p.name));
  const conversion = `any size and PNG colour type (1/2/4/8/16-bit gray, RGB, palette, with ` +
    `alpha or tRNS), composited over black, area-resized to ${S}×${S}` +
    (C === 1 ? ", converted to gray by Rec. 601 luma (0.299 R + 0.587 G + 0.114 B)" : "") +
    `, quantised to 8 bits`;
  const uploads = `Body at most ${MAX_BODY_BYTES} bytes (413); a PNG whose header declares more ` +
    `than ${MAX_INPUT_SIDE} pixels per side or ${MAX_INPUT_PIXELS} in all is refused (413) ` +
    `before anything is inflated; corrupt or truncated PNGs are 400.`;
  const label = query(
    "label",
    "class name or index; when absent the unconditional (null-class) model is sampled, so " +
      "the input decides the class",
    { type: "string", ...(card.labels ? { examples: card.labels } : {}) },
  );
  const format = query("format", "png, json floats, or apng (x̂₀ per step)", {
    type: "string",
    enum: ["png", "json", "apng"],
    default: "png",
  });
  const ok = (what: string) => ({
    description: what,
    headers: {
      "X-Seed": { schema: { type: "integer" } },
      ETag: { schema: { type: "string" } },
      "Server-Timing": { schema: { type: "string" } },
    },
    content: { "image/png": binary, "image/apng": binary, ...json({ type: "object" }) },
  });
  const refusals = {
    "400": {
      description: "Invalid query, or an upload that is no valid PNG (issues name the part)",
      content: json(error),
    },
    "413": { description: "Body or declared image too large", content: json(error) },
    "415": { description: "Wrong Content-Type (of the body or a part)", content: json(error) },
    "503": { description: "Busy (Retry-After) or the model failed to load", content: json(error) },
    "504": { description: `Not done within ${timeoutMs} ms of arrival`, content: json(error) },
  };
  const cors = "CORS: any origin (POST; OPTIONS answers the preflight with 204); X-Seed, ETag " +
    "and Server-Timing are exposed.";
  return {
    "/denoise": {
      post: {
        summary: "SDEdit: denoise or restyle an uploaded image",
        description: `The PNG body (${conversion}) is noised to t₀ = ⌈strength·T⌉ − 1 with ` +
          `qSample and the seed's noise, then the sampler runs the chain cut at t₀, respaced ` +
          `to steps. n × steps × passes ≤ ${maxWork}. ${uploads} ETag covers the input bytes ` +
          `and every parameter. ${cors}`,
        parameters: [
          ...without(["label", "format", "steps"]),
          query("steps", "steps of the partial chain (≤ t₀ + 1)", {
            type: "integer",
            minimum: 1,
            default: `⌈strength × ${card.sampling.steps}⌉`,
          }),
          query("strength", "fraction of the chain: 1 = start from (almost) pure noise", {
            type: "number",
            exclusiveMinimum: 0,
            maximum: 1,
            default: DEFAULT_STRENGTH,
          }),
          label,
          format,
        ],
        requestBody: { required: true, content: { "image/png": binary } },
        responses: { "200": ok(`The result, ${S}×${S} × scale`), ...refusals },
      },
    },
    "/inpaint": {
      post: {
        summary: "RePaint: regenerate the masked part of an uploaded image",
        description: `multipart/form-data with file parts image (${conversion}) and mask ` +
          `(white = regenerate, black = keep; resized nearest, threshold half gray). At every ` +
          `step the kept region is replaced by the input noised to that level, and at the end ` +
          `by the input: kept pixels come back unchanged. Without a label (and guidance ≠ 0) ` +
          `a card with a data prior first reads each image's class off its kept pixels (a ` +
          `diffusion classifier: ${LABEL_LEVELS.length} noise levels × every class) and ` +
          `samples conditioned on it; otherwise no label samples the null class. ` +
          `(calls + (calls − 1)·(resample − 1)) × n × passes (+ n × levels × classes when the ` +
          `class is read) ≤ ${maxWork}. ${uploads} ${cors}`,
        parameters: [
          ...without(["label", "format"]),
          query("resample", "rounds per step (RePaint resampling; > 1 needs a one-step sampler)", {
            type: "integer",
            minimum: 1,
            maximum: MAX_RESAMPLE,
            default: 1,
          }),
          label,
          format,
        ],
        requestBody: {
          required: true,
          content: {
            "multipart/form-data": {
              schema: {
                type: "object",
                required: ["image", "mask"],
                properties: {
                  image: { type: "string", format: "binary" },
                  mask: { type: "string", format: "binary" },
                },
              },
            },
          },
        },
        responses: { "200": ok("The completed image(s)"), ...refusals },
      },
    },
    "/interpolate": {
      get: {
        summary: "Morph between two seeds",
        description: `frames images from the spherical interpolation of seed from's and seed ` +
          `to's initial noise, sampled by deterministic DDIM (η = 0); frame 0 and the last ` +
          `are /generate?seed=from|to&sampler=ddim&eta=0 with the same other parameters. ` +
          `Without a label on a card that draws one from the seed, each half keeps its end's ` +
          `class. frames × steps × passes ≤ ${maxWork}. CORS as /generate.`,
        parameters: [
          query("from", "first seed (required)", { type: "integer", minimum: 0 }),
          query("to", "last seed (required)", { type: "integer", minimum: 0 }),
          query("frames", "number of images", {
            type: "integer",
            minimum: MIN_FRAMES,
            maximum: MAX_FRAMES,
            default: DEFAULT_FRAMES,
          }),
          ...pick(["steps", "spacing", "scale", "label", "guidance", "classifier_scale"]),
          query("format", "png (one row), apng (one frame per image) or json", {
            type: "string",
            enum: ["png", "apng", "json"],
            default: "png",
          }),
        ],
        responses: {
          "200": ok("The strip, animation or floats"),
          "304": { description: "Not modified (If-None-Match)" },
          "400": refusals["400"],
          "503": refusals["503"],
          "504": refusals["504"],
        },
      },
    },
  };
}
