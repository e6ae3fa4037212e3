/**
 * The project's hand-written WebAssembly SIMD kernels (assembled by `wasm_asm.ts`), instantiated
 * on the tfjs wasm backend's own memory so they read and write tensors in place. Where the
 * engine supports relaxed SIMD they use fused multiply-add (`f32x4.relaxed_madd`), which the
 * wasm backend's XNNPACK build (tfjs 4.22) does not.
 *
 * Pointers and strides are byte offsets into that memory.
 */
import { assemble, Func } from "./wasm_asm.ts";
import type { TI, WasmBackend } from "./wasm_util.ts";

/** Exported kernels. */
export interface SimdKernels {
  /**
   * Outer-product accumulation over a 2-D grid of positions (rows × pixels):
   * out[i·nJ + j] += Σ_{r<nRows, p<nPix} S[s + r·sRow + p·sPix + 4i] · V[v + r·vRow + p·vPix + 4j]
   * for i < nI, j < nJ. Requires nJ % 4 == 0, nRows ≥ 1, nPix ≥ 1; out is float32 [nI, nJ].
   */
  opa(
    s: number,
    v: number,
    out: number,
    nRows: number,
    sRow: number,
    vRow: number,
    nPix: number,
    sPix: number,
    vPix: number,
    nI: number,
    nJ: number,
  ): void;
}

/** Register block of `opa`: rows of out held in registers (×16 columns). */
const OPA_ROWS = 2;

function opaFunc(relaxed: boolean): Func {
  const f = new Func("opa", [
    ["s", "i32"],
    ["v", "i32"],
    ["out", "i32"],
    ["nRows", "i32"],
    ["sRow", "i32"],
    ["vRow", "i32"],
    ["nPix", "i32"],
    ["sPix", "i32"],
    ["vPix", "i32"],
    ["nI", "i32"],
    ["nJ", "i32"],
  ], relaxed);
  f.locals("i32", "i0", "j0", "r", "p", "sp", "vp", "ob", "rowBytes", "sr", "vr");
  const acc = (ii: number, jj: number) => `a${ii}_${jj}`;
  for (let ii = 0; ii < OPA_ROWS; ii++) {
    for (let jj = 0; jj < 4; jj++) f.locals("v128", acc(ii, jj));
  }
  f.locals("v128", "d0", "d1", "d2", "d3", "s0", "s1");

  // One (mi × 4·nv) block of out at (i0, j0).
  const block = (mi: number, nv: number) => {
    // ob = out + (i0·nJ + j0)·4
    f.get("out").get("i0").get("nJ").i32op("mul").get("j0").i32op("add").i32(4).i32op("mul")
      .i32op("add").set("ob");
    for (let ii = 0; ii < mi; ii++) {
      for (let jj = 0; jj < nv; jj++) {
        f.get("ob");
        if (ii > 0) f.get("rowBytes").i32op("add");
        f.v128Load(16 * jj).set(acc(ii, jj));
      }
    }
    f.get("s").get("i0").i32(4).i32op("mul").i32op("add").set("sr");
    f.get("v").get("j0").i32(4).i32op("mul").i32op("add").set("vr");
    f.get("nRows").set("r");
    f.loop(() => {
      f.get("sr").set("sp");
      f.get("vr").set("vp");
      f.get("nPix").set("p");
      f.loop(() => {
        for (let ii = 0; ii < mi; ii++) f.get("sp").load32Splat(4 * ii).set(`s${ii}`);
        for (let jj = 0; jj < nv; jj++) f.get("vp").v128Load(16 * jj).set(`d${jj}`);
        for (let ii = 0; ii < mi; ii++) {
          for (let jj = 0; jj < nv; jj++) {
            f.fma(() => f.get(`s${ii}`), () => f.get(`d${jj}`), () => f.get(acc(ii, jj)))
              .set(acc(ii, jj));
          }
        }
        f.inc("sp", "sPix").inc("vp", "vPix");
        f.get("p").i32(1).i32op("sub").tee("p").brIf(0);
      });
      f.inc("sr", "sRow").inc("vr", "vRow");
      f.get("r").i32(1).i32op("sub").tee("r").brIf(0);
    });
    for (let ii = 0; ii < mi; ii++) {
      for (let jj = 0; jj < nv; jj++) {
        f.get("ob");
        if (ii > 0) f.get("rowBytes").i32op("add");
        f.get(acc(ii, jj)).v128Store(16 * jj);
      }
    }
  };
  // All column blocks of a band of mi rows: 16 columns at a time, then 4.
  const band = (mi: number) => {
    f.i32(0).set("j0");
    f.whileLoop(() => f.get("j0").i32(16).i32op("add").get("nJ").i32op("le_s"), () => {
      block(mi, 4);
      f.inc("j0", 16);
    });
    f.whileLoop(() => f.get("j0").i32(4).i32op("add").get("nJ").i32op("le_s"), () => {
      block(mi, 1);
      f.inc("j0", 4);
    });
  };
  f.get("nJ").i32(4).i32op("mul").set("rowBytes");
  f.i32(0).set("i0");
  f.whileLoop(() => f.get("i0").i32(OPA_ROWS).i32op("add").get("nI").i32op("le_s"), () => {
    band(OPA_ROWS);
    f.inc("i0", OPA_ROWS);
  });
  f.whileLoop(() => f.get("i0").get("nI").i32op("lt_s"), () => {
    band(1);
    f.inc("i0", 1);
  });
  return f;
}

function build(relaxed: boolean): Func[] {
  return [opaFunc(relaxed)];
}

const cache = new WeakMap<object, SimdKernels>();

/** The wasm backend's linear memory. */
export function backendMemory(backend: WasmBackend): WebAssembly.Memory {
  const m = (backend as unknown as { wasm: { asm?: { memory?: WebAssembly.Memory } } }).wasm;
  const mem = m.asm?.memory;
  if (!(mem instanceof WebAssembly.Memory)) throw new Error("wasm backend memory not found");
  return mem;
}

/** Whether the kernels use fused multiply-add (relaxed SIMD); set on first `simdKernels`. */
export let usesRelaxedSimd: boolean | undefined;

/**
 * Compiles the kernels against `memory`, with fused multiply-add if `relaxed` (throws if the
 * engine lacks relaxed SIMD).
 */
export function instantiate(memory: WebAssembly.Memory, relaxed: boolean): SimdKernels {
  const shared = typeof SharedArrayBuffer !== "undefined" &&
    memory.buffer instanceof SharedArrayBuffer;
  const module = new WebAssembly.Module(assemble(build(relaxed), shared) as BufferSource);
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as SimdKernels;
}

/** The kernels bound to `backend`'s memory (compiled once per backend; FMA if available). */
export function simdKernels(backend: WasmBackend): SimdKernels {
  let k = cache.get(backend);
  if (k !== undefined) return k;
  const memory = backendMemory(backend);
  try {
    k = instantiate(memory, true);
    usesRelaxedSimd = true;
  } catch {
    k = instantiate(memory, false);
    usesRelaxedSimd = false;
  }
  cache.set(backend, k);
  return k;
}

/** Byte address of a tensor's data in the backend memory. */
export function addr(backend: WasmBackend, t: TI): number {
  const d = backend.dataIdMap.get(t.dataId);
  if (d === undefined) throw new Error("tensor not on the wasm backend");
  return d.memoryOffset;
}
