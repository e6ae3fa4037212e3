/**
 * `dpm++2m`: DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), the deterministic multistep solver
 * of the diffusion ODE in data-prediction form. With h = λ_{i−1} − λ_i:
 *
 *   first call:  x_{i−1} = (σ_{i−1}/σ_i)·x_i − α_{i−1}·(e^{−h} − 1)·x̂₀_i
 *   later calls: the same with D = (1 + 1/(2r))·x̂₀_i − 1/(2r)·x̂₀_{i+1}, r = h_prev/h
 *   last call:   x = x̂₀ (σ = 0 ends the chain; first order, as diffusers' lower_order_final)
 */
import { denoise } from "../prediction.ts";
import { logSnrChain, type MultistepState, multistepState } from "./dpm_solver.ts";
import type { Plan, Sampler, SamplerSettings } from "./types.ts";
import type { Schedule } from "../schedule.ts";

function plan(base: Schedule, s: SamplerSettings): Plan {
  const c = logSnrChain(base, s);
  const S = c.chain.T;
  return {
    chain: c.chain,
    timesteps: c.timesteps,
    needsNoise: () => false,
    init: multistepState,
    denoised: (state) => (state as MultistepState).x0,
    history: true,
    step(state, x, out, k) {
      const st = state as MultistepState;
      const i = S - 1 - k;
      const { x0 } = denoise(s.prediction, x, out, c.alpha[i], c.sigma[i], s.clipDenoised, st);
      if (i === 0) {
        for (let j = 0; j < x.length; j++) x[j] = x0[j];
        return;
      }
      const h = c.lambda[i - 1] - c.lambda[i];
      const ratio = c.sigma[i - 1] / c.sigma[i];
      const gain = -c.alpha[i - 1] * Math.expm1(-h);
      if (st.prevH === null) {
        for (let j = 0; j < x.length; j++) x[j] = ratio * x[j] + gain * x0[j];
      } else {
        const w = 1 / (2 * (st.prevH / h));
        for (let j = 0; j < x.length; j++) {
          x[j] = ratio * x[j] + gain * ((1 + w) * x0[j] - w * st.prevX0[j]);
        }
      }
      st.prevX0.set(x0);
      st.prevH = h;
    },
  };
}

export const dpmpp2m: Sampler = {
  name: "dpm++2m",
  description: "DPM-Solver++(2M) (Lu et al. 2022): deterministic 2nd-order multistep ODE solver",
  usesEta: false,
  needsAnalytic: false,
  callsPerStep: 1,
  plan,
};
