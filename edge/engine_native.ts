/**
 * The native session behind `ORT_BACKEND=native`: onnxruntime-node (a Node-API addon over the
 * C++ onnxruntime, CPU execution provider). Loading it needs `--allow-ffi`, so edge/engine.ts
 * imports this module dynamically, only when native is chosen: the default path (and Deno
 * Deploy, which runs no native addons) never touches it.
 */
import type * as Ort from "onnxruntime-web";

/** What edge/engine.ts needs from a runtime: its Tensor class and a created session. */
export interface NativeSession {
  Tensor: typeof Ort.Tensor;
  session: Ort.InferenceSession;
}

/** Why the native runtime cannot run here (no FFI permission), or null. */
export function nativeUnavailable(): string | null {
  const ffi = Deno.permissions.querySync?.({ name: "ffi" }).state;
  return ffi === "granted"
    ? null
    : "ORT_BACKEND=native loads onnxruntime-node, a native addon: run with --allow-ffi " +
      "(deno task serve:native)";
}

/**
 * A CPU session on onnxruntime-node with `threads` intra-op threads (1: no thread pool, the
 * least CPU per sample) and the same graph options as the wasm session.
 */
export async function createNativeSession(
  onnx: Uint8Array,
  threads: number,
): Promise<NativeSession> {
  const why = nativeUnavailable();
  if (why) throw new Error(why);
  const ort = await import("onnxruntime-node");
  ort.env.logLevel = "error";
  const session = await ort.InferenceSession.create(onnx, {
    executionProviders: ["cpu"],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    extra: { session: { disable_quant_qdq: "1" } },
  });
  // onnxruntime-node and onnxruntime-web share onnxruntime-common's Tensor and session types.
  return {
    Tensor: ort.Tensor as unknown as typeof Ort.Tensor,
    session: session as unknown as Ort.InferenceSession,
  };
}
