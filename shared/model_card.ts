/**
 * The model card: everything the edge needs to run an exported model, and what a person needs
 * to know where it came from. Written by the exporter as `model.json` beside `model.onnx`.
 */
import { z } from "zod";
import { DEFAULT_SPACING, SPACINGS } from "./schedule.ts";
import { PREDICTIONS } from "./prediction.ts";
import { SAMPLER_NAMES } from "./samplers/mod.ts";

/** What a conditional model samples for a request without a label (see `sampling.unlabeled`). */
export const UNLABELED_MODES = ["null-class", "random-label"] as const;
export type UnlabeledMode = typeof UNLABELED_MODES[number];

export const UNetConfigSchema = z.object({
  imageSize: z.number().int().min(4).max(256),
  inChannels: z.number().int().min(1).max(4),
  /** Base channel count c. */
  channels: z.number().int().min(4).max(512),
  /** Channel multiplier per resolution level (len ≥ 1); level l runs at imageSize / 2^l. */
  channelMult: z.array(z.number().int().min(1).max(16)).min(1).max(5),
  numResBlocks: z.number().int().min(1).max(4),
  /** Self-attention in the middle block (the lowest resolution). */
  attention: z.boolean(),
  groups: z.number().int().min(1).max(64),
  /** 0 = unconditional; otherwise class labels 0…numClasses−1 and null class numClasses. */
  numClasses: z.number().int().min(0).max(1000),
  /**
   * Space-to-depth stem (optional; absent = 1, the full-resolution stem of every card before it):
   * the input is folded into b×b blocks (C → b²·C channels at imageSize / b) before the first
   * conv, and the output unfolded back (ONNX SpaceToDepth / DepthToSpace, DCR order).
   */
  spaceToDepth: z.number().int().min(1).max(4).optional(),
  /** Res blocks per level, overriding numResBlocks level by level (optional; absent = uniform). */
  levelBlocks: z.array(z.number().int().min(1).max(4)).min(1).max(5).optional(),
  /**
   * How the decoder goes up a level (optional; absent = "resize-conv"): "resize-conv" upsamples
   * then convolves ch → ch at the higher resolution; "conv-resize" convolves ch → the next level's
   * width at the lower resolution, then upsamples (a quarter of the positions, fewer channels).
   */
  upsample: z.enum(["resize-conv", "conv-resize"]).optional(),
});
export type UNetConfig = z.infer<typeof UNetConfigSchema>;

export const ScheduleSchema = z.object({
  kind: z.enum(["linear", "cosine"]),
  T: z.number().int().min(1).max(10000),
});

/**
 * Analytic-DPM statistics (shared/samplers/analytic.ts): Γ_t = E‖ε̂(x_t, t)‖²/d at every
 * original timestep, estimated at export by Monte Carlo over training images
 * (shared/samplers/analytic_estimate.ts). Optional: a card without them cannot use `analytic`.
 */
export const AnalyticStatsSchema = z.object({
  /** Γ_t for t = 0…T−1, from ε̂ at `guidance` with each image's own label (conditional models). */
  gamma: z.array(z.number().finite()),
  /** Γ_t of the null class (guidance 0), for conditional models. */
  gammaNull: z.array(z.number().finite()).optional(),
  /** The guidance weight `gamma` was estimated at (the card's default). */
  guidance: z.number().min(0),
  /** Monte Carlo samples (training images, each with fresh noise) per timestep: M. */
  samplesPerTimestep: z.number().int().positive(),
  /** Timesteps covered (all T of the schedule). */
  timesteps: z.number().int().positive(),
  /** Where the images came from, e.g. "mnist train split (9000 images)". */
  data: z.string(),
  seed: z.number().int().nonnegative(),
  /** Cost of the estimate: image-forward passes and wall seconds. */
  forwardPasses: z.number().int().nonnegative(),
  seconds: z.number().nonnegative(),
});
export type AnalyticStatsCard = z.infer<typeof AnalyticStatsSchema>;

/**
 * The data prior of the prior step (shared/data_prior.ts): per-pixel mean and variance of each
 * class and of all training images, float32 little-endian in base64. Optional: a card without it
 * calls the model at every step, as every card before it did.
 */
export const PriorSchema = z.object({
  /** Calls at a timestep with α = √ᾱ ≤ maxAlpha are answered by the prior. */
  maxAlpha: z.number().min(0).max(1),
  classes: z.number().int().nonnegative(),
  size: z.number().int().positive(),
  mean: z.string(),
  variance: z.string(),
  /** Where the statistics came from, e.g. "mnist train split (9000 images)". */
  data: z.string(),
});

/**
 * What images whose label was dropped learn in guidance distillation
 * (trainer/guidance/guide_teacher.ts): the teacher's null class, or its output at the image's own
 * label.
 */
