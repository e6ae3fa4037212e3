/**
 * Identity and same-dtype Cast for the tfjs wasm backend without copying. The engine clones
 * every tensor it saves for backprop through Identity; the stock wasm kernel copies the buffer.
 * Tensors are immutable, so sharing the buffer (as the cpu backend does) is safe.
 */
import { type KernelArgs, original, type TI } from "./wasm_util.ts";

function share(backend: KernelArgs["backend"], x: TI): TI {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Identity: shares x's buffer (strings still go through the stock kernel). */
export function identityShareKernel(args: unknown): TI {
  const { inputs, backend } = args as KernelArgs;
  const { x } = inputs;
  if (x.dtype === "string") return original("Identity")(args as never) as TI;
  return share(backend, x);
}

/** Cast: shares the buffer when the dtype does not change, else the stock kernel. */
export function castShareKernel(args: unknown): TI {
  const { inputs, backend, attrs } = args as KernelArgs;
  const { x } = inputs;
  if (x.dtype === attrs.dtype && x.dtype !== "string") return share(backend, x);
  return original("Cast")(args as never) as TI;
}
