/**
 * `UNetOps` that build an ONNX graph instead of computing: running `unetForward` with these ops
 * emits the whole ε-model, so the exported network has exactly the trainer's structure.
 *
 * The graph works in NCHW (ONNX's layout): conv weights are converted HWIO → OIHW, dense
 * weights [nin, nout] → Gemm(transB=1) with B = wᵀ [nout, nin] (so axis 0 is the output channel
 * for per-channel int8), GroupNorm is Reshape → InstanceNormalization → Reshape → Mul → Add,
 * upsampling is Resize(nearest, asymmetric, floor), the optional space-to-depth stem is
 * SpaceToDepth / DepthToSpace (DCR, the same channel order as the tfjs ops), attention is Reshape/Transpose/MatMul/Softmax
 * and the sinusoidal timestep embedding is computed in-graph from t.
 *
 * Graph inputs: x [N,C,H,W] float32, t [N] float32 (original timesteps), y [N] int64 (labels,
 * conditional models only); output eps [N,C,H,W] float32. N is symbolic.
 */
import type { UNetConfig } from "../../shared/model_card.ts";
import { DataType, float, GraphBuilder } from "./onnx_graph.ts";
import { addWeight, type Quantization } from "./quantize.ts";
import {
  GROUP_NORM_EPS,
  paramSpecs,
  timestepFrequencies,
  unetForward,
  type UNetOps,
} from "../network/unet.ts";

/** A graph value: tensor name and its per-sample shape (batch dim excluded). */
export interface OnnxValue {
  name: string;
  /** [C, H, W] for images, [D] for vectors, [] for per-sample scalars (t, y). */
  shape: number[];
}

/** Default opset: per-axis DequantizeLinear, Split/Unsqueeze with tensor inputs (≥ 13). */
export const DEFAULT_OPSET = 17;
export const MIN_OPSET = 13;
export const MAX_OPSET = 21;

/** HWIO [k,k,cin,cout] → OIHW [cout,cin,k,k]. */
export function hwioToOihw(w: Float32Array, k: number, cin: number, cout: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let y = 0; y < k; y++) {
    for (let x = 0; x < k; x++) {
      for (let i = 0; i < cin; i++) {
        for (let o = 0; o < cout; o++) {
          out[((o * cin + i) * k + y) * k + x] = w[((y * k + x) * cin + i) * cout + o];
        }
      }
    }
  }
  return out;
}

/** [rows, cols] → [cols, rows]. */
export function transpose2d(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
  return out;
}

/** TF/tfjs "same" padding along one axis: [before, after] (the extra pixel goes after). */
export function samePads(size: number, k: number, stride: number): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max(0, (out - 1) * stride + k - size);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/**
 * UNetOps that append ONNX nodes to `g`. `weights` maps paramSpecs names to float32 arrays in
 * the trainer's layouts; weight matrices go through `quant` except those of the layers named in
 * `floatLayers` (e.g. `in`, `out`), which stay float32; vectors stay float32.
 */
