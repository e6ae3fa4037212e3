/**
 * Admission control: at most `maxInFlight` generations run at once and at most `maxWaiting` wait
 * for a slot; beyond that a request is refused at once (the app answers 503 + Retry-After).
 * A waiter whose signal aborts (client gone) leaves the line without taking a slot.
 */

export class QueueFullError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super("server busy: too many generations in flight and waiting");
    this.name = "QueueFullError";
  }
}

export interface QueueOptions {
  maxInFlight?: number;
  maxWaiting?: number;
}

export class Queue {
  readonly maxInFlight: number;
  readonly maxWaiting: number;
  #inFlight = 0;
  #waiting: (() => void)[] = [];
  /** Moving average of job duration, for Retry-After. */
  #avgMs = 1000;

  constructor(o: QueueOptions = {}) {
    this.maxInFlight = o.maxInFlight ?? 1;
    this.maxWaiting = o.maxWaiting ?? 8;
  }

  get inFlight(): number {
    return this.#inFlight;
  }
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Seconds until a slot is likely free, at least 1. */
  retryAfter(): number {
    const ahead = this.#waiting.length + this.#inFlight;
    return Math.max(1, Math.ceil(this.#avgMs * ahead / this.maxInFlight / 1000));
  }

  /** Run job when a slot is free; throws QueueFullError or the signal's reason. */
  async run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (this.#inFlight >= this.maxInFlight) {
      if (this.#waiting.length >= this.maxWaiting) throw new QueueFullError(this.retryAfter());
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          signal?.removeEventListener("abort", leave);
          resolve();
        };
        const leave = () => {
          this.#waiting.splice(this.#waiting.indexOf(go), 1);
          reject(signal!.reason);
        };
        signal?.addEventListener("abort", leave, { once: true });
        this.#waiting.push(go);
      });
    } else this.#inFlight++;
    // Here this job holds a slot (a releasing job handed its slot over directly).
    const t0 = performance.now();
    try {
      return await job();
    } finally {
      this.#avgMs = 0.7 * this.#avgMs + 0.3 * (performance.now() - t0);
      const next = this.#waiting.shift();
      if (next) next();
      else this.#inFlight--;
    }
  }
}
