/**
 * DPM-Solver++(2M) and its SDE variant against an independent plain-loop computation written
 * from the paper's Algorithm 2 (t-indexed, plain arrays, Math.exp, no shared helpers).
 */
import assert from "node:assert/strict";
import { makeSchedule, spacedTimesteps } from "../schedule.ts";
import { type EpsModel, sample } from "../sample.ts";
import { Rng } from "../rng.ts";

const base = makeSchedule("cosine", 1000);
const D = 12, N = 3;
/** A smooth, non-trivial ε-model (no clipping needed). */
const model: EpsModel = (x, t) =>
  Promise.resolve(Float32Array.from(x, (v, j) => 0.6 * Math.tanh(v) + 0.05 * Math.sin(j + t / 97)));

async function reference(steps: number, seed: number, sde: boolean): Promise<Float32Array> {
  const ts = [...spacedTimesteps(1000, steps, "trailing")].reverse(); // noisiest first
  const ab = (t: number) => base.alphasCumprod[t];
  const alpha = (t: number) => Math.sqrt(ab(t)), sigma = (t: number) => Math.sqrt(1 - ab(t));
  const lam = (t: number) => Math.log(alpha(t) / sigma(t));
  const rng = new Rng(seed);
  const xf = rng.fillNormal(new Float32Array(N * D));
  let x = Array.from(xf);
  let prev: number[] | null = null;
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i];
    const eps = await model(Float32Array.from(x), t);
    const x0 = x.map((v, j) => (v - sigma(t) * eps[j]) / alpha(t));
    if (i === ts.length - 1) {
      x = x0;
      break;
    }
    const u = ts[i + 1];
    const h = lam(u) - lam(t);
    let dd = x0;
    if (prev) {
      const r = (lam(t) - lam(ts[i - 1])) / h;
      dd = sde
        ? x0.map((v, j) => v + (v - prev![j]) / (2 * r))
        : x0.map((v, j) => (1 + 1 / (2 * r)) * v - prev![j] / (2 * r));
    }
    if (sde) {
      const z = rng.fillNormal(new Float32Array(N * D));
      x = x.map((v, j) =>
        sigma(u) / sigma(t) * Math.exp(-h) * v + alpha(u) * (1 - Math.exp(-2 * h)) * dd[j] +
        sigma(u) * Math.sqrt(1 - Math.exp(-2 * h)) * z[j]
      );
    } else {
      x = x.map((v, j) => sigma(u) / sigma(t) * v - alpha(u) * (Math.exp(-h) - 1) * dd[j]);
    }
    prev = x0;
    // The solver keeps x in float32 between calls, as the edge does.
    x = Array.from(Float32Array.from(x));
  }
  return Float32Array.from(x);
}

for (const sde of [false, true]) {
  const sampler = sde ? "dpm++2m-sde" : "dpm++2m";
  for (const steps of [2, 3, 5, 10]) {
    Deno.test(`${sampler} matches an independent plain loop at ${steps} steps`, async () => {
      const got = await sample(base, model, {
        n: N,
        size: D,
        steps,
        spacing: "trailing",
        seed: 17,
        sampler,
        clipDenoised: false,
      });
      const want = await reference(steps, 17, sde);
      for (let j = 0; j < got.length; j++) {
        assert.ok(
          Math.abs(got[j] - want[j]) <= 2e-5 * Math.max(1, Math.abs(want[j])),
          `value ${j}: ${got[j]} vs ${want[j]}`,
        );
      }
    });
  }
}
