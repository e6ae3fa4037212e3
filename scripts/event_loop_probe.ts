/**
 * Event-loop stall of a server, measured from outside: a separate client asks a cheap endpoint
 * (`/healthz`) every `intervalMs` (the next request starts `intervalMs` after the previous one
 * started, or at once when that one took longer) and records each response time. A server whose
 * event loop is blocked (a synchronous model run, a long JSON encode) cannot answer until it is
 * free again, so the slowest probe bounds the longest stall from above (it also includes the
 * loopback round trip and any queueing behind other requests' handlers).
 *
 *   deno run -A scripts/event_loop_probe.ts http://127.0.0.1:8000/healthz [--duration 10]
 *     [--interval 50]
 */
import { parseCli, runCli } from "./cli_args.ts";

export interface ProbeResult {
  /** Probes answered (any status). */
  count: number;
  /** Probes that failed: network error, timeout, or a status other than 200. */
  failures: number;
  /** First failure, for the report. */
  firstFailure?: string;
  maxMs: number;
  p50Ms: number;
  p99Ms: number;
  /** Seconds after the start at which the slowest probe was sent. */
  maxAtS: number;
}

export interface Probe {
  /** Stop after the probe in flight and summarise. */
  stop(): Promise<ProbeResult>;
}

/** Nearest-rank percentile of an ascending array (0 when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Start probing `url`; each request gives up after `timeoutMs` (counted as a failure). */
export function startProbe(url: string, intervalMs = 50, timeoutMs = 30_000): Probe {
  const times: number[] = [];
  let failures = 0;
  let firstFailure: string | undefined;
  let maxMs = 0;
  let maxAtS = 0;
  let stopped = false;
  const t0 = performance.now();
  const loop = (async () => {
    while (!stopped) {
      const start = performance.now();
      let ok = false;
      let why = "";
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
        await r.arrayBuffer();
        ok = r.status === 200;
        why = `status ${r.status}`;
      } catch (e) {
        why = (e as Error).message;
      }
      const ms = performance.now() - start;
      times.push(ms);
      if (ms > maxMs) [maxMs, maxAtS] = [ms, (start - t0) / 1000];
      if (!ok) {
        failures++;
        firstFailure ??= `${why} after ${((start - t0) / 1000).toFixed(1)} s`;
      }
      const wait = intervalMs - (performance.now() - start);
      if (wait > 0 && !stopped) await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      const sorted = [...times].sort((a, b) => a - b);
      return {
        count: times.length,
        failures,
        firstFailure,
        maxMs,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        maxAtS,
      };
    },
  };
}

if (import.meta.main) {
  const { values, positionals } = await runCli(() =>
    parseCli({
      args: Deno.args,
      allowPositionals: true,
      options: { duration: { type: "string", default: "10" }, interval: { type: "string" } },
    }, {
      name: "event_loop_probe",
      summary: "event-loop stall of a server, measured from outside by probing a cheap endpoint",
      usage: "deno run -A scripts/event_loop_probe.ts URL [options]",
    })
  );
  const url = positionals[0];
  if (!url) {
    console.error("usage: event_loop_probe.ts URL [--duration s] [--interval ms]");
    Deno.exit(2);
  }
  const probe = startProbe(url, Number(values.interval ?? 50));
  await new Promise((r) => setTimeout(r, Number(values.duration) * 1000));
  console.log(JSON.stringify(await probe.stop()));
}
