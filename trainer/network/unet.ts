/**
 * The UNet ε-model's structure, written once against an abstract set of operations. The trainer
 * runs it with tfjs tensors (`tfjs_ops.ts`), the exporter with ONNX graph values (`onnx_ops.ts`)
 * and `paramSpecs` with a recorder that lists every parameter — one source of truth.
 *
 * Layout: values are images [N, H, W, C] (NHWC, as tfjs) or vectors [N, D]. Parameter names are
 * dotted paths; shapes: conv "<name>.w" [k, k, cin, cout] (HWIO) + "<name>.b" [cout];
 * dense "<name>.w" [nin, nout] + "<name>.b" [nout]; group norm "<name>.g", "<name>.b" [C];
 * embedding "<name>.w" [rows, dim].
 */
import type { UNetConfig } from "../../shared/model_card.ts";

export type { UNetConfig };

/** GroupNorm epsilon, used by every backend (tfjs and the ONNX graph). */
export const GROUP_NORM_EPS = 1e-5;

/** Frequencies exp(−ln(10000)·i/half), i = 0…half−1, of the sinusoidal timestep embedding. */
export function timestepFrequencies(dim: number): Float32Array {
  if (dim % 2 !== 0) throw new Error(`timestep embedding dim must be even, got ${dim}`);
  const half = dim / 2;
  const f = new Float32Array(half);
  for (let i = 0; i < half; i++) f[i] = Math.exp((-Math.log(10000) * i) / half);
  return f;
}

/** Operations the UNet needs. Channel counts are passed explicitly so no backend infers shapes. */
export interface UNetOps<V> {
  conv(x: V, name: string, cin: number, cout: number, k: 1 | 3, stride: 1 | 2): V;
  dense(x: V, name: string, nin: number, nout: number): V;
  /** GroupNorm (eps 1e-5) with affine scale/shift, optionally followed by SiLU. */
  groupNorm(x: V, name: string, c: number, groups: number, silu: boolean): V;
  silu(x: V): V;
  add(a: V, b: V): V;
  /** Image [N,H,W,C] plus a per-sample vector [N,C] broadcast over H and W. */
  addPerChannel(x: V, v: V): V;
  concatChannels(a: V, b: V): V;
  /** Nearest-neighbour ×2 upsampling. */
  upsample2x(x: V): V;
  /**
   * Fold b×b pixel blocks into channels: [N,H,W,C] → [N,H/b,W/b,b²·C], channel (dy·b + dx)·C + c
   * (ONNX SpaceToDepth's DCR order). `c` is the input's channel count.
   */
  spaceToDepth(x: V, b: number, c: number): V;
  /** The inverse of spaceToDepth: [N,H,W,b²·C] → [N,b·H,b·W,C]. `c` is the output's count. */
  depthToSpace(x: V, b: number, c: number): V;
  /** Single-head dot-product attention over H·W positions; q, k, v are [N,H,W,c]. */
  attention(q: V, k: V, v: V, c: number): V;
  /** Split channels into equal parts. */
  splitChannels(x: V, parts: number): V[];
  /** Sinusoidal embedding [N, dim] of the timestep t [N] (float). */
  timestepEmbedding(t: V, dim: number): V;
  /** Row lookup "<name>.w"[y] for integer labels y [N]. */
  embedding(y: V, name: string, rows: number, dim: number): V;
}

export function timeEmbedDim(cfg: UNetConfig): number {
  return 4 * cfg.channels;
}

/** Res blocks at level l (levelBlocks overrides numResBlocks). */
export function blocksAt(cfg: UNetConfig, l: number): number {
  return cfg.levelBlocks?.[l] ?? cfg.numResBlocks;
}

/** The space-to-depth block size b (1 = none). */
export const stemBlock = (cfg: UNetConfig): number => cfg.spaceToDepth ?? 1;