export const GUIDE_NULL_TARGETS = ["null", "class"] as const;
export type GuideNullTarget = typeof GUIDE_NULL_TARGETS[number];

/** `training.distillation`: how a progressive-distillation student was made. */
export const DistillationSchema = z.object({
  method: z.literal("progressive"),
  teacher: z.object({
    /** The teacher's run directory, its step, and the sha256 of its EMA weights (ema.bin). */
    run: z.string(),
    step: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    prediction: z.enum(PREDICTIONS),
    command: z.string(),
  }),
  /** The first teacher's DDIM (η = 0, power) steps, and the rounds that halve them. */
  startSteps: z.number().int().positive(),
  rounds: z.number().int().positive(),
  /** The round these weights come from (0-based) and its updates so far. */
  round: z.number().int().nonnegative(),
  roundStep: z.number().int().nonnegative(),
  stepsPerRound: z.number().int().positive(),
  teacherSteps: z.number().int().positive(),
  studentSteps: z.number().int().positive(),
  /**
   * Where the data prior's step at T−1 lands (absent: no prior step): the steps counted above are
   * then the UNet calls after it (trainer/distill/math.ts afterPriorCalls).
   */
  afterPrior: z.number().int().positive().optional(),
  /** The teacher's classifier-free guidance weight (absent: 1, unguided). */
  teacherGuidance: z.number().min(0).optional(),
  loss: z.string(),
  /** One entry per finished round. */
  record: z.array(z.object({
    round: z.number().int().nonnegative(),
    teacherSteps: z.number().int().positive(),
    studentSteps: z.number().int().positive(),
    steps: z.number().int().nonnegative(),
    finalLoss: z.number().nullable(),
    sha256: z.string(),
  })),
});

/**
 * A noise-aware classifier for classifier guidance (Dhariwal & Nichol 2021), shipped beside the
 * UNet: `file` is its gradient graph, inputs x float32 [n,C,H,W] (the UNet's scaling), t int64 [n]
 * (original timestep) and y int64 [n], outputs `grad` = ∇ₓ log softmax(f(x, t))[y] [n,C,H,W] and
 * `logits` [n,K]. Optional: a card without it serves no `classifier_scale`.
 */
export const ClassifierSchema = z.object({
  file: z.string().regex(/^[\w.-]+\.onnx$/),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Class names (index = class id): what `label` names on an unconditional model. */
  labels: z.array(z.string()).min(2),
  /** The recommended `classifier_scale`. */
  scale: z.number().min(0),
  /**
   * The steps a request with `classifier_scale` > 0 gets when it names none (optional; absent =
   * the request's usual default): guidance that acts at every step may need a longer chain.
   */
  steps: z.number().int().positive().optional(),
  /**
   * The sampler of a request with `classifier_scale` > 0 that names none (optional; absent = the
   * card's): the mean shift of an ancestral sampler may steer better than an ODE's ε-shift.
   */
  sampler: z.enum(SAMPLER_NAMES).optional(),
  /**
   * A weaker scale at high noise (optional; absent = the request's scale at every step): calls
   * above original timestep `above` steer with `classifier_scale` × `factor`
   * (shared/sample.ts `HighNoiseScale`).
   */
  highNoise: z.object({
    above: z.number().int().min(0),
    factor: z.number().min(0),
  }).optional(),
  /** How it was trained (free-form: data, steps, accuracy against t, the command). */
  training: z.record(z.string(), z.unknown()).optional(),
});
export type ClassifierCard = z.infer<typeof ClassifierSchema>;

