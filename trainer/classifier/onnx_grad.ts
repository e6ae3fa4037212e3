/**
 * The classifier's gradient graph: one ONNX model that returns both the logits f(x, t) and
 * ∇ₓ log softmax(f(x, t))[y], built from forward ONNX ops only (onnxruntime-web has no autograd
 * and its inference builds no `Gradient` op).
 *
 * CONTRACT with the edge (`classifier.onnx` beside `model.json`):
 *   inputs   x       float32 [N, C, H, W]  NCHW, scaled to [−1, 1] like the UNet's x
 *            t       int64   [N]           original timestep index 0…T−1
 *            y       int64   [N]           class index 0…K−1
 *   outputs  grad    float32 [N, C, H, W]  ∇ₓ log softmax(f(x, t))[y], row by row
 *            logits  float32 [N, K]
 *   opset 17, N symbolic. The card's optional `classifier` field names the file (see
 *   `card.ts` in this wing).
 *
 * How: the forward pass is emitted through the exporter's `onnxOps` (trainer/onnx_ops.ts:
 * convs, dense layers, the time embedding; weights stored fp32/fp16/int8 by quantize.ts) with
 * every op that depends on x recorded on a tape. Walking the tape backwards from
 * ∂/∂z log softmax(z)[y] = onehot(y) − softmax(z) emits each op's derivative:
 *   - Conv(x, W) stride s, "same" pads → ConvTranspose(g, W) with the same pads/strides and the
 *     output padding that restores x's size (the same W tensor, so an int8 model's gradient is
 *     the exact gradient of its own dequantized forward);
 *   - Gemm(x, W, transB) → MatMul(g, W);
 *   - GroupNorm, written out (ReduceMean/Sub/Mul/Sqrt) so x̂ and 1/σ are graph values:
 *     ∂x = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) per group with ĝ = γ·g;
 *   - SiLU: g·s·(1 + x·(1 − s)) with s = σ(x);
 *   - mean pool: g / (H·W) broadcast; Add and the per-channel time-embedding add: g itself.
 * The time embedding does not depend on x, so no gradient flows through it. Attention,
 * resizing and concatenation have no derivative here (the classifier uses none; they throw).
 */
import { DataType, GraphBuilder } from "../export/onnx_graph.ts";
import { onnxOps, type OnnxValue, samePads } from "../export/onnx_ops.ts";
import type { Quantization } from "../export/quantize.ts";
import { GROUP_NORM_EPS } from "../network/unet.ts";
import {
  type ClassifierConfig,
  classifierForward,
  type ClassifierOps,
  classifierParamSpecs,
} from "./net.ts";

/** The opset of the gradient graph (ReduceMean takes its axes as an attribute up to 17). */
export const CLASSIFIER_OPSET = 17;

/** Check that `weights` holds exactly the classifier's parameters with the right sizes. */
export function checkClassifierWeights(
  cfg: ClassifierConfig,
  weights: Map<string, Float32Array>,
): void {
  const specs = classifierParamSpecs(cfg);
  for (const s of specs) {
    const v = weights.get(s.name), size = s.shape.reduce((a, b) => a * b, 1);
    if (v === undefined) throw new Error(`missing classifier parameter ${s.name}`);
    if (v.length !== size) throw new Error(`parameter ${s.name}: ${v.length} values, want ${size}`);
  }
  if (weights.size !== specs.length) {
    const known = new Set(specs.map((s) => s.name));
    throw new Error(`unexpected parameters: ${[...weights.keys()].filter((k) => !known.has(k))}`);
  }
}

/** Classifier ops that emit the forward graph and record each x-dependent op's backward. */
class GradTape {
  /** Values that depend on x. */
  readonly dep = new Set<string>();
  private steps: { out: string; back: (g: string) => void }[] = [];
  private grads = new Map<string, string>();

  constructor(readonly g: GraphBuilder) {}

  /** Record `back` (the gradient of `out` → contributions to its inputs) if any input is x-dependent. */
  record(out: OnnxValue, inputs: OnnxValue[], back: (g: string) => void): OnnxValue {
    if (inputs.some((i) => this.dep.has(i.name))) {
      this.dep.add(out.name);
      this.steps.push({ out: out.name, back });
    }
    return out;
  }

