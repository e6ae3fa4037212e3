/**
 * `deno task train`: train the UNet ε-model (or resume a run), writing
 *   <run>/metrics.jsonl     one JSON line per logged step
 *   <run>/checkpoint/       the latest complete checkpoint (trainer/training/checkpoint.ts)
 *   <run>/samples/step-NNNNNN.png  EMA sample grids
 *
 * Exit codes: 0 done, 2 bad flags / data / checkpoint or a --backend that cannot run here, 3
 * non-finite loss (the last good checkpoint is kept), 4 the run directory cannot be written
 * (unwritable --out, disk full: one line naming the path and the reason; the last complete
 * checkpoint is kept), 130 after SIGINT and 143 after SIGTERM (the current step finishes and a
 * checkpoint is written first; a second signal exits at once, keeping the previous checkpoint).
 * Run with --help for the flags.
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { shellQuote, startRun, truncateMetrics } from "./training/run_files.ts";
import { makeSchedule } from "../shared/schedule.ts";
import {
  ConfigError,
  freshConfig,
  helpText,
  parseFlags,
  resumedConfig,
  type TrainConfig,
  TrainConfigSchema,
  unetConfig,
} from "./training/config.ts";
import {
  type Checkpoint,
  CheckpointError,
  type CheckpointMeta,
  hasCheckpoint,
  osReason,
  readCheckpoint,
  RunWriteError,
  savedStateOf,
  writeCheckpoint,
} from "./training/checkpoint.ts";
import {
  disposeState,
  emaDecayAt,
  freshState,
  paramCount,
  restoreState,
  saveState,
  type TrainState,
  trainStep,
} from "./training/loop.ts";
import { createProgress, formatDuration, Throughput } from "./training/progress.ts";
import { listenForStop } from "./training/stop_signals.ts";
import {
  alreadyDone,
  elapsedSeconds,
  failureExit,
  keptMessage,
  knownErrorExit,
  loadRunSplit,
  RecentLoss,
  resumeDir,
  runMeta,
  type RunRecord,
  runRecord,
  stoppedExit,
} from "./training/cli.ts";
import { sampleGrid, writeSampleGrid } from "./training/sample_grid.ts";
import { forwardFlops } from "./network/unet.ts";
import { GuideTeacherError } from "./guidance/guide_teacher.ts";
import { FrozenRunError } from "./guidance/frozen_run.ts";
import { type BatchTargets, loadBatchTargets } from "./guidance/batch_targets.ts";

async function isNonEmptyDir(path: string): Promise<boolean> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    return false; // missing or unreachable (a file in the way): the write probe says which
  }
  if (!info.isDirectory) return true;
  for await (const _ of Deno.readDir(path)) return true;
  return false;
}

/** Run a write into the run directory; an OS error becomes a RunWriteError naming `path`. */
async function writing<T>(what: string, path: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof RunWriteError || !(e instanceof Error) || !("code" in e)) throw e;
    throw new RunWriteError(what, path, osReason(e));
  }
}

interface Session extends RunRecord {
  cfg: TrainConfig;
  labels: string[] | null;
}

async function checkpoint(
  s: Session,
  st: TrainState,
  unet: ReturnType<typeof unetConfig>,
  lastLoss: number | null,
) {
  const saved = await saveState(st);
  const meta: CheckpointMeta = {
    format: "ddpm-edge/checkpoint@1",
    ...runMeta(s, st, saved, { batch: s.cfg.batch, config: s.cfg, lastLoss }),
    unet,
    schedule: { kind: s.cfg.schedule.kind, T: s.cfg.schedule.T },
    labels: s.labels,
    adamStep: st.step,
    emaDecay: s.cfg.ema,
    paramCount: paramCount(unet),
    prediction: s.cfg.prediction,
    loss: s.cfg.loss,
    condDrop: s.cfg.condDrop,
    lrSchedule: {
      kind: s.cfg.lrSchedule,
      lr: s.cfg.lr,
      warmup: s.cfg.warmup,
      min: s.cfg.lrMin,
      decaySteps: s.cfg.lrDecaySteps,
    },
  };
  await writeCheckpoint(s.out, { ...saved, meta });
  s.saved = st.step;
}

/** What is left on disk after a failure, for the one-line error. */
const kept = (s: Session) => keptMessage(s.out, s.saved);

