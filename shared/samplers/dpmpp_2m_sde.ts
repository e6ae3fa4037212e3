/**
 * `dpm++2m-sde`: the stochastic DPM-Solver++(2M) (Lu et al. 2022; the "sde-dpmsolver++"
 * midpoint variant of diffusers), data-prediction form, noise from the request's seeded RNG.
 * With h = λ_{i−1} − λ_i and z standard normal:
 *
 *   x_{i−1} = (σ_{i−1}/σ_i)·e^{−h}·x_i + α_{i−1}·(1 − e^{−2h})·D + σ_{i−1}·√(1 − e^{−2h})·z
 *
 * D = x̂₀_i at the first call, else x̂₀_i + ½·(x̂₀_i − x̂₀_{i+1})/r with r = h_prev/h; the last
 * call returns x̂₀ without noise.
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
    needsNoise: (k) => k < S - 1,
    init: multistepState,
    denoised: (state) => (state as MultistepState).x0,
    history: true,
    step(state, x, out, k, noise) {
      const st = state as MultistepState;
      const i = S - 1 - k;
      const { x0 } = denoise(s.prediction, x, out, c.alpha[i], c.sigma[i], s.clipDenoised, st);
      if (i === 0) {
        for (let j = 0; j < x.length; j++) x[j] = x0[j];
        return;
      }
      if (noise === null) throw new Error("this step needs noise");
      const h = c.lambda[i - 1] - c.lambda[i];
      const keep = (c.sigma[i - 1] / c.sigma[i]) * Math.exp(-h);
      const oneMinus = -Math.expm1(-2 * h);
      const gain = c.alpha[i - 1] * oneMinus, z = c.sigma[i - 1] * Math.sqrt(oneMinus);
      const half = st.prevH === null ? 0 : 0.5 / (st.prevH / h);
      for (let j = 0; j < x.length; j++) {
        const d = x0[j] + half * (x0[j] - st.prevX0[j]);
        x[j] = keep * x[j] + gain * d + z * noise[j];
      }
      st.prevX0.set(x0);
      st.prevH = h;
    },
  };
}

export const dpmpp2mSde: Sampler = {
  name: "dpm++2m-sde",
  description: "DPM-Solver++(2M) SDE (Lu et al. 2022): stochastic 2nd-order multistep solver",
  usesEta: false,
  needsAnalytic: false,
  callsPerStep: 1,
  plan,
};