  /** Add `grad` into the gradient of `v` (only x-dependent values collect gradient). */
  accumulate(v: OnnxValue, grad: string): void {
    if (!this.dep.has(v.name)) return;
    const prev = this.grads.get(v.name);
    this.grads.set(v.name, prev === undefined ? grad : this.g.node("Add", [prev, grad]));
  }

  /** Seed ∂L/∂out = `grad`, run the tape backwards, return ∂L/∂x. */
  backward(out: OnnxValue, grad: string, x: OnnxValue): string {
    this.grads.set(out.name, grad);
    for (let i = this.steps.length - 1; i >= 0; i--) {
      const gOut = this.grads.get(this.steps[i].out);
      if (gOut !== undefined) this.steps[i].back(gOut);
    }
    const gx = this.grads.get(x.name);
    if (gx === undefined) throw new Error("no gradient reaches x");
    return gx;
  }
}

function gradOps(
  g: GraphBuilder,
  weights: Map<string, Float32Array>,
  quant: Quantization,
  tape: GradTape,
): ClassifierOps<OnnxValue> {
  const base = onnxOps(g, weights, quant);
  const vec = (name: string, c: number) => {
    const v = weights.get(name);
    if (v === undefined || v.length !== c) throw new Error(`parameter ${name}: want ${c} values`);
    return g.float32(name, [c, 1, 1], v);
  };
  const one = () => g.floatConst([1], []);
  const reduceMean = (x: string, axes: number[], keepdims = 1) =>
    g.node("ReduceMean", [x], { axes, keepdims });
  /** SiLU forward; returns y and its backward g ↦ g·s·(1 + x·(1 − s)). */
  const silu = (x: string) => {
    const s = g.node("Sigmoid", [x]);
    const y = g.node("Mul", [x, s]);
    const back = (gy: string) =>
      g.node("Mul", [
        gy,
        g.node("Mul", [s, g.node("Add", [one(), g.node("Mul", [x, g.node("Sub", [one(), s])])])]),
      ]);
    return { y, back };
  };
  const none = (op: string) => () => {
    throw new Error(`${op} has no derivative in the classifier's gradient graph`);
  };
  return {
    ...base,
    conv: (x, name, cin, cout, k, stride) => {
      const out = base.conv(x, name, cin, cout, k, stride);
      return tape.record(out, [x], (gy) => {
        const [, h, wd] = x.shape, [, oh, ow] = out.shape;
        const [pt, pb] = samePads(h, k, stride), [pl, pr] = samePads(wd, k, stride);
        const gx = g.node("ConvTranspose", [gy, `${name}.w`], {
          kernel_shape: [k, k],
          strides: [stride, stride],
          pads: [pt, pl, pb, pr],
          output_padding: [
            h - ((oh - 1) * stride + k - pt - pb),
            wd - ((ow - 1) * stride + k - pl - pr),
          ],
        });
        tape.accumulate(x, gx);
      });
    },
    dense: (x, name, nin, nout) => {
      const out = base.dense(x, name, nin, nout);
      // Gemm(x, W [nout, nin], transB = 1): ∂x = g · W.
      return tape.record(out, [x], (gy) => tape.accumulate(x, g.node("MatMul", [gy, `${name}.w`])));
    },
    groupNorm: (x, name, c, groups, withSilu) => {
      const [ch, h, wd] = x.shape;
      if (ch !== c || c % groups !== 0) {
        throw new Error(`groupNorm ${name}: ${ch} ch, ${groups} groups`);
      }
      const grouped = g.node("Reshape", [x.name, g.int64([0, groups, -1])]);
      const d = g.node("Sub", [grouped, reduceMean(grouped, [2])]);
      const variance = reduceMean(g.node("Mul", [d, d]), [2]);
      const rstd = g.node("Reciprocal", [
        g.node("Sqrt", [g.node("Add", [variance, g.floatConst([GROUP_NORM_EPS], [])])]),
      ]);
      const xhat = g.node("Mul", [d, rstd]);
      const gamma = vec(`${name}.g`, c);
      const affine = g.node("Add", [
        g.node("Mul", [g.node("Reshape", [xhat, g.int64([0, c, h, wd])]), gamma]),
        vec(`${name}.b`, c),
      ]);
      const act = withSilu ? silu(affine) : undefined;
      const out = { name: act?.y ?? affine, shape: x.shape };
      return tape.record(out, [x], (gy) => {
        const gAffine = act ? act.back(gy) : gy;
        const gh = g.node("Reshape", [g.node("Mul", [gAffine, gamma]), g.int64([0, groups, -1])]);
        const centred = g.node("Sub", [
          g.node("Sub", [gh, reduceMean(gh, [2])]),
          g.node("Mul", [xhat, reduceMean(g.node("Mul", [gh, xhat]), [2])]),
        ]);
        const gx = g.node("Reshape", [g.node("Mul", [centred, rstd]), g.int64([0, c, h, wd])]);
        tape.accumulate(x, gx);
      });
    },
    silu: (x) => {
      const s = silu(x.name);
      return tape.record(
        { name: s.y, shape: x.shape },
        [x],
        (gy) => tape.accumulate(x, s.back(gy)),
      );
    },
    add: (a, b) => {
      const out = base.add(a, b);
      return tape.record(out, [a, b], (gy) => {
        tape.accumulate(a, gy);
        tape.accumulate(b, gy);
      });
    },
    addPerChannel: (x, v) => {
      if (tape.dep.has(v.name)) throw new Error("addPerChannel: the vector must not depend on x");
      const out = base.addPerChannel(x, v);
      return tape.record(out, [x], (gy) => tape.accumulate(x, gy));
    },
    meanPool: (x, c) => {
      const [ch, h, wd] = x.shape;
      if (ch !== c) throw new Error(`meanPool: ${ch} channels, want ${c}`);
      const out = { name: reduceMean(x.name, [2, 3], 0), shape: [c] };
      return tape.record(out, [x], (gy) => {
        const spread = g.floatConst(new Array(h * wd).fill(1 / (h * wd)), [1, 1, h, wd]);
        tape.accumulate(x, g.node("Mul", [g.node("Reshape", [gy, g.int64([0, c, 1, 1])]), spread]));
      });
    },
    concatChannels: none("concatChannels"),
    upsample2x: none("upsample2x"),
    spaceToDepth: none("spaceToDepth"),
    depthToSpace: none("depthToSpace"),
    attention: none("attention"),
    splitChannels: none("splitChannels"),
    embedding: none("embedding"),
  };
}

