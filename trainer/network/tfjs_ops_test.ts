import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { paramSpecs } from "./unet.ts";
import { forward, initParams, tfjsOps } from "./tfjs_ops.ts";
import { timestepFrequencies } from "./unet.ts";
import { tinyUNet } from "../export/test_models.ts";

await tf.setBackend("cpu");

const cfg = tinyUNet({ numClasses: 3 });

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(
      Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])),
      `${what}[${i}]: ${a[i]} vs ${b[i]}`,
    );
  }
}

Deno.test("initParams follows paramSpecs and is deterministic per seed", () => {
  const a = initParams(cfg, 7), b = initParams(cfg, 7), c = initParams(cfg, 8);
  const specs = paramSpecs(cfg);
  assert.deepEqual(Object.keys(a), specs.map((s) => s.name));
  for (const s of specs) {
    assert.deepEqual(a[s.name].shape, s.shape, s.name);
    const va = a[s.name].dataSync(), vb = b[s.name].dataSync();
    assert.deepEqual(va, vb, `${s.name} same seed`);
    if (s.init === "zero") assert.ok(va.every((v) => v === 0), s.name);
    if (s.init === "one") assert.ok(va.every((v) => v === 1), s.name);
  }
  // he init: std ≈ sqrt(2 / fanIn) on the largest conv; a different seed differs.
  const big =
    specs.filter((s) => s.init === "he").sort((p, q) =>
      q.shape.reduce((x, y) => x * y) - p.shape.reduce((x, y) => x * y)
    )[0];
  const v = a[big.name].dataSync() as Float32Array;
  const std = Math.sqrt(v.reduce((s: number, x: number) => s + x * x, 0) / v.length);
  assert.ok(Math.abs(std / Math.sqrt(2 / big.fanIn) - 1) < 0.15, `he std ${std}`);
  assert.notDeepEqual(a[big.name].dataSync(), c[big.name].dataSync());
  for (const p of [a, b, c]) Object.values(p).forEach((t) => t.dispose());
});

Deno.test("timestepEmbedding is [sin(t·f), cos(t·f)] with f_i = 10000^(-i/half)", () => {
  const ops = tfjsOps({});
  const t = [0, 3, 999];
  const e = ops.timestepEmbedding(tf.tensor1d(t), 8).arraySync() as number[][];
  const f = timestepFrequencies(8);
  assert.equal(f[0], 1);
  close([f[1]], [Math.pow(10000, -1 / 4)], 1e-6, "f1");
  t.forEach((ti, n) => {
    close(
      e[n],
      [...f].map((fi) => Math.sin(ti * fi)).concat([...f].map((fi) => Math.cos(ti * fi))),
      1e-4,
      `emb ${ti}`,
    );
  });
});

Deno.test("attention equals softmax(q·kᵀ/√c)·v computed by hand", () => {
  const n = 1, h = 2, w = 2, c = 3;
  const q = tf.randomNormal([n, h, w, c], 0, 1, "float32", 1);
  const k = tf.randomNormal([n, h, w, c], 0, 1, "float32", 2);
  const v = tf.randomNormal([n, h, w, c], 0, 1, "float32", 3);
  const out = tfjsOps({}).attention(q, k, v, c).dataSync();
  const Q = q.dataSync(), K = k.dataSync(), V = v.dataSync();
  const want: number[] = [];
  for (let i = 0; i < h * w; i++) {
    const s = [...Array(h * w).keys()].map((j) => {
      let d = 0;
      for (let x = 0; x < c; x++) d += Q[i * c + x] * K[j * c + x];
      return d / Math.sqrt(c);
    });
    const m = Math.max(...s), e = s.map((x) => Math.exp(x - m)), z = e.reduce((a, b) => a + b);
    for (let x = 0; x < c; x++) {
      want.push(e.reduce((acc, ej, j) => acc + (ej / z) * V[j * c + x], 0));
    }
  }
  close(out, want, 1e-5, "attention");
});

