/**
 * Training progress for a person: on a terminal, a cli-progress bar (step, loss, img/s, ETA) with
 * messages printed above it; otherwise (logs, CI, subprocesses) plain lines, one every
 * `logEvery` steps. Throughput and ETA use an exponential moving average of the step time.
 */
import cliProgress from "cli-progress";

export interface StepInfo {
  step: number;
  loss: number;
  imgPerS: number;
  lr: number;
}

export interface Progress {
  /** Called after every step. */
  update(info: StepInfo): void;
  /** A message that must not garble the bar. */
  log(message: string): void;
  stop(): void;
}

/** "1h02m", "3m07s", "12s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

/** Seconds left for `remaining` steps of `batch` images at `imgPerS`. */
export function etaSeconds(remaining: number, batch: number, imgPerS: number): number {
  return imgPerS > 0 ? remaining * batch / imgPerS : NaN;
}

/** One plain log line. */
export function formatLine(info: StepInfo, total: number, batch: number): string {
  const eta = etaSeconds(total - info.step, batch, info.imgPerS);
  return `step ${info.step}/${total}  loss ${info.loss.toFixed(4)}  lr ${
    info.lr.toExponential(2)
  }  ` +
    `${info.imgPerS.toFixed(1)} img/s  ETA ${formatDuration(eta)}`;
}

export interface ProgressOptions {
  total: number;
  start: number;
  batch: number;
  logEvery: number;
  /** Defaults to whether stderr is a terminal. */
  tty?: boolean;
  /** Where plain lines go (default console.log). */
  write?: (line: string) => void;
}

export function createProgress(o: ProgressOptions): Progress {
  const tty = o.tty ?? Deno.stderr.isTerminal();
  return tty ? barProgress(o) : plainProgress(o);
}

function plainProgress(o: ProgressOptions): Progress {
  const write = o.write ?? ((l: string) => console.log(l));
  return {
    update(info) {
      if (info.step % o.logEvery === 0 || info.step === o.total) {
        write(formatLine(info, o.total, o.batch));
      }
    },
    log: write,
    stop() {},
  };
}

function barProgress(o: ProgressOptions): Progress {
  const multi = new cliProgress.MultiBar({
    format: "step {value}/{total} [{bar}] loss {loss} | {imgps} img/s | ETA {etaText}",
    hideCursor: true,
    clearOnComplete: false,
    barsize: 30,
    etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
  const bar = multi.create(o.total, o.start, { loss: "-", imgps: "-", etaText: "?" });
  return {
    update(info) {
      bar.update(info.step, {
        loss: info.loss.toFixed(4),
        imgps: info.imgPerS.toFixed(1),
        etaText: formatDuration(etaSeconds(o.total - info.step, o.batch, info.imgPerS)),
      });
    },
    log(message) {
      multi.log(message + "\n");
    },
    stop() {
      multi.stop();
    },
  };
}

/** Smoothed images per second (EMA of per-step rates, bias-corrected). */
export class Throughput {
  private avg = 0;
  private weight = 0;
  constructor(private readonly alpha = 0.1) {}

  add(images: number, seconds: number): number {
    const rate = images / Math.max(seconds, 1e-9);
    this.avg = (1 - this.alpha) * this.avg + this.alpha * rate;
    this.weight = (1 - this.alpha) * this.weight + this.alpha;
    return this.value;
  }

  get value(): number {
    return this.weight > 0 ? this.avg / this.weight : 0;
  }
}