export function onnxOps(
  g: GraphBuilder,
  weights: Map<string, Float32Array>,
  quant: Quantization,
  floatLayers: ReadonlySet<string> = new Set(),
): UNetOps<OnnxValue> {
  const storage = (layer: string): Quantization => floatLayers.has(layer) ? "fp32" : quant;
  const w = (name: string, size: number): Float32Array => {
    const v = weights.get(name);
    if (v === undefined) throw new Error(`missing UNet parameter "${name}"`);
    if (v.length !== size) throw new Error(`parameter ${name}: ${v.length} values, want ${size}`);
    return v;
  };
  const vec = (name: string, c: number, dims: number[] = [c]) => g.float32(name, dims, w(name, c));
  const img = (v: OnnxValue) => {
    if (v.shape.length !== 3) throw new Error(`expected an image, got shape [${v.shape}]`);
    return v.shape as [number, number, number];
  };
  const silu = (x: string) => g.node("Mul", [x, g.node("Sigmoid", [x])]);

  return {
    conv: (x, name, cin, cout, k, stride) => {
      const [c, h, wd] = img(x);
      if (c !== cin) throw new Error(`conv ${name}: input has ${c} channels, want ${cin}`);
      const wt = addWeight(
        g,
        `${name}.w`,
        [cout, cin, k, k],
        hwioToOihw(w(`${name}.w`, k * k * cin * cout), k, cin, cout),
        storage(name),
      );
      const [pt, pb] = samePads(h, k, stride), [pl, pr] = samePads(wd, k, stride);
      const out = g.node("Conv", [x.name, wt, vec(`${name}.b`, cout)], {
        kernel_shape: [k, k],
        strides: [stride, stride],
        pads: [pt, pl, pb, pr],
      });
      return { name: out, shape: [cout, Math.ceil(h / stride), Math.ceil(wd / stride)] };
    },
    dense: (x, name, nin, nout) => {
      if (x.shape.length !== 1 || x.shape[0] !== nin) {
        throw new Error(`dense ${name}: input shape [${x.shape}], want [${nin}]`);
      }
      const wt = addWeight(
        g,
        `${name}.w`,
        [nout, nin],
        transpose2d(w(`${name}.w`, nin * nout), nin, nout),
        storage(name),
      );
      const out = g.node("Gemm", [x.name, wt, vec(`${name}.b`, nout)], { transB: 1 });
      return { name: out, shape: [nout] };
    },
    groupNorm: (x, name, c, groups, withSilu) => {
      const [ch, h, wd] = img(x);
      if (ch !== c || c % groups !== 0) {
        throw new Error(`groupNorm ${name}: ${ch} ch, ${groups} groups`);
      }
      const grouped = g.node("Reshape", [x.name, g.int64([0, groups, -1])]);
      const normed = g.node("InstanceNormalization", [
        grouped,
        g.floatConst(new Array(groups).fill(1)),
        g.floatConst(new Array(groups).fill(0)),
      ], { epsilon: float(GROUP_NORM_EPS) });
      const back = g.node("Reshape", [normed, g.int64([0, c, h, wd])]);
      const scaled = g.node("Mul", [back, vec(`${name}.g`, c, [c, 1, 1])]);
      const out = g.node("Add", [scaled, vec(`${name}.b`, c, [c, 1, 1])]);
      return { name: withSilu ? silu(out) : out, shape: x.shape };
    },
    silu: (x) => ({ name: silu(x.name), shape: x.shape }),
    add: (a, b) => ({ name: g.node("Add", [a.name, b.name]), shape: a.shape }),
    addPerChannel: (x, v) => {
      const bias = g.node("Unsqueeze", [v.name, g.int64([2, 3])]);
      return { name: g.node("Add", [x.name, bias]), shape: x.shape };
    },
    concatChannels: (a, b) => {
      const [ca, h, wd] = img(a), [cb] = img(b);
      return { name: g.node("Concat", [a.name, b.name], { axis: 1 }), shape: [ca + cb, h, wd] };
    },
    upsample2x: (x) => {
      const [c, h, wd] = img(x);
      const out = g.node("Resize", [x.name, "", g.floatConst([1, 1, 2, 2])], {
        mode: "nearest",
        coordinate_transformation_mode: "asymmetric",
        nearest_mode: "floor",
      });
      return { name: out, shape: [c, 2 * h, 2 * wd] };
    },
    spaceToDepth: (x, b, c) => {
      const [ch, h, wd] = img(x);
      if (ch !== c || h % b !== 0 || wd % b !== 0) {
        throw new Error(`spaceToDepth: [${x.shape}] by ${b}`);
      }
      const out = g.node("SpaceToDepth", [x.name], { blocksize: b });
      return { name: out, shape: [b * b * c, h / b, wd / b] };
    },
    depthToSpace: (x, b, c) => {
      const [ch, h, wd] = img(x);
      if (ch !== b * b * c) throw new Error(`depthToSpace: ${ch} channels, want ${b * b * c}`);
      const out = g.node("DepthToSpace", [x.name], { blocksize: b, mode: "DCR" });
      return { name: out, shape: [c, h * b, wd * b] };
    },
    attention: (q, k, v, c) => {
      const [, h, wd] = img(q);
      const flat = (t: OnnxValue) => g.node("Reshape", [t.name, g.int64([0, c, -1])]); // [N,c,P]
      const qt = g.node("Transpose", [flat(q)], { perm: [0, 2, 1] }); // [N,P,c]
      const scores = g.node("Mul", [
        g.node("MatMul", [qt, flat(k)]), // [N,Pq,Pk]
        g.floatConst([1 / Math.sqrt(c)], []),
      ]);
      const attn = g.node("Softmax", [scores], { axis: -1 });
      const at = g.node("Transpose", [attn], { perm: [0, 2, 1] }); // [N,Pk,Pq]
      const out = g.node("MatMul", [flat(v), at]); // [N,c,Pq]
      return { name: g.node("Reshape", [out, g.int64([0, c, h, wd])]), shape: [c, h, wd] };
    },
    splitChannels: (x, parts) => {
      const [c, h, wd] = img(x);
      if (c % parts !== 0) throw new Error(`cannot split ${c} channels into ${parts}`);
      const outs = g.nodeN("Split", [x.name, g.int64(new Array(parts).fill(c / parts))], parts, {
        axis: 1,
      });
      return outs.map((name) => ({ name, shape: [c / parts, h, wd] }));
    },
    timestepEmbedding: (t, dim) => {
      const freqs = timestepFrequencies(dim);
      const col = g.node("Unsqueeze", [t.name, g.int64([1])]); // [N,1]
      const args = g.node("Mul", [col, g.float32(g.freshName("tfreq"), [1, freqs.length], freqs)]);
      const out = g.node("Concat", [g.node("Sin", [args]), g.node("Cos", [args])], { axis: 1 });
      return { name: out, shape: [dim] };
    },
    embedding: (y, name, rows, dim) => {
      const table = g.float32(`${name}.w`, [rows, dim], w(`${name}.w`, rows * dim));
      return { name: g.node("Gather", [table, y.name], { axis: 0 }), shape: [dim] };
    },
  };
}

