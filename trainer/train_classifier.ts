/**
 * `deno task train-classifier`: train a noise-aware classifier p(y | x_t, t) for classifier
 * guidance (trainer/classifier/, issue 28), or resume one, writing
 *   <run>/metrics.jsonl   one JSON line per logged step; `heldout` lines: accuracy by t bucket
 *   <run>/checkpoint/     the latest complete checkpoint (trainer/classifier/checkpoint.ts)
 *   <run>/accuracy.json   the final held-out accuracy against t
 *
 * `deno task export-classifier` (this file with `export` first) puts a run's classifier beside a
 * diffusion model: `classifier.onnx` (the gradient graph) and the card's `classifier` field.
 *
 * Exit codes as `deno task train`: 0 done, 2 bad flags / data / checkpoint / card, 3 non-finite
 * loss (the last good checkpoint is kept), 4 the run directory cannot be written, 130 / 143 after
 * SIGINT / SIGTERM (the step finishes and a checkpoint is written first).
 */
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-web";
import { join } from "node:path";
import { makeSchedule } from "../shared/schedule.ts";
import { disposeState, emaDecayAt, saveState, type TrainState } from "./training/loop.ts";
import { shellQuote, startRun, truncateMetrics } from "./training/run_files.ts";
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
import {
  classifierConfigOf,
  classifierHelpText,
  type ClassifierTrainConfig,
  ClassifierTrainConfigSchema,
  ConfigError,
  freshClassifierConfig,
  parseClassifierFlags,
  resumedClassifierConfig,
} from "./classifier/config.ts";
import {
  CheckpointError,
  type ClassifierCheckpoint,
  readClassifierCheckpoint,
  RunWriteError,
  writeClassifierCheckpoint,
} from "./classifier/checkpoint.ts";
import { savedStateOf } from "./training/checkpoint.ts";
import { type ClassifierConfig, classifierFlops, classifierParamCount } from "./classifier/net.ts";
import { classifierStep, freshClassifierState, restoreClassifierState } from "./classifier/step.ts";
import { type AccuracyByT, accuracyByT, formatAccuracy } from "./classifier/accuracy.ts";
import { exportClassifierMain } from "./classifier/export.ts";
import { CardEditError } from "./classifier/card.ts";

interface Session extends RunRecord {
  cfg: ClassifierTrainConfig;
  net: ClassifierConfig;
  labels: string[];
  accuracy?: AccuracyByT;
}

async function checkpoint(s: Session, st: TrainState, lastLoss: number | null): Promise<void> {
  const saved = await saveState(st);
  await writeClassifierCheckpoint(s.out, {
    ...saved,
    meta: {
      format: "ddpm-edge/classifier-checkpoint@1",
      ...runMeta(s, st, saved, { batch: s.cfg.batch, config: s.cfg, lastLoss }),
      classifier: s.net,
      schedule: s.cfg.schedule,
      labels: s.labels,
      paramCount: classifierParamCount(s.net),
      ...(s.accuracy ? { accuracy: s.accuracy } : {}),
    },
  });
  s.saved = st.step;
}

const kept = (s: Session) => keptMessage(s.out, s.saved);

