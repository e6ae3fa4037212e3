/**
 * Yielding to the event loop between sampling steps. On wasm a session run blocks the isolate,
 * so the sampler must give timers, I/O and other requests a turn — but not after every step:
 *
 * - Only a timer task lets Deno poll I/O: a loop that yields with `setImmediate` or a
 *   MessageChannel never lets a pending fetch or incoming request through (measured).
 * - `setTimeout(0)` costs ~2 ms of idle wall time per yield here (timer granularity), which at
 *   3–10 ms per step would add 20–60 % to a request's latency.
 *
 * So a request yields with a timer only after `sliceMs` of work since its last yield.
 */

/** One macrotask turn of the event loop (timers and I/O run). */
export const nextTask = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/** Default work slice between yields, ms: keeps a blocked loop well under 50 ms per turn. */
export const YIELD_SLICE_MS = 20;

/**
 * A yield for one long computation: resolves at once while less than `sliceMs` has passed since
 * the previous real yield, otherwise yields one macrotask.
 */
export function slicedYield(sliceMs = YIELD_SLICE_MS): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < sliceMs) return;
    await nextTask();
    last = performance.now();
  };
}
