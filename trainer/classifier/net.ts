/**
 * The classifier wing (issue 28, classifier guidance): a noise-aware classifier p(y | x_t, t),
 * its training (`trainer/train_classifier.ts`), its checkpoints, its held-out accuracy by t and
 * its ONNX export as a gradient graph ∇ₓ log p(y | x_t, t) for the edge.
 *
 * This module is the network: the UNet's downsampling half (the same residual blocks and
 * time embedding as `trainer/unet.ts`, no attention), then GroupNorm + SiLU, a global average
 * pool and a linear head to K logits. Written once against `ClassifierOps`, the UNet's ops plus
 * a mean pool, so tfjs (training, `tf.grad`), the ONNX exporter and the parameter list share
 * one structure. Layouts and parameter naming follow `unet.ts`.
 */
import { z } from "zod";
import {
  type ParamSpec,
  recordParams,
  resBlock,
  specsSize,
  type UNetConfig,
  type UNetOps,
} from "../network/unet.ts";

export const ClassifierConfigSchema = z.object({
  imageSize: z.number().int().min(4).max(512),
  inChannels: z.number().int().min(1).max(4),
  /** Base width c; level l has c · channelMult[l] channels. */
  channels: z.number().int().min(2).max(512),
  channelMult: z.array(z.number().int().min(1)).min(1).max(6),
  numResBlocks: z.number().int().min(1).max(4),
  groups: z.number().int().min(1),
  /** Classes K (the logits). */
  numClasses: z.number().int().min(2),
});
export type ClassifierConfig = z.infer<typeof ClassifierConfigSchema>;

/** The UNet's operations plus a global average pool [N,H,W,C] → [N,C]. */
export interface ClassifierOps<V> extends UNetOps<V> {
  meanPool(x: V, c: number): V;
}

/** The time-embedding width 4c, as the UNet's. */
export const classifierEmbedDim = (cfg: ClassifierConfig): number => 4 * cfg.channels;

/**
 * The UNetConfig view `resBlock` reads (channels, groups); the classifier has no attention,
 * labels or up path, so the rest is inert.
 */
function asUNet(cfg: ClassifierConfig): UNetConfig {
  return { ...cfg, attention: false, numClasses: 0 };
}

/** Logits f(x, t) [N, K]. `t` holds the original timesteps as floats. */
export function classifierForward<V>(o: ClassifierOps<V>, cfg: ClassifierConfig, x: V, t: V): V {
  const c = cfg.channels, d = classifierEmbedDim(cfg), u = asUNet(cfg);
  const emb = o.dense(o.silu(o.dense(o.timestepEmbedding(t, c), "temb.1", c, d)), "temb.2", d, d);
  let h = o.conv(x, "in", cfg.inChannels, c, 3, 1);
  let ch = c;
  cfg.channelMult.forEach((m, l) => {
    for (let i = 0; i < cfg.numResBlocks; i++) {
      h = resBlock(o, u, h, emb, `down${l}.res${i}`, ch, m * c);
      ch = m * c;
    }
    if (l < cfg.channelMult.length - 1) h = o.conv(h, `down${l}.down`, ch, ch, 3, 2);
  });
  h = o.groupNorm(h, "out.gn", ch, cfg.groups, true);
  return o.dense(o.meanPool(h, ch), "head", ch, cfg.numClasses);
}

/** Ops that do nothing: for walking the structure (parameter list, FLOPs). */
function inertOps<V>(v: V, over: Partial<ClassifierOps<V>>): ClassifierOps<V> {
  const id = () => v;
  return {
    conv: id,
    dense: id,
    groupNorm: id,
    silu: id,
    add: id,
    addPerChannel: id,
    concatChannels: id,
    upsample2x: id,
    spaceToDepth: id,
    depthToSpace: id,
    attention: id,
    splitChannels: (_x, parts) => new Array(parts).fill(v),
    timestepEmbedding: id,
    embedding: id,
    meanPool: id,
    ...over,
  };
}

/**
 * Every parameter, in a fixed order, with shape and initialisation (conv HWIO, dense [nin, nout],
 * as `unet.ts`). Each block's second conv starts at zero (the block starts as the identity), the
 * head too (all classes equally likely at step 0).
 */
export function classifierParamSpecs(cfg: ClassifierConfig): ParamSpec[] {
  const specs: ParamSpec[] = [];
  const zeroWeight = (name: string) => /\.c2$/.test(name) || name === "head";
  classifierForward(inertOps<null>(null, recordParams(specs, zeroWeight)), cfg, null, null);
  return specs;
}

/** Number of parameters. */
export function classifierParamCount(cfg: ClassifierConfig): number {
  return specsSize(classifierParamSpecs(cfg));
}

/** Forward multiply-adds ×2 per image (convs and dense layers). */
export function classifierFlops(cfg: ClassifierConfig): number {
  let flops = 0;
  type S = { side: number };
  classifierForward<S>(
    inertOps<S>({ side: 0 }, {
      conv: (x, _n, cin, cout, k, stride) => {
        const side = Math.ceil(x.side / stride);
        flops += 2 * side * side * k * k * cin * cout;
        return { side };
      },
      dense: (_x, _n, nin, nout) => {
        flops += 2 * nin * nout;
        return { side: 0 };
      },
      groupNorm: (x) => x,
      silu: (x) => x,
      add: (a) => a,
      addPerChannel: (x) => x,
    }),
    cfg,
    { side: cfg.imageSize },
    { side: 0 },
  );
  return flops;
}

/** Checks a config beyond its schema; returns the problems (empty when fine). */
export function classifierConfigProblems(cfg: ClassifierConfig): string[] {
  const out: string[] = [];
  for (const m of cfg.channelMult) {
    if ((m * cfg.channels) % cfg.groups !== 0) {
      out.push(
        `every level's width (${m * cfg.channels}) must be divisible by groups ${cfg.groups}`,
      );
      break;
    }
  }
  if (cfg.channels % 2 !== 0) {
    out.push(`channels must be even (timestep embedding), got ${cfg.channels}`);
  }
  return out;
}
