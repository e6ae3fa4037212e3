/**
 * What both halves of the OpenAPI description share (`openapi.ts`, the document and /generate;
 * `openapi_images.ts`, the image-input paths): the limits passed in, the error body, JSON content.
 */
/** Limits and CORS, as the app applies them (passed in so the document states real values). */
export interface ApiLimits {
  maxWork: number;
  /** Longest path + query in characters. */
  maxUrlLength: number;
  timeoutMs: number;
}

export const error = {
  type: "object",
  required: ["error"],
  properties: {
    error: { type: "string" },
    issues: {
      type: "array",
      items: {
        type: "object",
        required: ["path", "message"],
        properties: { path: { type: "string" }, message: { type: "string" } },
      },
    },
  },
};

export const json = (schema: unknown) => ({ "application/json": { schema } });
