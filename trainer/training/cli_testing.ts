/**
 * Shared by the trainer's CLI tests, which run `deno run -A trainer/<cli>.ts` as subprocesses the
 * way a user does: the script paths, the flags of a tiny MNIST run and the runner.
 */

export const TRAIN_CLI = new URL("../train.ts", import.meta.url).pathname;
export const DISTILL_CLI = new URL("../distill.ts", import.meta.url).pathname;
export const CLASSIFIER_CLI = new URL("../train_classifier.ts", import.meta.url).pathname;

/** The data of every tiny test run: the first 64 MNIST digits, in batches of 8. */
export const TINY_MNIST_DATA: readonly string[] = [
  "--data",
  "mnist",
  "--limit",
  "64",
  "--batch",
  "8",
];

/** A tiny MNIST run: 64 digits, batch 8, c = 8, two levels, 4 groups (add --steps and --out). */
export const TINY_MNIST_FLAGS: readonly string[] = [
  ...TINY_MNIST_DATA,
  "--channels",
  "8",
  "--groups",
  "4",
  "--channel-mult",
  "1,2",
];

/** The backend of every CPU test run: tfjs wasm on one thread. */
export const WASM_ONE_THREAD: readonly string[] = ["--backend", "wasm", "--threads", "1"];

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Run a trainer CLI to its end: exit code, stdout and stderr. */
export async function runCli(script: string, args: readonly string[]): Promise<CliResult> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}
