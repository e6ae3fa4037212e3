/** Run-directory chores shared by `deno task train` and `deno task distill`. */
import { join } from "node:path";
import {
  BackendError,
  type BackendInfo,
  type BackendOptions,
  describeBackend,
  initBackend,
} from "../backends/backend.ts";
import { osReason } from "./checkpoint.ts";

/** Quote an argument for a POSIX shell when needed. */
export function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`;
}

/** Create `dir` if needed and prove a file can be created in it (root ignores permission bits). */
export async function probeWritable(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const probe = join(dir, `.write-probe.${Deno.pid}`);
  await Deno.writeFile(probe, new Uint8Array(1));
  await Deno.remove(probe);
}

/** Keep only the metrics lines at or before `step` (a resumed run replays what came after). */
export async function truncateMetrics(file: string, step: number): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return;
  }
  const kept = text.split("\n").filter((l) => {
    if (!l.trim()) return false;
    try {
      return (JSON.parse(l) as { step: number }).step <= step;
    } catch {
      return false;
    }
  });
  await Deno.writeTextFile(`${file}.tmp`, kept.map((l) => l + "\n").join(""));
  await Deno.rename(`${file}.tmp`, file);
}

/**
 * The checks both CLIs make before a run's first step: the run directory must be writable (else
 * exit code 4, naming the path and the reason) and the backend must start (else exit code 2).
 * Prints the backend's description; returns it, or the exit code after printing the error.
 */
export async function startRun(out: string, opts: BackendOptions): Promise<BackendInfo | 2 | 4> {
  try {
    await probeWritable(out);
  } catch (e) {
    console.error(`error: cannot write to ${out}: ${osReason(e)}`);
    return 4;
  }
  let be;
  try {
    be = await initBackend(opts);
  } catch (e) {
    if (!(e instanceof BackendError)) throw e;
    console.error(`error: ${e.message}`);
    return 2;
  }
  for (const line of describeBackend(be)) console.log(line);
  return be;
}
