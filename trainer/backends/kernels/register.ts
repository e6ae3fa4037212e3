/**
 * Registers the project's kernels on the tfjs "wasm" backend: the ones it lacks
 * (Conv2DBackpropFilter, the fused GroupNorm+SiLU pair) and faster replacements for slow ones.
 * Call after the wasm backend is initialised (`tf.setBackend("wasm")`); idempotent.
 * The stock kernels stay reachable through `wasm_util.original`.
 */
import * as tf from "@tensorflow/tfjs";
import {
  GROUP_NORM_SILU,
  GROUP_NORM_SILU_GRAD,
  groupNormSiluBackwardKernel,
  groupNormSiluForwardKernel,
} from "./group_norm_silu_wasm.ts";
import { captureOriginals } from "./wasm_util.ts";
import { conv2dBackpropFilterKernel } from "./conv2d_backprop_filter.ts";
import { conv2dBackpropInputKernel } from "./conv2d_backprop_input.ts";
import { conv2dKernel, fusedConv2dKernel } from "./conv2d.ts";
import { batchMatMulKernel } from "./batch_matmul.ts";
import { castShareKernel, identityShareKernel } from "./identity.ts";
import { sumKernel } from "./sum.ts";
import { concatKernel, resizeNearestGradKernel, splitVKernel } from "./channels.ts";

const BACKEND = "wasm";

/** Kernel names this module (re)registers on the wasm backend. */
export const WASM_KERNELS = [
  "Conv2D",
  "FusedConv2D",
  "Conv2DBackpropFilter",
  "Conv2DBackpropInput",
  "BatchMatMul",
  "Identity",
  "Cast",
  "Sum",
  "SplitV",
  "Concat",
  "ResizeNearestNeighborGrad",
  GROUP_NORM_SILU,
  GROUP_NORM_SILU_GRAD,
] as const;

let registered = false;

/** Installs the kernels on the wasm backend (once per process). */
export function registerWasmKernels(): void {
  if (registered) return;
  captureOriginals();
  const set = (kernelName: string, kernelFunc: (args: never) => unknown) => {
    if (tf.getKernel(kernelName, BACKEND) !== undefined) tf.unregisterKernel(kernelName, BACKEND);
    tf.registerKernel({
      kernelName,
      backendName: BACKEND,
      kernelFunc: kernelFunc as tf.KernelFunc,
    });
  };
  set("Conv2D", conv2dKernel);
  set("FusedConv2D", fusedConv2dKernel);
  set("Conv2DBackpropFilter", conv2dBackpropFilterKernel);
  set("Conv2DBackpropInput", conv2dBackpropInputKernel);
  set("BatchMatMul", batchMatMulKernel);
  set("Identity", identityShareKernel);
  set("Cast", castShareKernel);
  set("Sum", sumKernel);
  set("SplitV", splitVKernel);
  set("Concat", concatKernel);
  set("ResizeNearestNeighborGrad", resizeNearestGradKernel);
  set(GROUP_NORM_SILU, groupNormSiluForwardKernel);
  set(GROUP_NORM_SILU_GRAD, groupNormSiluBackwardKernel);
  registered = true;
}
