/**
 * Helpers for kernels that run on the tfjs wasm backend: calling the backend's original
 * kernels, freeing intermediates, zero-copy heap views and a cache-blocked 2-D transpose in JS.
 *
 * Heap views (`heap`) are invalidated whenever the wasm memory grows, i.e. by any allocation:
 * take them after the last `makeOutput`/kernel call of a phase.
 */
import * as tf from "@tensorflow/tfjs";

/** A tensor as kernels see it. */
export type TI = tf.TensorInfo;

/** The parts of tfjs-backend-wasm's BackendWasm that the kernels use. */
export interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): TI;
  typedArrayFromHeap(t: TI): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object, force?: boolean): boolean;
  incRef(dataId: object): void;
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } | undefined };
  wasm: { tfjs: { disposeData(id: number): void } };
}

/** Arguments every kernel function receives. */
export interface KernelArgs {
  inputs: Record<string, TI>;
  backend: WasmBackend;
  attrs: Record<string, unknown>;
}

const originals = new Map<string, tf.KernelFunc>();

/** Kernels of the stock wasm backend that ours call (captured before any is replaced). */
const USED = [
  "Reshape",
  "PadV2",
  "Transpose",
  "Conv2D",
  "FusedConv2D",
  "Conv2DBackpropInput",
  "Slice",
  "BatchMatMul",
  "Reverse",
  "Identity",
  "Cast",
  "Sigmoid",
  "Multiply",
  "Sum",
  "SplitV",
  "Concat",
  "ResizeNearestNeighborGrad",
];

/** Remembers the stock wasm kernels; call once before registering replacements. */
export function captureOriginals(): void {
  for (const name of USED) {
    if (originals.has(name)) continue;
    const k = tf.getKernel(name, "wasm");
    if (k === undefined) throw new Error(`wasm backend has no ${name} kernel (not initialised?)`);
    originals.set(name, k.kernelFunc);
  }
}

/** The stock wasm kernel `name`. */
export function original(name: string): tf.KernelFunc {
  const f = originals.get(name);
  if (f === undefined) throw new Error(`original wasm kernel ${name} not captured`);
  return f;
}

/** Runs the stock wasm kernel `name`. */
export function run(
  name: string,
  backend: WasmBackend,
  inputs: Record<string, TI> | TI[],
  attrs: Record<string, unknown> = {},
): TI {
  return original(name)({
    inputs: inputs as unknown as tf.NamedTensorInfoMap,
    backend: backend as unknown as tf.KernelBackend,
    attrs: attrs as tf.NamedAttrMap,
  }) as TI;
}

/** Releases intermediates (one reference each). */
export function free(backend: WasmBackend, ...ts: TI[]): void {
  for (const t of ts) backend.disposeData(t.dataId);
}

/** Same data, new shape (shares the buffer; free it like any other tensor). */
export function reshape(backend: WasmBackend, x: TI, shape: number[]): TI {
  return run("Reshape", backend, { x }, { shape });
}

/** Float32 view of a tensor's data on the wasm heap (see the module note on validity). */
export function heap(backend: WasmBackend, t: TI): Float32Array {
  return backend.typedArrayFromHeap(t) as Float32Array;
}

/**
 * A tensor aliasing `base`'s memory from element `offset` (no copy). Release with `freeView`,
 * never `free` (the memory belongs to `base`).
 */
export function view(backend: WasmBackend, base: TI, offset: number, shape: number[]): TI {
  const d = backend.dataIdMap.get(base.dataId);
  if (d === undefined) throw new Error("view of an unknown tensor");
  return backend.makeOutput(shape, "float32", d.memoryOffset + 4 * offset);
}

/** Drops a `view` (its C++ record and any cached XNNPACK operator) without freeing memory. */
export function freeView(backend: WasmBackend, v: TI): void {
  const d = backend.dataIdMap.get(v.dataId);
  if (d === undefined) return;
  backend.wasm.tfjs.disposeData(d.id);
  (backend.dataIdMap as unknown as { delete(id: object): void }).delete(v.dataId);
}

/** out[c, r] = x[r, c] for x viewed as [rows, cols]; a new [cols, rows] tensor. */
export function transpose2d(backend: WasmBackend, x: TI, rows: number, cols: number): TI {
  const out = backend.makeOutput([cols, rows], "float32");
  const a = heap(backend, x), o = heap(backend, out);
  const BS = 32;
  for (let r0 = 0; r0 < rows; r0 += BS) {
    const r1 = Math.min(r0 + BS, rows);
    for (let c0 = 0; c0 < cols; c0 += BS) {
      const c1 = Math.min(c0 + BS, cols);
      for (let r = r0; r < r1; r++) {
        const ar = r * cols;
        for (let c = c0; c < c1; c++) o[c * rows + r] = a[ar + c];
      }
    }
  }
  return out;
}

/** Product of the dimensions. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
