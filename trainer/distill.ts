/**
 * `deno task distill`: progressive distillation (Salimans & Ho 2022) of a trained run into a
 * student that samples in half the DDIM steps per round, on nested `power` grids
 * (trainer/distill/math.ts):
 *
 *   deno task distill --teacher <run dir> --out <run dir> [--start-steps 8] [--rounds 2]
 *     [--steps-per-round 2000] [--batch 64] [--lr 1e-4] [--warmup 50] [--lr-schedule linear]
 *     [--ema 0.999] [--grad-clip 1] [--seed 0] [--threads 1] [--backend wasm]
 *     [--checkpoint-every 200] [--log-every 20] [--sample-every 0] [--sample-count 64]
 *     [--data SPEC] [--limit N] [--after-prior T1] [--teacher-guidance G] [--resume]
 *
 * Round r (0-based) distils a teacher DDIM chain (η = 0, clipped x̂₀) of S_r = start/2^r steps on
 * power(S_r) into a student of M_r = S_r/2 steps on power(M_r). Round 0's teacher is the
 * `--teacher` run's EMA weights; the student starts from them exactly (same parameterisation),
 * Adam from zero. Round r+1's teacher is round r's final student EMA, which is also the next
 * student's start (Adam reset, its own warm-up and lr schedule). Loss: MSE in the student's
 * prediction space against the distilled target — for an ε-student that is ε-space MSE, i.e.
 * x₀-space MSE weighted by SNR (Salimans & Ho's "SNR" weighting; stable for ≥ 2 student steps,
 * but it does not train the x̂₀ of a 1-step student at t = T−1, where SNR ≈ 0).
 *
 * With `--after-prior T1` every chain starts with the data prior's step at T−1 (no model call),
 * which lands on T1 for teacher and student alike; the rounds halve only the calls from T1 down
 * (afterPriorCalls: S_r calls on a power grid from T1), and the exported card carries the
 * student's chain as `sampling.timesteps`. `--teacher-guidance G` makes every teacher step the
 * classifier-free guided one (distill/step.ts guidedBatchModel), so the student draws guided
 * digits at one call per step.
 *
 * Writes, like the trainer (trainer/train.ts):
 *   <out>/checkpoint/            the latest checkpoint (training/checkpoint.ts; `meta.distill`
 *                                records the teacher's sha256, the round, the grids, the record)
 *   <out>/round-R/checkpoint/    round R's final student (export it: `deno task export --run`)
 *   <out>/metrics.jsonl          one line per logged step (with round and student steps)
 *   <out>/samples/round-R-Msteps-step-NNNNNN.png   EMA grids at the start and end of every round
 *
 * Exit codes as the trainer's: 0 done, 2 bad flags / teacher / data, 3 non-finite loss, 4 the run
 * directory cannot be written, 130 / 143 after SIGINT / SIGTERM (checkpointed first).
 *
 * This file is the CLI `main` and the round loop: one procedure whose closures (checkpoints,
 * grids, signals, metrics) share the round state, hence its length. Its parts: the configuration
 * and meta.distill schemas (distill/config.ts), the flags and the run they ask for
 * (distill/flags.ts), the starting state of a new or resumed run (distill/resume.ts), one update
 * (distill/step.ts), the checkpoint meta (distill/meta.ts), the sample grids (distill/grid.ts)
 * and the maths (distill/math.ts).
 */