export interface BuildOptions {
  quant: Quantization;
  /**
   * Layers (conv or dense names: `in`, `out`, `temb.1`, …) whose weights stay float32 whatever
   * `quant` says. The image-side convs carry every pixel's value in and ε̂ out, where per-channel
   * int8 error shows as a colour cast (QUALITY.md, "Emoji").
   */
  floatLayers?: readonly string[];
  opset?: number;
  /** Graph name (the model name). */
  name?: string;
  doc?: string;
}

/** Check that `weights` holds exactly the parameters of `cfg` with the right sizes. */
export function checkWeights(cfg: UNetConfig, weights: Map<string, Float32Array>): void {
  const specs = paramSpecs(cfg);
  for (const s of specs) {
    const v = weights.get(s.name);
    const size = s.shape.reduce((a, b) => a * b, 1);
    if (v === undefined) throw new Error(`missing parameter ${s.name}`);
    if (v.length !== size) throw new Error(`parameter ${s.name}: ${v.length} values, want ${size}`);
  }
  if (weights.size !== specs.length) {
    const known = new Set(specs.map((s) => s.name));
    const extra = [...weights.keys()].filter((k) => !known.has(k));
    throw new Error(`unexpected parameters: ${extra.join(", ")}`);
  }
}

/** Build the serialised ONNX ε-model for `cfg` with `weights` (paramSpecs names and layouts). */
export function buildOnnxModel(
  cfg: UNetConfig,
  weights: Map<string, Float32Array>,
  opts: BuildOptions,
): Uint8Array {
  const opset = opts.opset ?? DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) {
    throw new RangeError(`opset must be an integer in ${MIN_OPSET}…${MAX_OPSET}, got ${opset}`);
  }
  checkWeights(cfg, weights);
  const floatLayers = new Set(opts.floatLayers ?? []);
  for (const layer of floatLayers) {
    // conv and dense layers are the ones with both a weight and a bias (recordParams)
    if (!weights.has(`${layer}.w`) || !weights.has(`${layer}.b`)) {
      throw new Error(`no conv or dense layer "${layer}" in this network`);
    }
  }
  const g = new GraphBuilder();
  const { imageSize: s, inChannels: c } = cfg;
  const x = g.input("x", DataType.FLOAT, ["N", c, s, s]);
  const t = g.input("t", DataType.FLOAT, ["N"]);
  const y = cfg.numClasses > 0 ? g.input("y", DataType.INT64, ["N"]) : undefined;
  const out = unetForward(
    onnxOps(g, weights, opts.quant, floatLayers),
    cfg,
    { name: x, shape: [c, s, s] },
    { name: t, shape: [] },
    y === undefined ? undefined : { name: y, shape: [] },
  );
  g.node("Identity", [out.name], {}, "eps");
  g.output("eps", DataType.FLOAT, ["N", c, s, s]);
  return g.toBytes({ name: opts.name ?? "ddpm-edge-unet", opset, doc: opts.doc });
}
