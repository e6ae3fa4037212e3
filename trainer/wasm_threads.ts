/**
 * Two-thread tfjs wasm backend inside Deno (work in progress: not available yet).
 */
export function initWasmThreads(_threads: number): Promise<void> {
  return Promise.reject(new Error("wasm threads are not implemented yet; use threads: 1"));
}
