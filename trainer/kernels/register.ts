/**
 * Registers the project's kernels on the tfjs "wasm" backend (work in progress: none yet).
 * Call after the wasm backend is initialised; idempotent.
 */
export function registerWasmKernels(): void {}
