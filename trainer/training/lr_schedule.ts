/**
 * The learning rate of every update: a linear warm-up from 0 to the peak, then constant, or a
 * cosine or linear decay to a floor reached at `decaySteps` and held after it. A pure function of
 * the update number and the run's configuration, so a resumed run follows it exactly.
 */
export const LR_SCHEDULES = ["constant", "cosine", "linear"] as const;
export type LrScheduleKind = typeof LR_SCHEDULES[number];

export interface LrSchedule {
  kind: LrScheduleKind;
  /** Peak learning rate (reached at the end of the warm-up). */
  lr: number;
  /** Warm-up updates (0 = start at the peak). */
  warmup: number;
  /** Floor of a decaying schedule (unused by constant). */
  min: number;
  /** Update at which the decay reaches `min` (≤ warmup: straight to the floor). */
  decaySteps: number;
}

/** Learning rate of update number n (1-based). */
export function scheduledLr(n: number, s: LrSchedule): number {
  if (s.warmup > 0 && n < s.warmup) return s.lr * (n / s.warmup);
  if (s.kind === "constant") return s.lr;
  const span = s.decaySteps - s.warmup;
  const p = span > 0 ? Math.min(1, Math.max(0, (n - s.warmup) / span)) : 1;
  const f = s.kind === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * p)) : 1 - p;
  return s.min + (s.lr - s.min) * f;
}
