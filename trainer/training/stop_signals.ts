/**
 * The graceful stop of the long-running CLIs (`deno task train`, `deno task distill`): the first
 * SIGINT or SIGTERM aborts the given controller (work that takes its signal stops early) and is
 * remembered, so the loop can finish its step, checkpoint and exit 130 / 143; a second one exits at
 * once, leaving the previous complete checkpoint (writes are atomic).
 */

export type StopSignal = "SIGINT" | "SIGTERM";

export interface StopListener {
  /** The first signal received, or null while none has come. */
  readonly received: StopSignal | null;
  /** Remove the signal listeners. */
  dispose(): void;
}

/** The exit code after a stop signal: 130 for SIGINT, 143 for SIGTERM. */
export function stopExitCode(sig: StopSignal): 130 | 143 {
  return sig === "SIGINT" ? 130 : 143;
}

/** Listen for SIGINT and SIGTERM; `log` prints the first one's message (e.g. above a progress bar). */
export function listenForStop(abort: AbortController, log: (line: string) => void): StopListener {
  let received: StopSignal | null = null;
  const handlers = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const h = () => {
      if (received !== null) {
        console.error(`${sig} again: exiting without a new checkpoint`);
        Deno.exit(stopExitCode(sig));
      }
      received = sig;
      abort.abort();
      log(`${sig}: finishing the current step, then checkpointing…`);
    };
    Deno.addSignalListener(sig, h);
    return { sig, h };
  });
  return {
    get received() {
      return received;
    },
    dispose() {
      for (const { sig, h } of handlers) Deno.removeSignalListener(sig, h);
    },
  };
}