export interface ClassifierOnnxOptions {
  quant: Quantization;
  /** Graph name. */
  name?: string;
  doc?: string;
}

/** The serialised gradient graph (see the module comment for its inputs and outputs). */
export function buildClassifierGradOnnx(
  cfg: ClassifierConfig,
  weights: Map<string, Float32Array>,
  opts: ClassifierOnnxOptions,
): Uint8Array {
  checkClassifierWeights(cfg, weights);
  const g = new GraphBuilder();
  const { imageSize: s, inChannels: c, numClasses: k } = cfg;
  const x = { name: g.input("x", DataType.FLOAT, ["N", c, s, s]), shape: [c, s, s] };
  const t = g.input("t", DataType.INT64, ["N"]);
  const y = g.input("y", DataType.INT64, ["N"]);
  const tape = new GradTape(g);
  tape.dep.add(x.name);
  const tFloat = { name: g.node("Cast", [t], { to: DataType.FLOAT }), shape: [] };
  const logits = classifierForward(gradOps(g, weights, opts.quant, tape), cfg, x, tFloat);
  // ∂/∂z log softmax(z)[y] = onehot(y) − softmax(z).
  const classes = g.int64(Array.from({ length: k }, (_, i) => i), [1, k]);
  const onehot = g.node("Cast", [
    g.node("Equal", [g.node("Unsqueeze", [y, g.int64([1])]), classes]),
  ], {
    to: DataType.FLOAT,
  });
  const gLogits = g.node("Sub", [onehot, g.node("Softmax", [logits.name], { axis: 1 })]);
  const gx = tape.backward(logits, gLogits, x);
  g.node("Identity", [gx], {}, "grad");
  g.node("Identity", [logits.name], {}, "logits");
  g.output("grad", DataType.FLOAT, ["N", c, s, s]);
  g.output("logits", DataType.FLOAT, ["N", k]);
  return g.toBytes({
    name: opts.name ?? "ddpm-edge-classifier-grad",
    opset: CLASSIFIER_OPSET,
    doc: opts.doc ??
      `noise-aware classifier (${opts.quant}): inputs x [N,${c},${s},${s}] float32, t [N] int64, ` +
        `y [N] int64; outputs grad = ∇x log softmax(f(x,t))[y] [N,${c},${s},${s}], logits [N,${k}]`,
  });
}
