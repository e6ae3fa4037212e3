/**
 * Weight storage for the exported graph. Weight matrices (conv OIHW, dense [nout, nin]) arrive
 * with the output channel on axis 0 and are stored as:
 * - fp32: float32 initializer, used directly;
 * - fp16: float16 initializer → Cast(to float32), so compute stays float32 (ORT-web wasm);
 * - int8: weight-only symmetric per-output-channel quantisation, int8 initializer + float32
 *   scales + int8 zero points (all 0) → DequantizeLinear(axis=0) → float32.
 * Small vectors (biases, norm scales, label embeddings) always stay float32.
 */
import { DataType, type GraphBuilder } from "./onnx_graph.ts";

export type Quantization = "int8" | "fp16" | "fp32";
export const QUANTIZATIONS: readonly Quantization[] = ["int8", "fp16", "fp32"];

export interface Int8PerChannel {
  q: Int8Array;
  /** One scale per output channel: max|w| / 127 (1 for an all-zero channel). */
  scales: Float32Array;
}

/**
 * Symmetric per-output-channel int8 quantisation of `w` laid out [rows, ...] (rows = output
 * channels): q = clamp(round(w / s), −127, 127) with s = max|w_row| / 127.
 */
export function quantizeInt8PerChannel(w: Float32Array, rows: number): Int8PerChannel {
  if (w.length % rows !== 0) throw new Error(`${w.length} values do not split into ${rows} rows`);
  const per = w.length / rows;
  const q = new Int8Array(w.length);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let i = r * per; i < (r + 1) * per; i++) m = Math.max(m, Math.abs(w[i]));
    // Math.fround so the division below uses exactly the float32 scale the graph will hold.
    const s = m > 0 ? Math.fround(m / 127) : 1;
    scales[r] = s;
    for (let i = r * per; i < (r + 1) * per; i++) {
      q[i] = Math.max(-127, Math.min(127, Math.round(w[i] / s)));
    }
  }
  return { q, scales };
}

/** The float32 values DequantizeLinear produces from `quantizeInt8PerChannel`'s output. */
export function dequantizeInt8PerChannel(p: Int8PerChannel): Float32Array {
  const rows = p.scales.length, per = p.q.length / rows;
  const out = new Float32Array(p.q.length);
  for (let i = 0; i < out.length; i++) out[i] = p.q[i] * p.scales[Math.floor(i / per)];
  return out;
}

/** Round float32 values to float16 (round to nearest even; ±65504 saturates to ±Inf). */
export function toFloat16(w: Float32Array): Float16Array {
  return new Float16Array(w);
}

/**
 * Add weight `name` (dims with the output channel first) to the graph in the given storage
 * and return the name of a float32 tensor holding it.
 */
export function addWeight(
  g: GraphBuilder,
  name: string,
  dims: number[],
  w: Float32Array,
  quant: Quantization,
): string {
  switch (quant) {
    case "fp32":
      return g.float32(name, dims, w);
    case "fp16": {
      const h = g.initializer(`${name}.f16`, DataType.FLOAT16, dims, toFloat16(w));
      return g.node("Cast", [h], { to: DataType.FLOAT }, name);
    }
    case "int8": {
      const rows = dims[0];
      const p = quantizeInt8PerChannel(w, rows);
      const q = g.initializer(`${name}.q`, DataType.INT8, dims, p.q);
      const s = g.float32(`${name}.scale`, [rows], p.scales);
      const zp = g.initializer(`${name}.zp`, DataType.INT8, [rows], new Int8Array(rows));
      return g.node("DequantizeLinear", [q, s, zp], { axis: 0 }, name);
    }
  }
}