Deno.test("groupNorm normalises each group of each sample, then γ/β and SiLU", () => {
  const x = tf.randomNormal([2, 3, 3, 4], 1, 2, "float32", 4);
  const g = tf.tensor1d([1, 2, 0.5, -1]), b = tf.tensor1d([0, 0.1, -0.2, 0.3]);
  const y = tfjsOps({ "n.g": g, "n.b": b }).groupNorm(x, "n", 4, 2, true).dataSync();
  const X = x.dataSync(), G = g.dataSync(), B = b.dataSync();
  for (let s = 0; s < 2; s++) {
    for (let grp = 0; grp < 2; grp++) {
      const idx: number[] = [];
      for (let p = 0; p < 9; p++) {
        for (let ch = 2 * grp; ch < 2 * grp + 2; ch++) idx.push((s * 9 + p) * 4 + ch);
      }
      const mean = idx.reduce((a, i) => a + X[i], 0) / idx.length;
      const vr = idx.reduce((a, i) => a + (X[i] - mean) ** 2, 0) / idx.length;
      for (const i of idx) {
        const pre = ((X[i] - mean) / Math.sqrt(vr + 1e-5)) * G[i % 4] + B[i % 4];
        close([y[i]], [pre / (1 + Math.exp(-pre))], 1e-4, `gn ${i}`);
      }
    }
  }
});

Deno.test("forward: conditional UNet gives [N,H,W,C]; zero-init output conv gives ε̂ = 0", () => {
  const params = initParams(cfg, 1);
  const x = tf.randomNormal([2, 8, 8, 1], 0, 1, "float32", 5) as tf.Tensor4D;
  const t = tf.tensor1d([10, 500]), y = tf.tensor1d([0, 3]);
  const out = forward(params, cfg, x, t, y);
  assert.deepEqual(out.shape, [2, 8, 8, 1]);
  assert.ok(out.dataSync().every((v) => v === 0));
  // Once the zero-initialised convs are non-zero, the labels change the result.
  for (const [name, p] of Object.entries(params)) {
    if (/(c2|proj|out)\.w$/.test(name)) p.assign(tf.randomNormal(p.shape, 0, 0.1, "float32", 6));
  }
  const a = forward(params, cfg, x, t, y).dataSync();
  const b = forward(params, cfg, x, t, tf.tensor1d([1, 2])).dataSync();
  assert.ok(a.some((v, i) => Math.abs(v - b[i]) > 1e-6));
  assert.throws(() => forward(params, cfg, x, t), /labels/);
  Object.values(params).forEach((p) => p.dispose());
});

Deno.test("spaceToDepth: channel (dy·b + dx)·C + c (ONNX DCR); depthToSpace inverts it", () => {
  const ops = tfjsOps({});
  const [n, h, w, c, b] = [2, 4, 6, 3, 2];
  const data = Float32Array.from({ length: n * h * w * c }, (_, i) => i);
  const x = tf.tensor4d(data, [n, h, w, c]);
  const s = ops.spaceToDepth(x, b, c);
  assert.deepEqual(s.shape, [n, h / b, w / b, b * b * c]);
  const got = s.dataSync();
  const at = (k: number, y: number, xx: number, ch: number) => ((k * h + y) * w + xx) * c + ch;
  for (let k = 0; k < n; k++) {
    for (let Y = 0; Y < h / b; Y++) {
      for (let X = 0; X < w / b; X++) {
        for (let dy = 0; dy < b; dy++) {
          for (let dx = 0; dx < b; dx++) {
            for (let ch = 0; ch < c; ch++) {
              const o = ((k * (h / b) + Y) * (w / b) + X) * b * b * c + (dy * b + dx) * c + ch;
              assert.equal(got[o], data[at(k, Y * b + dy, X * b + dx, ch)]);
            }
          }
        }
      }
    }
  }
  assert.deepEqual(Array.from(ops.depthToSpace(s, b, c).dataSync()), Array.from(data));
  tf.dispose([x, s]);
});