export const ModelCardSchema = z.object({
  format: z.literal("ddpm-edge/model-card@1"),
  name: z.string().min(1),
  image: z.object({
    size: z.number().int().positive(),
    channels: z.number().int().min(1).max(4),
  }),
  architecture: UNetConfigSchema,
  schedule: ScheduleSchema,
  /** What the network outputs (shared/prediction.ts); cards before v/x0 all say epsilon. */
  prediction: z.enum(PREDICTIONS),
  /** Class names (index = label id), or null for an unconditional model. */
  labels: z.array(z.string()).nullable(),
  sampling: z.object({
    steps: z.number().int().positive(),
    eta: z.number().min(0).max(1),
    guidance: z.number().min(0),
    /** How the steps are picked out of T (shared/schedule.ts); absent in a file = linspace. */
    spacing: z.enum(SPACINGS).default(DEFAULT_SPACING),
    /**
     * The card's own chain at its `steps` (optional; absent = the spacing's): `steps` original
     * timesteps, ascending — e.g. a distilled student's grid. A request at the card's steps and
     * spacing samples these; other step counts or spacings (and image-to-image) use `spacing`.
     */
    timesteps: z.array(z.number().int().min(0)).optional(),
    /**
     * What a conditional model samples when a request names no label: `null-class` (the
     * classifier-free null class, i.e. the unconditional model; the default when absent) or
     * `random-label` (each image gets a class drawn uniformly from the request's seed, i.e. the
     * mixture of the class-conditional models).
     */
    unlabeled: z.enum(UNLABELED_MODES).optional(),
    /**
     * The steps a request gets when it names none and samples the null class (guidance 0, or no
     * label where `unlabeled` is `null-class`); absent = `steps`, what every earlier card drew
     * with. A model whose null class needs a longer chain than its labels (QUALITY.md,
     * "Null-class steps") sets it, so labelled requests keep the short chain.
     */
    nullClassSteps: z.number().int().positive().optional(),
    /**
     * The sampler (shared/samplers/); absent in a file = `ddim` with the card's eta, which is
     * what every card written before samplers existed drew with (η = 1: DDPM ancestral).
     */
    sampler: z.enum(SAMPLER_NAMES).optional(),
    /**
     * The sampler of a request that names none and samples the null class (as for
     * `nullClassSteps`); absent = `sampler`. Lets a card change its labelled sampler (issue 26)
     * while its null class keeps the one it was tuned with.
     */
    nullClassSampler: z.enum(SAMPLER_NAMES).optional(),
    analytic: AnalyticStatsSchema.optional(),
    /** The prior step's statistics (absent = every call runs the model). */
    prior: PriorSchema.optional(),
  }),
  onnx: z.object({
    file: z.string().regex(/^[\w.-]+\.onnx$/),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    bytes: z.number().int().positive(),
    opset: z.number().int().positive(),
    quantization: z.enum(["int8", "fp16", "fp32"]),
    /**
     * Layers whose weights stay float32 under `quantization` (optional; absent = every conv and
     * dense weight is quantised, as on every earlier card). Informational: the graph says it too.
     */
    fp32Layers: z.array(z.string().min(1)).optional(),
    /** Input names and dtypes: x [N,C,H,W] float32, t [N], y [N] int64 when conditional. */
    timestepType: z.enum(["float32", "int64"]),
  }),
  /** The classifier of classifier guidance (absent: no `classifier_scale`). */
  classifier: ClassifierSchema.optional(),
  dataset: z.string(),
  /**
   * Where the training images come from and under which licences (optional; absent = none
   * declared, as on the MNIST cards). The emoji model names its two image sets here.
   */
  credits: z.array(z.object({
    source: z.string(),
    licence: z.string(),
    attribution: z.string(),
  })).optional(),
  training: z.object({
    steps: z.number().int().nonnegative(),
    batch: z.number().int().positive(),
    wallTimeSeconds: z.number().nonnegative(),
    finalLoss: z.number().nullable(),
    backend: z.string(),
    /** The last command that trained the run (what produced these weights' final steps). */
    command: z.string(),
    /** Every command of the run in order: the first one and each --resume. */
    commands: z.array(z.string()).optional(),
    /** Training objective (optional; absent = l2 on ε, what every earlier card trained). */
    loss: z.enum(["l2", "l1"]).optional(),
    /** Label dropout to the null class (conditional models). */
    condDrop: z.number().min(0).max(1).optional(),
    /**
     * Guidance distillation (`--guide-teacher`): the run whose guided output (weight `weight`)
     * the latest steps were trained on, and the sha256 of its EMA weights.
     */
    guideTeacher: z.object({
      run: z.string(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      weight: z.number().min(0),
      /** What dropped labels learned: the teacher's null class (absent) or its own-label output. */
      nullTarget: z.enum(GUIDE_NULL_TARGETS).optional(),
    }).optional(),
    /**
     * Null-class autoguidance (`--autoguide-good/-bad/-weight`): dropped labels learnt
     * ε_bad + weight·(ε_good − ε_bad) of these two runs' EMA null classes (sha256 of each EMA).
     */
    autoguide: z.object({
      good: z.object({ run: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
      bad: z.object({ run: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
      weight: z.number().min(0),
    }).optional(),
    /** Learning-rate schedule: warm-up, then constant or decay to `min` at `decaySteps`. */
    lrSchedule: z.object({
      kind: z.enum(["constant", "cosine", "linear"]),
      lr: z.number().positive(),
      warmup: z.number().int().min(0),
      min: z.number().min(0),
      decaySteps: z.number().int().min(0),
    }).optional(),
    /**
     * For a distilled student (trainer/distill.ts; optional, absent = trained directly): the
     * teacher it was distilled from, the rounds and each round's record.
     */
    distillation: DistillationSchema.optional(),
  }),
  createdAt: z.string(),
});
export type ModelCard = z.infer<typeof ModelCardSchema>;
export type Distillation = z.infer<typeof DistillationSchema>;