import * as tf from "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { z } from "zod";
import { sha256Hex } from "../edge/model.ts";
import { makeSchedule } from "../shared/schedule.ts";
import type { Prediction } from "../shared/prediction.ts";
import {
  type Checkpoint,
  CheckpointError,
  type CheckpointMeta,
  osReason,
  packTensors,
  RunWriteError,
  writeCheckpoint,
} from "./training/checkpoint.ts";
import {
  disposeState,
  emaDecayAt,
  NonFiniteError,
  paramCount,
  saveState,
  type TrainState,
} from "./training/loop.ts";
import { DataError, type Dataset, loadRunData } from "./data/datasets.ts";
import { createProgress, formatDuration, Throughput } from "./training/progress.ts";
import { listenForStop, stopExitCode } from "./training/stop_signals.ts";
import { shellQuote, startRun, truncateMetrics } from "./training/run_files.ts";
import { roundGrid } from "./distill/math.ts";
import {
  type DistillConfig,
  DistillError,
  type DistillMeta,
  studentSteps,
} from "./distill/config.ts";
import { FLAG_OPTIONS, helpText, num, resolveRun, type Values } from "./distill/flags.ts";
import {
  distillStep,
  guidedBatchModel,
  roundOptim,
  studentFrom,
  tfjsBatchModel,
} from "./distill/step.ts";
import { measurePrior } from "../shared/data_prior.ts";
import { studentGrid } from "./distill/grid.ts";
import { nhwcToNchw, writeSampleGrid } from "./training/sample_grid.ts";
import { startingState } from "./distill/resume.ts";
import { distillCheckpointMeta, type DistillRunInfo } from "./distill/meta.ts";