/** Run the trainer with these arguments; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const command = ["deno", "run", "-A", "trainer/train.ts", ...argv].map(shellQuote).join(" ");
  let cfg: TrainConfig;
  let ck: Checkpoint | null = null;
  try {
    const flags = parseFlags(argv);
    if (flags.help) {
      console.log(helpText());
      return 0;
    }
    if (flags.resume) {
      const out = await resumeDir(flags.given);
      ck = await readCheckpoint(out);
      const stored = TrainConfigSchema.safeParse(ck.meta.config);
      if (!stored.success) throw new CheckpointError(`${out}: checkpoint config is invalid`);
      cfg = resumedConfig(flags, { ...stored.data, out });
    } else {
      cfg = freshConfig(flags);
      if (await isNonEmptyDir(cfg.out)) {
        throw new ConfigError(
          (await hasCheckpoint(cfg.out))
            ? `--out ${cfg.out} already exists and is not empty: add --resume to continue it, ` +
              `or choose a new run directory`
            : `--out ${cfg.out} already exists, is not empty and holds no checkpoint: ` +
              `choose a new run directory (or delete it)`,
        );
      }
    }
  } catch (e) {
    return knownErrorExit(e, [ConfigError, CheckpointError]);
  }

  // Data first: nothing is created until it has loaded and validated.
  const split = await loadRunSplit(cfg);
  if (split === 2) return 2;
  const train = split.train;
  if (cfg.arch.conditional && (!train.labels || !train.labelNames)) {
    console.error(
      `error: --conditional needs labelled data; ${cfg.data} has none (use one subfolder per class)`,
    );
    return 2;
  }
  const unet = unetConfig(cfg, train.labelNames?.length ?? 0);
  if (ck && JSON.stringify(ck.meta.unet) !== JSON.stringify(unet)) {
    console.error(
      `error: the data gives a different model than the checkpoint's ` +
        `(${JSON.stringify(unet)} vs ${JSON.stringify(ck.meta.unet)})`,
    );
    return 2;
  }
  if (ck && alreadyDone(cfg.out, ck.meta.step, cfg.steps)) return 0;

  const be = await startRun(cfg.out, { backend: cfg.backend, threads: cfg.threads });
  if (typeof be === "number") return be;
  const mflop = forwardFlops(unet) / 1e6;
  console.log(
    `model ${paramCount(unet).toLocaleString("en")} params, ${
      mflop.toFixed(1)
    } MFLOP/img forward; ` +
      `${unet.imageSize}×${unet.imageSize}×${unet.inChannels}, c=${unet.channels}, ` +
      `mult ${unet.channelMult.join(",")}, ${
        unet.numClasses > 0 ? `${unet.numClasses} classes` : "unconditional"
      }`,
  );
  console.log(
    `objective ${cfg.loss} on ${cfg.prediction}; lr ${cfg.lr} (${cfg.lrSchedule}, warm-up ` +
      `${cfg.warmup}${
        cfg.lrSchedule === "constant" ? "" : `, to ${cfg.lrMin} at step ${cfg.lrDecaySteps}`
      })`,
  );
  console.log(
    `data ${cfg.data}: ${train.count} training images (${split.test.count} held out); ` +
      `batch ${cfg.batch}, ${cfg.schedule.kind} schedule T=${cfg.schedule.T}`,
  );

  let extra: BatchTargets;
  try {
    extra = await loadBatchTargets(
      cfg,
      unet,
      ck ? (ck.meta.config as Partial<TrainConfig>) : undefined,
    );
  } catch (e) {
    return knownErrorExit(e, [GuideTeacherError, FrozenRunError, CheckpointError]);
  }
  cfg = extra.cfg;
  extra.describe.forEach((l) => console.log(l));

  const sched = makeSchedule(cfg.schedule.kind, cfg.schedule.T);
  const st = ck
    ? restoreState(unet, savedStateOf(ck), train.count)
    : freshState(unet, cfg.seed, train.count);
  const session: Session = {
    ...runRecord({
      out: cfg.out,
      command,
      backend: be.adapter !== undefined
        ? `${be.name} on ${be.adapter}`
        : be.threads > 1
        ? `${be.name} ×${be.threads} threads`
        : be.name,
      limit: cfg.limit,
      train,
      resumed: ck?.meta,
    }),
    cfg,
    labels: unet.numClasses > 0 ? train.labelNames : null,
  };
  ck = null; // free the host copies

  const metricsFile = join(cfg.out, "metrics.jsonl");
  const recent = new RecentLoss();
  let metrics: Deno.FsFile;
  try {
    if (st.step > 0) {
      await writing("metrics", metricsFile, () => truncateMetrics(metricsFile, st.step));
    }
    if (st.step === 0) await checkpoint(session, st, unet, null);
    metrics = await writing(
      "metrics",
      metricsFile,
      () => Deno.open(metricsFile, { append: true, create: true }),
    );
  } catch (e) {
    disposeState(st);
    if (!(e instanceof RunWriteError)) throw e;
    console.error(`error: ${e.message}; ${kept(session)}.`);
    return 4;
  }
  if (st.step > 0) console.log(`resuming at step ${st.step} → ${cfg.steps}`);

  const progress = createProgress({
    total: cfg.steps,
    start: st.step,
    batch: cfg.batch,
    logEvery: cfg.logEvery,
  });
  const abort = new AbortController();
  const stop = listenForStop(abort, (line) => progress.log(line));
  const enc = new TextEncoder();
  const speed = new Throughput();
  let intervalLoss = 0, intervalNorm = 0, intervalSteps = 0, intervalImg = 0, intervalSec = 0;
  let exitCode = 0;

  const writeGrid = async () => {
    const t = performance.now();
    try {
      const g = await sampleGrid(st.ema, unet, sched, {
        count: cfg.sampleCount,
        steps: cfg.sampleSteps,
        seed: cfg.seed,
        guidance: cfg.sampleGuidance,
        prediction: cfg.prediction,
        signal: abort.signal,
      });
      const file = await writing(
        "samples",
        join(cfg.out, "samples"),
        () => writeSampleGrid(cfg.out, st.step, g.png),
      );
      progress.log(`samples → ${file} (${formatDuration((performance.now() - t) / 1000)})`);
    } catch (e) {
      if (!abort.signal.aborted) throw e;
    }
  };

  try {
    while (st.step < cfg.steps && stop.received === null) {
      const t = performance.now();
      const r = await trainStep(st, train, sched, unet, cfg.batch, cfg, extra.targets);
      const sec = (performance.now() - t) / 1000;
      recent.add(r.loss);
      intervalLoss += r.loss;
      intervalNorm += r.gradNorm;
      intervalSteps++;
      intervalImg += cfg.batch;
      intervalSec += sec;
      const imgPerS = speed.add(cfg.batch, sec);
      progress.update({ step: r.step, loss: recent.mean() ?? r.loss, imgPerS, lr: r.lr });
      if (r.step % cfg.logEvery === 0 || r.step === cfg.steps) {
        const line = {
          step: r.step,
          loss: intervalLoss / intervalSteps,
          img_per_s: intervalImg / intervalSec,
          lr: r.lr,
          grad_norm: intervalNorm / intervalSteps,
          ema_decay: emaDecayAt(r.step, cfg.ema),
          epoch: st.sampler.epochs,
          elapsed: elapsedSeconds(session),
        };
        const bytes = enc.encode(JSON.stringify(line) + "\n");
        await writing("metrics", metricsFile, async () => {
          for (let o = 0; o < bytes.length;) o += await metrics.write(bytes.subarray(o));
        });
        intervalLoss =
          intervalNorm =
          intervalSteps =
          intervalImg =
          intervalSec =
            0;
      }
      if (r.step % cfg.checkpointEvery === 0 && r.step < cfg.steps) {
        await checkpoint(session, st, unet, recent.mean());
      }
      if (cfg.sampleEvery > 0 && r.step % cfg.sampleEvery === 0 && r.step < cfg.steps) {
        await writeGrid();
      }
      // Let signal handlers run (tfjs reads may resolve without yielding to the event loop).
      await new Promise((res) => setTimeout(res, 0));
    }
    await checkpoint(session, st, unet, recent.mean());
    if (stop.received === null && cfg.sampleEvery > 0) await writeGrid();
    progress.stop();
    if (stop.received !== null) {
      exitCode = stoppedExit(stop.received, st.step, cfg.out);
    } else {
      const wall = elapsedSeconds(session);
      console.log(
        `done: step ${st.step}, loss ${
          recent.mean()?.toFixed(4)
        } (mean of last ${recent.count}), ` +
          `${formatDuration(wall)} total; checkpoint in ${cfg.out}/checkpoint`,
      );
    }
  } catch (e) {
    progress.stop();
    exitCode = failureExit(e, st.step, kept(session), {
      nonFinite: "try a lower --lr or --grad-clip",
      write: "free space or make it writable, then --resume",
    });
  } finally {
    metrics.close();
    stop.dispose();
    disposeState(st);
    extra.dispose();
  }
  return exitCode;
}

if (import.meta.main) {
  const code = await main(Deno.args);
  tf.disposeVariables();
  Deno.exit(code);
}
