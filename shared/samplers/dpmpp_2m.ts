/**
 * `dpm++2m`: DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), the deterministic multistep solver
 * of the diffusion ODE in data-prediction form. With h = λ_{i−1} − λ_i:
 *
 *   first call:  x_{i−1} = (σ_{i−1}/σ_i)·x_i − α_{i−1}·(e^{−h} − 1)·x̂₀_i
 *   later calls: the same with D = (1 + 1/(2r))·x̂₀_i − 1/(2r)·x̂₀_{i+1}, r = h_prev/h
 *   last call:   x = x̂₀ (dpm_solver.ts `multistepPlan`)
 */
import { multistepPlan } from "./dpm_solver.ts";
import type { Sampler } from "./types.ts";

export const dpmpp2m: Sampler = {
  name: "dpm++2m",
  description: "DPM-Solver++(2M) (Lu et al. 2022): deterministic 2nd-order multistep ODE solver",
  usesEta: false,
  needsAnalytic: false,
  callsPerStep: 1,
  plan: (base, s) =>
    multistepPlan(base, s, false, (c, i, x, x0, prevX0, r) => {
      const h = c.lambda[i - 1] - c.lambda[i];
      const ratio = c.sigma[i - 1] / c.sigma[i];
      const gain = -c.alpha[i - 1] * Math.expm1(-h);
      const w = r === null ? 0 : 1 / (2 * r);
      for (let j = 0; j < x.length; j++) {
        x[j] = ratio * x[j] + gain * ((1 + w) * x0[j] - w * prevX0[j]);
      }
    }),
};