/** Run the distiller with these arguments; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const command = ["deno", "run", "-A", "trainer/distill.ts", ...argv].map(shellQuote).join(" ");
  let values: Values;
  try {
    values = parseArgs({ args: argv, options: FLAG_OPTIONS, strict: true }).values as Values;
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n${helpText()}`);
    return 2;
  }
  if (values.help) {
    console.log(helpText());
    return 0;
  }
  const s = (k: string) => values[k] as string | undefined;

  // --- configuration, teacher, resume state -------------------------------------------------
  let cfg: DistillConfig;
  let resumed: Checkpoint | null;
  let teacherCk: Checkpoint;
  let teacherMetaSha: string;
  let stopAtFlag: number | undefined;
  try {
    ({ cfg, resumed, teacherCk, teacherMetaSha } = await resolveRun(values));
    stopAtFlag = num(s("stop-at"), "stop-at");
  } catch (e) {
    if (e instanceof DistillError || e instanceof CheckpointError || e instanceof z.ZodError) {
      console.error(`error: ${e instanceof z.ZodError ? z.prettifyError(e) : e.message}`);
      return 2;
    }
    if (e instanceof Error && e.message.startsWith("--")) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const unet = teacherCk.meta.unet;
  const teacherSha = await sha256Hex(packTensors(unet, teacherCk.ema));
  const dm0 = resumed?.meta.distill as DistillMeta | undefined;
  if (dm0 && dm0.teacher.sha256 !== teacherSha) {
    console.error(
      `error: the teacher ${cfg.teacher} has changed since this run started ` +
        `(ema sha256 ${teacherSha}, the run recorded ${dm0.teacher.sha256})`,
    );
    return 2;
  }

  // --- data ----------------------------------------------------------------------------------
  let train: Dataset;
  try {
    ({ train } = await loadRunData(cfg.data, cfg.limit, {
      imageSize: unet.imageSize,
      channels: unet.inChannels,
    }));
  } catch (e) {
    if (e instanceof DataError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (unet.numClasses > 0 && !train.labels) {
    console.error(`error: the teacher is conditional; ${cfg.data} has no labels`);
    return 2;
  }

  const be = await startRun(cfg.out, { backend: cfg.backend, threads: cfg.threads });
  if (typeof be === "number") return be;
  const backend = be.threads > 1 ? `${be.name} ×${be.threads} threads` : be.name;

  const base = makeSchedule(teacherCk.meta.schedule.kind, teacherCk.meta.schedule.T);
  const total = cfg.rounds * cfg.stepsPerRound;
  const teacherPrediction: Prediction = teacherCk.meta.prediction ?? "epsilon";
  const teacherInfo: DistillMeta["teacher"] = {
    run: cfg.teacher,
    step: teacherCk.meta.step,
    sha256: teacherSha,
    metaSha256: teacherMetaSha,
    prediction: teacherPrediction,
    command: teacherCk.meta.command,
    commands: teacherCk.meta.commands,
    wallTimeSeconds: teacherCk.meta.wallTimeSeconds,
  };

  // --- state: round, teacher weights, student ------------------------------------------------
  let round: number, st: TrainState, record: DistillMeta["record"], roundTeacherSha: string;
  let teacherWeights: Map<string, Float32Array>;
  try {
    ({ round, st, record, roundTeacherSha, teacherWeights } = await startingState(
      cfg,
      unet,
      resumed,
      teacherCk.ema,
      teacherSha,
      train.count,
    ));
  } catch (e) {
    if (!(e instanceof DistillError)) throw e;
    console.error(`error: ${e.message}`);
    return 2;
  }
  const globalStep = () => round * cfg.stepsPerRound + st.step;
  const commands = [...(resumed?.meta.commands ?? []), command];
  const wallBefore = resumed?.meta.wallTimeSeconds ?? 0;
  const t0 = performance.now();
  const wall = () => wallBefore + (performance.now() - t0) / 1000;
  const recentBefore = (resumed?.meta.distill as DistillMeta | undefined)?.recentLosses ?? [];
  resumed = null;

  let teacherVars: Record<string, tf.Tensor> = {};
  const setTeacher = (w: Map<string, Float32Array>) => {
    Object.values(teacherVars).forEach((v) => v.dispose());
    teacherVars = {};
    for (const [k, v] of w) teacherVars[k] = tf.tensor(v, st.params[k].shape);
  };
  setTeacher(teacherWeights);
  let grid = roundGrid(
    base,
    studentSteps(cfg.startSteps, round),
    round === 0 ? teacherPrediction : cfg.prediction,
    cfg.afterPrior,
  );
  const teacherModel = () =>
    guidedBatchModel(tfjsBatchModel(teacherVars, unet), cfg.teacherGuidance, unet.numClasses);
  let teacher = teacherModel();
  // The sample grids' prior step (a run with --after-prior): the run's own images' statistics.
  const prior = cfg.afterPrior > 0
    ? measurePrior(
      nhwcToNchw(train.images, train.count, unet.inChannels, unet.imageSize ** 2),
      unet.inChannels * unet.imageSize ** 2,
      unet.numClasses > 0 ? train.labels : null,
      unet.numClasses > 0 ? unet.numClasses : 0,
    )
    : null;

  console.log(
    `distilling ${cfg.teacher} (step ${teacherCk.meta.step}, ema sha256 ${
      teacherSha.slice(0, 12)
    }…): ` +
      `${cfg.rounds} rounds × ${cfg.stepsPerRound} updates, DDIM η=0 power ` +
      `${cfg.startSteps} → ${studentSteps(cfg.startSteps, cfg.rounds - 1)} ${
        cfg.afterPrior > 0 ? `calls after a prior step to t=${cfg.afterPrior}` : "steps"
      }${
        cfg.teacherGuidance !== 1 ? `, teacher guidance ${cfg.teacherGuidance}` : ""
      }; batch ${cfg.batch}, ` +
      `lr ${cfg.lr} (${cfg.lrSchedule}, warm-up ${cfg.warmup}) per round; l2 on ${cfg.prediction}`,
  );
  console.log(
    `model ${
      paramCount(unet).toLocaleString("en")
    } params; data ${cfg.data}: ${train.count} images`,
  );
  const schedule = { ...teacherCk.meta.schedule }, labels = teacherCk.meta.labels;
  teacherCk = null as unknown as typeof teacherCk;

  const recent: number[] = [...recentBefore];
  const lastLoss = () => recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : null;
  const runInfo: DistillRunInfo = {
    cfg,
    unet,
    schedule,
    labels,
    dataset: cfg.limit > 0 ? `${train.name} (first ${train.count})` : train.name,
    backend,
    command,
    commands,
    teacher: teacherInfo,
  };
  const meta = (lastLoss: number | null): CheckpointMeta =>
    distillCheckpointMeta(runInfo, {
      step: globalStep(),
      wallTimeSeconds: wall(),
      round,
      st,
      grid,
      roundTeacherSha256: roundTeacherSha,
      recentLosses: recent,
      record,
    }, lastLoss);

  let saved: number | null = null;
  const checkpointTo = async (dir: string, lastLoss: number | null) => {
    const s = await saveState(st);
    await writeCheckpoint(dir, {
      meta: meta(lastLoss),
      params: s.params,
      ema: s.ema,
      adamM: s.adamM,
      adamV: s.adamV,
    });
    return s;
  };
  const checkpoint = async (lastLoss: number | null) => {
    await checkpointTo(cfg.out, lastLoss);
    saved = globalStep();
  };
  const kept = () =>
    saved === null
      ? `no checkpoint was written to ${cfg.out}`
      : `the last good checkpoint (step ${saved}) in ${cfg.out}/checkpoint is kept`;

  const metricsFile = join(cfg.out, "metrics.jsonl");
  let metrics: Deno.FsFile;
  const abort = new AbortController();
  const progress = createProgress({
    total,
    start: globalStep(),
    batch: cfg.batch,
    logEvery: cfg.logEvery,
  });
  const writeGrid = async (label: string) => {
    const t = performance.now();
    try {
      const png = await studentGrid(
        st.ema,
        unet,
        base,
        grid,
        prior,
        cfg.prediction,
        cfg.sampleCount,
        cfg.seed,
        abort.signal,
      );
      const file = await writeSampleGrid(
        cfg.out,
        globalStep(),
        png,
        `round-${round}-${grid.steps}steps-`,
        label,
      );
      progress.log(`samples → ${file} (${formatDuration((performance.now() - t) / 1000)})`);
    } catch (e) {
      if (!abort.signal.aborted) throw e;
    }
  };

  try {
    if (globalStep() > 0) await truncateMetrics(metricsFile, globalStep());
    if (globalStep() === 0) await checkpoint(null);
    metrics = await Deno.open(metricsFile, { append: true, create: true });
  } catch (e) {
    progress.stop();
    disposeState(st);
    if (e instanceof Error && "code" in e) {
      console.error(`error: cannot write to ${cfg.out}: ${osReason(e)}; ${kept()}.`);
      return 4;
    }
    throw e;
  }
  if (globalStep() > 0) console.log(`resuming at step ${globalStep()} (round ${round}) → ${total}`);
  else if (cfg.sampleEvery >= 0) await writeGrid("-start");

  const stop = listenForStop(abort, (line) => progress.log(line));
  const enc = new TextEncoder();
  const speed = new Throughput();
  let iLoss = 0, iNorm = 0, iSteps = 0, iSec = 0;
  let exitCode = 0;
  const opt = roundOptim(cfg);
  const stopAt = Math.min(total, stopAtFlag ?? total);

  try {
    while (globalStep() < stopAt && stop.received === null) {
      if (st.step === cfg.stepsPerRound) {
        // Next round: the finished student's EMA is the teacher and the new student's start.
        const ema = (await saveState(st)).ema;
        const sampler = st.sampler, noise = st.noise;
        disposeState(st);
        round++;
        roundTeacherSha = await sha256Hex(packTensors(unet, ema));
        setTeacher(ema);
        teacher = teacherModel();
        grid = roundGrid(base, studentSteps(cfg.startSteps, round), cfg.prediction, cfg.afterPrior);
        st = studentFrom(unet, ema, sampler, noise);
        recent.length = 0;
        progress.log(
          `round ${round}: teacher = round ${round - 1}'s student (${2 * grid.steps} steps, ` +
            `sha256 ${roundTeacherSha.slice(0, 12)}…) → ${grid.steps} steps`,
        );
        await writeGrid("-start");
      }
      const t = performance.now();
      const r = await distillStep(st, train, base, grid, teacher, unet, cfg.batch, opt);
      const sec = (performance.now() - t) / 1000;
      recent.push(r.loss);
      if (recent.length > 50) recent.shift();
      iLoss += r.loss;
      iNorm += r.gradNorm;
      iSteps++;
      iSec += sec;
      const g = globalStep();
      progress.update({
        step: g,
        loss: lastLoss() ?? r.loss,
        imgPerS: speed.add(cfg.batch, sec),
        lr: r.lr,
      });
      if (g % cfg.logEvery === 0 || st.step === cfg.stepsPerRound) {
        const line = {
          step: g,
          round,
          round_step: st.step,
          student_steps: grid.steps,
          loss: iLoss / iSteps,
          img_per_s: (iSteps * cfg.batch) / iSec,
          lr: r.lr,
          grad_norm: iNorm / iSteps,
          ema_decay: emaDecayAt(st.step, cfg.ema),
          epoch: st.sampler.epochs,
          elapsed: wall(),
        };
        const bytes = enc.encode(JSON.stringify(line) + "\n");
        for (let o = 0; o < bytes.length;) o += await metrics!.write(bytes.subarray(o));
        iLoss =
          iNorm =
          iSteps =
          iSec =
            0;
      }
      if (st.step === cfg.stepsPerRound) {
        // The round's final student: its own checkpoint (exportable), then its grid.
        const s = await checkpointTo(join(cfg.out, `round-${round}`), lastLoss());
        record = [...record, {
          round,
          teacherSteps: 2 * grid.steps,
          studentSteps: grid.steps,
          steps: st.step,
          finalLoss: lastLoss(),
          sha256: await sha256Hex(packTensors(unet, s.ema)),
        }];
        progress.log(
          `round ${round} done: ${grid.steps}-step student, loss ${lastLoss()?.toFixed(5)} → ` +
            `${cfg.out}/round-${round}`,
        );
        await writeGrid("-end");
      }
      if (g % cfg.checkpointEvery === 0 && g < total) await checkpoint(lastLoss());
      if (cfg.sampleEvery > 0 && g % cfg.sampleEvery === 0 && st.step < cfg.stepsPerRound) {
        await writeGrid("");
      }
      await new Promise((res) => setTimeout(res, 0));
    }
    await checkpoint(lastLoss());
    progress.stop();
    if (stop.received !== null) {
      console.log(
        `${stop.received}: checkpoint at step ${globalStep()} written to ${cfg.out}/checkpoint`,
      );
      exitCode = stopExitCode(stop.received);
    } else if (globalStep() < total) {
      console.log(`--stop-at ${stopAt}: checkpoint written; continue with --resume`);
    } else {
      console.log(
        `done: ${cfg.rounds} rounds, step ${globalStep()}, ${grid.steps}-step student, loss ` +
          `${lastLoss()?.toFixed(5)}, ${formatDuration(wall())} total; ${cfg.out}/checkpoint`,
      );
    }
  } catch (e) {
    progress.stop();
    if (e instanceof NonFiniteError) {
      console.error(`error: ${e.message}. Distillation stopped; ${kept()} (try a lower --lr).`);
      exitCode = 3;
    } else if (e instanceof RunWriteError) {
      console.error(`error: ${e.message}. Stopped at step ${globalStep()}; ${kept()}.`);
      exitCode = 4;
    } else {
      throw e;
    }
  } finally {
    metrics!.close();
    stop.dispose();
    disposeState(st);
    Object.values(teacherVars).forEach((v) => v.dispose());
  }
  return exitCode;
}

if (import.meta.main) {
  const code = await main(Deno.args);
  tf.disposeVariables();
  Deno.exit(code);
}
