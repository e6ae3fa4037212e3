/**
 * The pieces image-to-image sampling adds to the shared loop: where SDEdit (Meng et al. 2022)
 * starts for a strength, the base schedule cut at that timestep (so respacing picks the partial
 * chain's steps out of t₀ + 1), and the spherical interpolation of two seeds' noise.
 */
import { type Schedule, scheduleFromBetas } from "./schedule.ts";

/**
 * SDEdit's start timestep for strength s ∈ (0, 1] of a T-step chain: t₀ = ⌈s·T⌉ − 1 (s = 1: the
 * whole chain, t₀ = T − 1; the smallest strengths start at t₀ = 0).
 */
export function startTimestep(T: number, strength: number): number {
  if (!(strength > 0 && strength <= 1)) {
    throw new RangeError(`strength must be in (0, 1], got ${strength}`);
  }
  return Math.max(0, Math.ceil(strength * T) - 1);
}

/**
 * The first t₀ + 1 timesteps of a chain as a chain of their own: the same β, so ᾱ, the posterior
 * and the original timesteps are the base's, value for value. Respacing it picks S steps that
 * end at t₀ (the partial chain's first model call).
 */
export function truncate(base: Schedule, t0: number): Schedule {
  if (!Number.isInteger(t0) || t0 < 0 || t0 >= base.T) {
    throw new RangeError(`t0 must be an integer in 0…${base.T - 1}, got ${t0}`);
  }
  if (t0 === base.T - 1) return base;
  return scheduleFromBetas(base.betas.slice(0, t0 + 1), base.timesteps.slice(0, t0 + 1));
}

/**
 * Spherical interpolation (Shoemake 1985) of a and b at u ∈ [0, 1], written into `out`: the
 * path between two Gaussian noise draws that keeps the norm typical of one (a linear mix would
 * shrink it). u = 0 gives a and u = 1 gives b exactly; nearly parallel vectors fall back to lerp.
 */
export function slerp(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  u: number,
  out: Float32Array = new Float32Array(a.length),
): Float32Array {
  if (a.length !== b.length || out.length !== a.length) throw new RangeError("length mismatch");
  if (u === 0 || u === 1) {
    out.set(u === 0 ? a : b);
    return out;
  }
  let dot = 0, na = 0, nb = 0;
  for (let j = 0; j < a.length; j++) {
    dot += a[j] * b[j];
    na += a[j] * a[j];
    nb += b[j] * b[j];
  }
  const norms = Math.sqrt(na * nb);
  const cos = norms > 0 ? Math.min(1, Math.max(-1, dot / norms)) : 1;
  const theta = Math.acos(cos);
  const s = Math.sin(theta);
  const [wa, wb] = s < 1e-6 ? [1 - u, u] : [Math.sin((1 - u) * theta) / s, Math.sin(u * theta) / s];
  for (let j = 0; j < a.length; j++) out[j] = wa * a[j] + wb * b[j];
  return out;
}