/** A residual block with the time embedding added after its first conv (also the classifier's). */
export function resBlock<V>(
  o: UNetOps<V>,
  cfg: UNetConfig,
  x: V,
  emb: V,
  name: string,
  cin: number,
  cout: number,
): V {
  let h = o.conv(
    o.groupNorm(x, `${name}.gn1`, cin, cfg.groups, true),
    `${name}.c1`,
    cin,
    cout,
    3,
    1,
  );
  h = o.addPerChannel(h, o.dense(o.silu(emb), `${name}.emb`, timeEmbedDim(cfg), cout));
  h = o.conv(o.groupNorm(h, `${name}.gn2`, cout, cfg.groups, true), `${name}.c2`, cout, cout, 3, 1);
  const skip = cin === cout ? x : o.conv(x, `${name}.skip`, cin, cout, 1, 1);
  return o.add(skip, h);
}

function attnBlock<V>(o: UNetOps<V>, cfg: UNetConfig, x: V, name: string, c: number): V {
  const h = o.groupNorm(x, `${name}.gn`, c, cfg.groups, false);
  const [q, k, v] = o.splitChannels(o.conv(h, `${name}.qkv`, c, 3 * c, 1, 1), 3);
  return o.add(x, o.conv(o.attention(q, k, v, c), `${name}.proj`, c, c, 1, 1));
}

/**
 * ε̂(x, t, y). `t` holds the (original, un-respaced) timesteps as floats; `y` the class labels
 * (the null class = numClasses for unconditional), required iff cfg.numClasses > 0.
 */
export function unetForward<V>(o: UNetOps<V>, cfg: UNetConfig, x: V, t: V, y?: V): V {
  const c = cfg.channels, d = timeEmbedDim(cfg);
  let emb = o.dense(o.silu(o.dense(o.timestepEmbedding(t, c), "temb.1", c, d)), "temb.2", d, d);
  if (cfg.numClasses > 0) {
    if (y === undefined) throw new Error("a conditional UNet needs labels y");
    emb = o.add(emb, o.embedding(y, "label", cfg.numClasses + 1, d));
  }
  const widths = cfg.channelMult.map((m) => m * c);
  const b = stemBlock(cfg), cin0 = cfg.inChannels * b * b;
  if (cfg.levelBlocks && cfg.levelBlocks.length !== widths.length) {
    throw new Error(
      `levelBlocks has ${cfg.levelBlocks.length} entries for ${widths.length} levels`,
    );
  }
  let h = o.conv(b > 1 ? o.spaceToDepth(x, b, cfg.inChannels) : x, "in", cin0, c, 3, 1);
  let ch = c;
  const skips: { v: V; ch: number }[] = [];
  widths.forEach((w, l) => {
    for (let i = 0; i < blocksAt(cfg, l); i++) {
      h = resBlock(o, cfg, h, emb, `down${l}.res${i}`, ch, w);
      ch = w;
    }
    skips.push({ v: h, ch });
    if (l < widths.length - 1) h = o.conv(h, `down${l}.down`, ch, ch, 3, 2);
  });
  h = resBlock(o, cfg, h, emb, "mid.res0", ch, ch);
  if (cfg.attention) h = attnBlock(o, cfg, h, "mid.attn", ch);
  h = resBlock(o, cfg, h, emb, "mid.res1", ch, ch);
  for (let l = widths.length - 1; l >= 0; l--) {
    const skip = skips.pop()!;
    h = o.concatChannels(h, skip.v);
    let cin = ch + skip.ch;
    for (let i = 0; i < blocksAt(cfg, l); i++) {
      h = resBlock(o, cfg, h, emb, `up${l}.res${i}`, cin, widths[l]);
      cin = ch = widths[l];
    }
    if (l > 0) {
      if (cfg.upsample === "conv-resize") {
        h = o.upsample2x(o.conv(h, `up${l}.up`, ch, widths[l - 1], 3, 1));
        ch = widths[l - 1];
      } else {
        h = o.conv(o.upsample2x(h), `up${l}.up`, ch, ch, 3, 1);
      }
    }
  }
  h = o.groupNorm(h, "out.gn", ch, cfg.groups, true);
  const out = o.conv(h, "out", ch, cin0, 3, 1);
  return b > 1 ? o.depthToSpace(out, b, cfg.inChannels) : out;
}

export type ParamInit = "he" | "zero" | "one" | "normal";

export interface ParamSpec {
  name: string;
  shape: number[];
  init: ParamInit;
  /** Fan-in for "he" initialisation. */
  fanIn: number;
}

