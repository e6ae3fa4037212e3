/** The OpenAPI 3.1 description of the HTTP API, with ranges and defaults from the model card. */
import type { ModelCard } from "../shared/model_card.ts";
import { SPACINGS } from "../shared/schedule.ts";
import { cardSampler, SAMPLER_NAMES, SAMPLERS } from "../shared/samplers/mod.ts";
import { MAX_CLASSIFIER_SCALE, MAX_GUIDANCE, MAX_N, MAX_SCALE } from "./params.ts";
import { imagePaths } from "./openapi_images.ts";
import { type ApiLimits, error, json } from "./openapi_common.ts";

export function openapi(card: ModelCard, limits: ApiLimits) {
  const { maxWork, maxUrlLength, timeoutMs } = limits;
  const s = card.sampling;
  const param = (name: string, description: string, schema: Record<string, unknown>) => ({
    name,
    in: "query",
    required: false,
    description,
    schema,
  });
  const parameters = [
    param("seed", "uint32 noise seed; random when absent (echoed in X-Seed)", {
      type: "integer",
      minimum: 0,
      maximum: 0xffffffff,
    }),
    param(
      "steps",
      (s.prior
        ? "respaced chain length; this model's card has a data prior, so the step at t = T − 1 " +
          "runs no UNet call (steps − 1 calls from noise)"
        : "respaced chain length (one UNet call per step)") +
        (s.nullClassSteps !== undefined && s.nullClassSteps !== s.steps
          ? `; default ${s.nullClassSteps} for a request that samples the null class ` +
            `(guidance 0${card.sampling.unlabeled === "random-label" ? "" : ", or no label"}), ` +
            `${s.steps} otherwise`
          : ""),
      {
        type: "integer",
        minimum: 1,
        maximum: card.schedule.T,
        default: s.steps,
      },
    ),
    param(
      "spacing",
      "how the steps are picked out of T" +
        (s.timesteps
          ? `; at ${s.steps} steps and spacing ${s.spacing} this model samples its card's own ` +
            `chain, timesteps ${s.timesteps.join(", ")}`
          : ""),
      {
        type: "string",
        enum: [...SPACINGS],
        default: s.spacing,
      },
    ),
    param(
      "sampler",
      "the reverse process: " +
        SAMPLER_NAMES.map((n) => `${n} — ${SAMPLERS[n].description}`).join("; ") +
        (card.sampling.analytic ? "" : " (analytic: not for this model, whose card has " +
          "no Analytic-DPM statistics)") +
        (s.nullClassSampler && s.nullClassSampler !== cardSampler(s)
          ? `; default ${s.nullClassSampler} for a request that samples the null class`
          : ""),
      {
        type: "string",
        enum: SAMPLER_NAMES.filter((n) => !SAMPLERS[n].needsAnalytic || card.sampling.analytic),
        default: cardSampler(s),
      },
    ),
    param(
      "eta",
      "η of ddim and analytic: 1 = ancestral, 0 = deterministic; an error with other samplers",
      {
        type: "number",
        minimum: 0,
        maximum: 1,
        default: s.eta,
      },
    ),
    param("n", "number of images (grid)", {
      type: "integer",
      minimum: 1,
      maximum: MAX_N,
      default: 1,
    }),
    param("scale", "nearest-neighbour upscaling", {
      type: "integer",
      minimum: 1,
      maximum: MAX_SCALE,
      default: 1,
    }),
    param(
      "label",
      "class name or index (conditional models" +
        (card.classifier ? ", or with classifier_scale the classifier's class" : "") +
        " only); when absent, " +
        (card.sampling.unlabeled === "random-label"
          ? "each image gets a class drawn from the seed"
          : "the unconditional (null-class) model is sampled"),
      {
        type: "string",
        ...(card.labels ?? card.classifier
          ? { examples: card.labels ?? card.classifier!.labels }
          : {}),
      },
    ),
    param("guidance", "classifier-free guidance weight", {
      type: "number",
      minimum: 0,
      maximum: MAX_GUIDANCE,
      default: s.guidance,
    }),
    ...(card.classifier
      ? [param(
        "classifier_scale",
        "classifier guidance (Dhariwal & Nichol 2021): S > 0 steers every step toward `label` " +
          "with the gradient of the card's noise-aware classifier (ancestral steps: mean + " +
          "S·σ²·∇ log p(label | x_t); other steps: ε̂ − S·√(1−ᾱ_t)·∇), one classifier pass per " +
          "call; needs label" +
          (card.labels
            ? "; with guidance=0 it steers the null class"
            : " (on this unconditional model, a class of its classifier: " +
              `${card.classifier.labels.join(", ")})`) +
          `; recommended ${card.classifier.scale}` +
          (card.classifier.steps !== undefined
            ? `, with steps ${card.classifier.steps} by default`
            : "") +
          (card.classifier.sampler ? ` and sampler ${card.classifier.sampler}` : "") +
          (card.classifier.highNoise
            ? `; calls above t = ${card.classifier.highNoise.above} steer with S × ` +
              `${card.classifier.highNoise.factor}, where the classifier is least sure`
            : "") +
          "; 0 or absent: none",
        { type: "number", minimum: 0, maximum: MAX_CLASSIFIER_SCALE, default: 0 },
      )]
      : []),
    param(
      "format",
      "png image, json floats, or apng: the denoising animated, one frame per step showing " +
        "the current prediction x̂₀, the last frame the final image (the png's pixels)",
      { type: "string", enum: ["png", "json", "apng"], default: "png" },
    ),
  ];
  return {
    openapi: "3.1.0",
    info: {
      title: "ddpm-edge",
      version: "1",
      description: `DDPM sampler for ${card.name} (${card.dataset}). Same query → same bytes.`,
    },
    paths: {
      "/generate": {
        get: {
          summary: "Sample a grid of images",
          description: `Unknown or repeated parameters are rejected with 400. ` +
            `n × steps × passes (2 with a label and guidance ∉ {0, 1}` +
            (card.classifier ? ", one more with classifier_scale > 0" : "") +
            `) must be ≤ ${maxWork}. ` +
            `CORS: any origin may call GET and HEAD (Access-Control-Allow-Origin: *, no ` +
            `credentials); X-Seed, ETag and Server-Timing are exposed; OPTIONS answers the ` +
            `preflight with 204.`,
          parameters,
          responses: {
            "200": {
              description: "The grid (PNG) or NCHW floats in [−1, 1] (JSON)",
              headers: {
                "X-Seed": { schema: { type: "integer" } },
                ETag: { schema: { type: "string" } },
                "Server-Timing": { schema: { type: "string" } },
              },
              content: {
                "image/png": { schema: { type: "string", format: "binary" } },
                "image/apng": { schema: { type: "string", format: "binary" } },
                ...json({
                  type: "object",
                  properties: {
                    params: { type: "object" },
                    backend: { type: "string" },
                    model: { type: "string" },
                    shape: { type: "array", items: { type: "integer" } },
                    data: { type: "array", items: { type: "number" } },
                  },
                }),
              },
            },
            "304": { description: "Not modified (If-None-Match with a seeded request)" },
            "400": { description: "Invalid query", content: json(error) },
            "413": { description: "A GET or HEAD with a body", content: json(error) },
            "414": {
              description: `Path and query longer than ${maxUrlLength} characters (any route)`,
              content: json(error),
            },
            "500": { description: "Sampling failed", content: json(error) },
            "503": {
              description: "Busy (with Retry-After), or the model failed to load (without)",
              content: json(error),
            },
            "504": {
              description: `Not done within ${timeoutMs} ms of arrival (queueing included); ` +
                `the generation was stopped`,
              content: json(error),
            },
          },
        },
      },
      ...imagePaths(card, limits, parameters),
      "/model": {
        get: { summary: "The model card", responses: { "200": { description: "card" } } },
      },
      "/healthz": {
        get: {
          summary: "Readiness and backend",
          responses: { "200": { description: "ready" }, "503": { description: "not ready" } },
        },
      },
      "/openapi.json": {
        get: { summary: "This document", responses: { "200": { description: "OpenAPI" } } },
      },
      "/": { get: { summary: "HTML page", responses: { "200": { description: "text/html" } } } },
    },
  };
}
