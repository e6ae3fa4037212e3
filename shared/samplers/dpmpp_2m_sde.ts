/**
 * `dpm++2m-sde`: the stochastic DPM-Solver++(2M) (Lu et al. 2022; the "sde-dpmsolver++"
 * midpoint variant of diffusers), data-prediction form, noise from the request's seeded RNG.
 * With h = λ_{i−1} − λ_i and z standard normal:
 *
 *   x_{i−1} = (σ_{i−1}/σ_i)·e^{−h}·x_i + α_{i−1}·(1 − e^{−2h})·D + σ_{i−1}·√(1 − e^{−2h})·z
 *
 * D = x̂₀_i at the first call, else x̂₀_i + ½·(x̂₀_i − x̂₀_{i+1})/r with r = h_prev/h; the last
 * call returns x̂₀ without noise (dpm_solver.ts `multistepPlan`).
 */
import { multistepPlan } from "./dpm_solver.ts";
import type { Sampler } from "./types.ts";

export const dpmpp2mSde: Sampler = {
  name: "dpm++2m-sde",
  description: "DPM-Solver++(2M) SDE (Lu et al. 2022): stochastic 2nd-order multistep solver",
  usesEta: false,
  needsAnalytic: false,
  callsPerStep: 1,
  plan: (base, s) =>
    multistepPlan(base, s, true, (c, i, x, x0, prevX0, r, noise) => {
      const h = c.lambda[i - 1] - c.lambda[i];
      const keep = (c.sigma[i - 1] / c.sigma[i]) * Math.exp(-h);
      const oneMinus = -Math.expm1(-2 * h);
      const gain = c.alpha[i - 1] * oneMinus, z = c.sigma[i - 1] * Math.sqrt(oneMinus);
      const half = r === null ? 0 : 0.5 / r;
      for (let j = 0; j < x.length; j++) {
        const d = x0[j] + half * (x0[j] - prevX0[j]);
        x[j] = keep * x[j] + gain * d + z * noise![j];
      }
    }, (c, i) => c.sigma[i - 1] ** 2 * -Math.expm1(-2 * (c.lambda[i - 1] - c.lambda[i]))),
};