/** Every parameter of the UNet, in a fixed order, with its shape and initialisation. */
export function paramSpecs(cfg: UNetConfig): ParamSpec[] {
  const specs: ParamSpec[] = [];
  // The second conv of a residual branch and the output conv start at zero (improved DDPM),
  // so every block starts as the identity.
  const rec: UNetOps<null> = {
    ...recordParams(specs, (name) => /\.(c2|proj)$/.test(name) || name === "out"),
    silu: () => null,
    add: () => null,
    addPerChannel: () => null,
    concatChannels: () => null,
    upsample2x: () => null,
    spaceToDepth: () => null,
    depthToSpace: () => null,
    attention: () => null,
    splitChannels: (_x, parts) => new Array(parts).fill(null),
    timestepEmbedding: () => null,
  };
  unetForward(rec, cfg, null, null, cfg.numClasses > 0 ? null : undefined);
  return specs;
}

/**
 * The ops that record a network's parameters into `specs` as its forward pass names them (also
 * the classifier's): conv weights HWIO and dense weights [nin, nout], "he" with their fan-in or
 * "zero" where `zeroWeight(layer name)`, their biases zero; GroupNorm scales one and shifts zero;
 * embedding tables "normal".
 */
export function recordParams(
  specs: ParamSpec[],
  zeroWeight: (name: string) => boolean,
): Pick<UNetOps<null>, "conv" | "dense" | "groupNorm" | "embedding"> {
  const add = (name: string, shape: number[], init: ParamInit, fanIn = 1) =>
    specs.push({ name, shape, init, fanIn });
  return {
    conv: (_x, name, cin, cout, k) => {
      add(`${name}.w`, [k, k, cin, cout], zeroWeight(name) ? "zero" : "he", k * k * cin);
      add(`${name}.b`, [cout], "zero");
      return null;
    },
    dense: (_x, name, nin, nout) => {
      add(`${name}.w`, [nin, nout], zeroWeight(name) ? "zero" : "he", nin);
      add(`${name}.b`, [nout], "zero");
      return null;
    },
    groupNorm: (_x, name, c) => {
      add(`${name}.g`, [c], "one");
      add(`${name}.b`, [c], "zero");
      return null;
    },
    embedding: (_y, name, rows, dim) => {
      add(`${name}.w`, [rows, dim], "normal");
      return null;
    },
  };
}

/** How many values `specs` hold (a network's parameter count). */
export function specsSize(specs: readonly ParamSpec[]): number {
  return specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Forward FLOPs (multiply-adds ×2) per image of one UNet call — convs, dense layers and the
 * attention matmuls; norms, activations and adds are left out — by the side of the feature map
 * they run at (the timestep/label MLP counts under side 0). Sums to `forwardFlops`.
 */
export function flopsBySide(cfg: UNetConfig): Map<number, number> {
  const by = new Map<number, number>();
  const count = (side: number, f: number) => by.set(side, (by.get(side) ?? 0) + f);
  type S = { side: number };
  const v = (side: number): S => ({ side });
  const ops: UNetOps<S> = {
    conv: (x, _n, cin, cout, k, stride) => {
      const side = stride === 2 ? Math.ceil(x.side / 2) : x.side;
      count(side, 2 * side * side * k * k * cin * cout);
      return v(side);
    },
    dense: (x, _n, nin, nout) => {
      count(0, 2 * nin * nout);
      return x;
    },
    groupNorm: (x) => x,
    silu: (x) => x,
    add: (a) => a,
    addPerChannel: (x) => x,
    concatChannels: (a) => a,
    upsample2x: (x) => v(x.side * 2),
    spaceToDepth: (x, b) => v(x.side / b),
    depthToSpace: (x, b) => v(x.side * b),
    attention: (q, _k, _v, c) => {
      count(q.side, 4 * q.side ** 4 * c);
      return q;
    },
    splitChannels: (x, parts) => new Array(parts).fill(x),
    timestepEmbedding: () => v(0),
    embedding: () => v(0),
  };
  unetForward(ops, cfg, v(cfg.imageSize), v(0), cfg.numClasses > 0 ? v(0) : undefined);
  return by;
}

/** Forward multiply-adds ×2 per image (convs, dense layers, attention matmuls). */
export function forwardFlops(cfg: UNetConfig): number {
  let sum = 0;
  for (const f of flopsBySide(cfg).values()) sum += f;
  return sum;
}
