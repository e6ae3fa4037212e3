/**
 * What the trainers' command lines (`deno task train`, `deno task train-classifier`) share around
 * their loops: a known error as one line and exit code 2, the `--resume` directory, the run's
 * data, the "already there" check of a resumed run, the running mean of the loss, the words for
 * what a failure leaves on disk, and the exit after a stop signal or a failed step; the record
 * of the run that every checkpoint's meta carries beside its network's own fields.
 */
import { DataError, type Dataset, type DatasetSplit, loadRunData } from "../data/datasets.ts";
import { ConfigError } from "./flags.ts";
import { hasCheckpoint, RunWriteError } from "./checkpoint.ts";
import { NonFiniteError, type SavedState, type TrainState } from "./loop.ts";
import { stopExitCode, type StopSignal } from "./stop_signals.ts";

type ErrorClass = abstract new (...args: never[]) => Error;

/** An error of one of the `known` classes: "error: <message>" on stderr, exit code 2. Others are rethrown. */
export function knownErrorExit(e: unknown, known: readonly ErrorClass[]): 2 {
  if (!known.some((k) => e instanceof k)) throw e;
  console.error(`error: ${(e as Error).message}`);
  return 2;
}

/**
 * The run directory of `--resume`: the given `--out`, which must hold a checkpoint (`what` names
 * its kind in the error, e.g. "classifier checkpoint"). Throws ConfigError.
 */
export async function resumeDir(given: Map<string, unknown>, what = "checkpoint"): Promise<string> {
  const out = given.get("out") as string | undefined;
  if (!out) throw new ConfigError("--resume needs --out <run dir>");
  if (!(await hasCheckpoint(out))) {
    throw new ConfigError(`--resume: ${out} has no ${what} to resume from`);
  }
  return out;
}

/** The run's data (`--data`, `--limit`, the image size and channels); a DataError is exit code 2. */
export async function loadRunSplit(
  cfg: { data: string; limit: number; arch: { imageSize: number; inChannels: number } },
): Promise<DatasetSplit | 2> {
  try {
    return await loadRunData(cfg.data, cfg.limit, {
      imageSize: cfg.arch.imageSize,
      channels: cfg.arch.inChannels,
    });
  } catch (e) {
    return knownErrorExit(e, [DataError]);
  }
}

/** Whether a resumed run at `step` already has its `--steps` (then says so on stdout). */
export function alreadyDone(out: string, step: number, steps: number): boolean {
  if (step < steps) return false;
  console.log(`${out} is already at step ${step} ≥ --steps ${steps}: nothing to do`);
  return true;
}

/** The mean of the last 50 losses (the progress line, checkpoints, the final line). */
export class RecentLoss {
  #values: number[] = [];

  add(loss: number): void {
    this.#values.push(loss);
    if (this.#values.length > 50) this.#values.shift();
  }

  /** How many losses the mean is over. */
  get count(): number {
    return this.#values.length;
  }

  /** Their mean (null before the first). */
  mean(): number | null {
    const v = this.#values;
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  }
}

/** What is left on disk after a failure, for the one-line error (`saved`: the last checkpoint's step). */
export function keptMessage(out: string, saved: number | null): string {
  return saved === null
    ? `no checkpoint was written to ${out}`
    : `the last good checkpoint (step ${saved}) in ${out}/checkpoint is kept`;
}

/** After the loop stopped on a signal and checkpointed: say where; the exit code (130 / 143). */
export function stoppedExit(sig: StopSignal, step: number, out: string): 130 | 143 {
  console.log(`${sig}: checkpoint at step ${step} written to ${out}/checkpoint`);
  return stopExitCode(sig);
}

/**
 * A failed step as one line on stderr: a non-finite loss is exit code 3, a run directory that
 * cannot be written exit code 4, each with what is `kept` and an optional hint in parentheses;
 * anything else is rethrown.
 */
export function failureExit(
  e: unknown,
  step: number,
  kept: string,
  hints: { nonFinite?: string; write?: string } = {},
): 3 | 4 {
  const hint = (h?: string) => h ? ` (${h})` : "";
  if (e instanceof NonFiniteError) {
    console.error(`error: ${e.message}. Training stopped; ${kept}${hint(hints.nonFinite)}.`);
    return 3;
  }
  if (e instanceof RunWriteError) {
    console.error(
      `error: ${e.message}. Training stopped at step ${step}; ${kept}${hint(hints.write)}.`,
    );
    return 4;
  }
  throw e;
}

/** What a trainer's CLI knows of its run, for every checkpoint's meta and its lines. */
export interface RunRecord {
  /** The run directory. */
  out: string;
  command: string;
  /** Every command that trained the run, oldest first (this one last). */
  commands: string[];
  backend: string;
  dataset: string;
  /** Training seconds of the earlier commands. */
  wallBefore: number;
  /** performance.now() when this command's training began. */
  t0: number;
  /** Step of the last checkpoint known complete on disk (null: none yet). */
  saved: number | null;
}

/** The record of a run starting now: fresh, or resumed from a checkpoint's meta. */
export function runRecord(o: {
  out: string;
  command: string;
  backend: string;
  /** `--limit` (0: the whole training split). */
  limit: number;
  train: Dataset;
  resumed?: { commands: string[]; wallTimeSeconds: number; step: number };
}): RunRecord {
  return {
    out: o.out,
    command: o.command,
    commands: [...(o.resumed?.commands ?? []), o.command],
    backend: o.backend,
    dataset: o.limit > 0 ? `${o.train.name} (first ${o.train.count})` : o.train.name,
    wallBefore: o.resumed?.wallTimeSeconds ?? 0,
    t0: performance.now(),
    saved: o.resumed?.step ?? null,
  };
}

/** Training seconds of the run so far, earlier commands included. */
export function elapsedSeconds(r: RunRecord): number {
  return r.wallBefore + (performance.now() - r.t0) / 1000;
}

/** The fields of a checkpoint's meta that describe the run at `st` rather than its network. */
export function runMeta(
  r: RunRecord,
  st: TrainState,
  saved: SavedState,
  o: { batch: number; config: object; lastLoss: number | null },
) {
  return {
    step: st.step,
    dataset: r.dataset,
    batch: o.batch,
    wallTimeSeconds: elapsedSeconds(r),
    lastLoss: o.lastLoss,
    backend: r.backend,
    command: r.command,
    commands: r.commands,
    config: o.config as Record<string, unknown>,
    epochs: st.sampler.epochs,
    rng: { sampler: saved.sampler, noise: saved.noise },
    savedAt: new Date().toISOString(),
  };
}