/** Train (or resume) with these arguments; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const command = ["deno", "run", "-A", "trainer/train_classifier.ts", ...argv].map(shellQuote)
    .join(" ");
  let cfg: ClassifierTrainConfig;
  let ck: ClassifierCheckpoint | null = null;
  try {
    const flags = parseClassifierFlags(argv);
    if (flags.help) {
      console.log(classifierHelpText());
      return 0;
    }
    if (flags.resume) {
      const out = await resumeDir(flags.given, "classifier checkpoint");
      ck = await readClassifierCheckpoint(out);
      const stored = ClassifierTrainConfigSchema.safeParse(ck.meta.config);
      if (!stored.success) throw new CheckpointError(`${out}: checkpoint config is invalid`);
      cfg = resumedClassifierConfig(flags, { ...stored.data, out });
    } else {
      cfg = freshClassifierConfig(flags);
      const nonEmpty = await (async () => {
        try {
          for await (const _ of Deno.readDir(cfg.out)) return true;
        } catch { /* missing: fine */ }
        return false;
      })();
      if (nonEmpty) {
        throw new ConfigError(
          `--out ${cfg.out} already exists and is not empty: add --resume to continue it, or ` +
            `choose a new run directory`,
        );
      }
    }
  } catch (e) {
    return knownErrorExit(e, [ConfigError, CheckpointError]);
  }

  const split = await loadRunSplit(cfg);
  if (split === 2) return 2;
  const { train, test } = split;
  if (!train.labels || !train.labelNames || !test.labels || test.count === 0) {
    console.error(
      `error: the classifier needs labelled data with a held-out split; ${cfg.data} has none ` +
        `(use one subfolder per class)`,
    );
    return 2;
  }
  const net = classifierConfigOf(cfg, train.labelNames.length);
  if (ck && JSON.stringify(ck.meta.classifier) !== JSON.stringify(net)) {
    console.error(`error: the data gives a different classifier than the checkpoint's`);
    return 2;
  }
  if (ck && alreadyDone(cfg.out, ck.meta.step, cfg.steps)) return 0;
  const be = await startRun(cfg.out, { backend: cfg.backend, threads: cfg.threads });
  if (typeof be === "number") return be;
  console.log(
    `classifier ${classifierParamCount(net).toLocaleString("en")} params, ` +
      `${(classifierFlops(net) / 1e6).toFixed(1)} MFLOP/img forward; ${net.imageSize}×` +
      `${net.imageSize}×${net.inChannels}, c=${net.channels}, mult ${net.channelMult.join(",")}, ` +
      `${net.numClasses} classes`,
  );
  console.log(
    `data ${cfg.data}: ${train.count} training images (${test.count} held out); batch ` +
      `${cfg.batch}, x_t from the ${cfg.schedule.kind} schedule T=${cfg.schedule.T}, t uniform`,
  );

  const sched = makeSchedule(cfg.schedule.kind, cfg.schedule.T);
  const st = ck
    ? restoreClassifierState(net, savedStateOf(ck), train.count)
    : freshClassifierState(net, cfg.seed, train.count);
  const s: Session = {
    ...runRecord({
      out: cfg.out,
      command,
      backend: be.threads > 1 ? `${be.name} ×${be.threads} threads` : be.name,
      limit: cfg.limit,
      train,
      resumed: ck?.meta,
    }),
    cfg,
    net,
    labels: train.labelNames,
    accuracy: ck?.meta.accuracy as AccuracyByT | undefined,
  };
  ck = null;

  const metricsFile = join(cfg.out, "metrics.jsonl");
  const enc = new TextEncoder();
  let metrics: Deno.FsFile;
  const writeLine = async (line: unknown) => {
    const bytes = enc.encode(JSON.stringify(line) + "\n");
    try {
      for (let o = 0; o < bytes.length;) o += await metrics.write(bytes.subarray(o));
    } catch (e) {
      throw new RunWriteError("metrics", metricsFile, (e as Error).message);
    }
  };
  try {
    if (st.step > 0) await truncateMetrics(metricsFile, st.step);
    if (st.step === 0) await checkpoint(s, st, null);
    metrics = await Deno.open(metricsFile, { append: true, create: true });
  } catch (e) {
    disposeState(st);
    const msg = e instanceof RunWriteError
      ? e.message
      : `cannot write ${metricsFile}: ${(e as Error).message}`;
    console.error(`error: ${msg}; ${kept(s)}.`);
    return 4;
  }
  if (st.step > 0) console.log(`resuming at step ${st.step} → ${cfg.steps}`);

  const evaluate = async () => {
    const t = performance.now();
    s.accuracy = await accuracyByT(st.ema, net, sched, test, {
      buckets: cfg.evalBuckets,
      images: cfg.evalImages,
    });
    await writeLine({ step: st.step, heldout: s.accuracy });
    progress.log(
      `held-out accuracy (EMA) at step ${st.step}: ${formatAccuracy(s.accuracy)} ` +
        `[${formatDuration((performance.now() - t) / 1000)}]`,
    );
  };

  const progress = createProgress({
    total: cfg.steps,
    start: st.step,
    batch: cfg.batch,
    logEvery: cfg.logEvery,
  });
  const stop = listenForStop(new AbortController(), (line) => progress.log(line));
  const speed = new Throughput();
  const recent = new RecentLoss();
  let iv = { loss: 0, acc: 0, norm: 0, steps: 0, sec: 0 };
  let code = 0;
  try {
    while (st.step < cfg.steps && stop.received === null) {
      const t = performance.now();
      const r = await classifierStep(st, train, sched, net, cfg.batch, cfg);
      const sec = (performance.now() - t) / 1000;
      recent.add(r.loss);
      iv = {
        loss: iv.loss + r.loss,
        acc: iv.acc + r.accuracy,
        norm: iv.norm + r.gradNorm,
        steps: iv.steps + 1,
        sec: iv.sec + sec,
      };
      progress.update({
        step: r.step,
        loss: recent.mean() ?? r.loss,
        imgPerS: speed.add(cfg.batch, sec),
        lr: r.lr,
      });
      if (r.step % cfg.logEvery === 0 || r.step === cfg.steps) {
        await writeLine({
          step: r.step,
          loss: iv.loss / iv.steps,
          train_accuracy: iv.acc / iv.steps,
          img_per_s: iv.steps * cfg.batch / iv.sec,
          lr: r.lr,
          grad_norm: iv.norm / iv.steps,
          ema_decay: emaDecayAt(r.step, cfg.ema),
          epoch: st.sampler.epochs,
          elapsed: elapsedSeconds(s),
        });
        iv = { loss: 0, acc: 0, norm: 0, steps: 0, sec: 0 };
      }
      if (cfg.evalEvery > 0 && r.step % cfg.evalEvery === 0 && r.step < cfg.steps) await evaluate();
      if (r.step % cfg.checkpointEvery === 0 && r.step < cfg.steps) {
        await checkpoint(s, st, recent.mean());
      }
      await new Promise((res) => setTimeout(res, 0));
    }
    if (stop.received === null) {
      await evaluate();
      await Deno.writeTextFile(
        join(cfg.out, "accuracy.json"),
        JSON.stringify({ step: st.step, ...s.accuracy }, null, 2) + "\n",
      );
    }
    await checkpoint(s, st, recent.mean());
    progress.stop();
    if (stop.received !== null) {
      code = stoppedExit(stop.received, st.step, cfg.out);
    } else {
      const wall = elapsedSeconds(s);
      console.log(
        `done: step ${st.step}, loss ${recent.mean()?.toFixed(4)}, ${
          formatDuration(wall)
        } total; ` +
          `checkpoint in ${cfg.out}/checkpoint, accuracy by t in ${cfg.out}/accuracy.json`,
      );
    }
  } catch (e) {
    progress.stop();
    code = failureExit(e, st.step, kept(s), { nonFinite: "try a lower --lr" });
  } finally {
    metrics.close();
    stop.dispose();
    disposeState(st);
  }
  return code;
}

/** `export …`: install a run's classifier beside a model card; resolves to the exit code. */
export async function exportMain(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(classifierHelpText());
    return 0;
  }
  ort.env.wasm.numThreads = 1;
  try {
    const r = await exportClassifierMain(argv);
    console.log(
      `wrote ${r.field.file} (${r.bytes} bytes, sha256 ${r.field.sha256}) and the card's ` +
        `classifier field (scale ${r.field.scale}); runs in onnxruntime-web: max |∇| ` +
        `${r.verify.maxAbsGrad.toExponential(2)}, vs fp32 ${
          r.verify.relDiffVsFp32.toExponential(2)
        } ` +
        `(relative)`,
    );
    return 0;
  } catch (e) {
    return knownErrorExit(e, [ConfigError, CheckpointError, CardEditError]);
  }
}

if (import.meta.main) {
  const code = Deno.args[0] === "export"
    ? await exportMain(Deno.args.slice(1))
    : await main(Deno.args);
  tf.disposeVariables();
  Deno.exit(code);
}
