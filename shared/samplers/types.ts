/**
 * The sampler contract (the diffusers scheduler contract, in functional form): from the base
 * schedule and the request's settings a sampler makes a `Plan` — the original timesteps to call
 * the model at, in call order, and a `step` that turns x_t and the model's output into the next
 * x. The caller (shared/sample.ts) owns the loop, the model calls and the noise: a step that
 * needs noise is handed a fresh batch of standard normals from the request's seeded RNG.
 * Multistep solvers keep their history in the plan's explicit per-request state.
 */
import type { Prediction } from "../prediction.ts";
import type { Schedule, Spacing } from "../schedule.ts";
import type { VarianceType } from "../step.ts";

/** Per-timestep statistics for Analytic-DPM (model card `sampling.analytic`). */
export interface AnalyticStats {
  /** Γ_t = E‖ε̂(x_t, t)‖²/d for every original timestep t = 0…T−1. */
  gamma: ArrayLike<number>;
}

export interface SamplerSettings {
  /** Model calls' chain length: S timesteps picked out of T. */
  steps: number;
  spacing: Spacing;
  /** An explicit chain instead of the spacing's: `steps` original timesteps, ascending. */
  timesteps?: ArrayLike<number>;
  /** DDIM-family noise scale (ddim, analytic): 1 = ancestral, 0 = deterministic. */
  eta: number;
  /** σ² = β̃ ("small") or β ("large") for ddpm. */
  variance: VarianceType;
  /** Clamp x̂₀ to [−1, 1] before every update. */
  clipDenoised: boolean;
  /** What the network outputs. */
  prediction: Prediction;
  /** Γ statistics, for the analytic sampler. */
  analytic?: AnalyticStats;
}

export interface Plan<State = unknown> {
  /** The respaced chain (timesteps ascending; chain index S−1 is called first). */
  readonly chain: Schedule;
  /** Original timestep of each model call, in call order (descending). */
  readonly timesteps: Int32Array;
  /** Whether step k adds noise (and so is handed a batch of standard normals). */
  needsNoise(k: number): boolean;
  /** Fresh per-request state for images of `size` values in all (n·C·H·W). */
  init(size: number): State;
  /** The x̂₀ (in the state) that the latest `step` computed: the current prediction of the image. */
  denoised(state: State): Float64Array;
  /**
   * Whether a step reads what earlier steps left in the state (multistep solvers). Such a plan
   * cannot redo a step, so RePaint's resampling (shared/sample.ts `known.resample`) refuses it.
   */
  readonly history: boolean;
  /**
   * For plans whose step k is ancestral, x' = μ(x_t, out) + σ_k·z: σ_k² (0 where the step adds
   * no noise). Classifier guidance (shared/sample.ts) shifts such a step's mean by S·σ_k²·∇ₓ
   * log p(y | x_t); it shifts ε̂ instead where this is absent (ODE and multistep solvers) or 0.
   */
  readonly ancestralVariance?: (k: number) => number;
  /**
   * x ← the next x, in place, after call k (at `timesteps[k]`) returned `out`; `noise` is
   * standard normal where `needsNoise(k)`, else null. After the last call x is the sample.
   */
  step(
    state: State,
    x: Float32Array,
    out: ArrayLike<number>,
    k: number,
    noise: ArrayLike<number> | null,
  ): void;
}

export interface Sampler {
  readonly name: string;
  /** One line for the API docs. */
  readonly description: string;
  /** Whether the request's `eta` applies (else giving one is an error). */
  readonly usesEta: boolean;
  /** Whether the card must carry Analytic-DPM statistics. */
  readonly needsAnalytic: boolean;
  /** Model calls per step (1 for every sampler here); the work cap counts calls. */
  readonly callsPerStep: number;
  plan(base: Schedule, settings: SamplerSettings): Plan;
}
