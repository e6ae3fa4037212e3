/**
 * The fused GroupNorm(+SiLU) forward and backward kernels for the tfjs wasm backend. With
 * C % 4 == 0 (every UNet layer) they run on the SIMD kernels of `simd.ts` (one pass for the
 * statistics, one for normalise + SiLU, two for the backward; group sums combined in float64 in
 * JS; sigmoid by a degree-6 exp polynomial). Otherwise: JS loops over the wasm heap with float64
 * sums and wasm's own Sigmoid kernel (3× faster than ~12 separate ops, slower than SIMD).
 *
 * Forward: inputs x [N, …, C], gamma, beta [C]; outputs y, mean [N, G], rstd [N, G] and
 * sig = sigmoid(pre-activation) (x's shape; [1] placeholder without SiLU), saved for backward.
 * Backward: inputs dy and the saved tensors; outputs dx, dgamma, dbeta.
 */
import {
  GROUP_NORM_SILU,
  GROUP_NORM_SILU_GRAD,
  type GroupNormSiluAttrs,
} from "./group_norm_silu.ts";
import {
  free,
  heap,
  type KernelArgs,
  run,
  sizeOf,
  type TI,
  type WasmBackend,
} from "./wasm_util.ts";
import { addr, simdKernels } from "./simd.ts";

/** When false, the JS-loop kernels run even where the SIMD ones apply (tests, benchmarks). */
export let useSimdGroupNorm = true;

/** Chooses the implementation (see `useSimdGroupNorm`). */
export function setSimdGroupNorm(on: boolean): void {
  useSimdGroupNorm = on;
}

/**
 * Per-image group statistics from per-channel shifted sums (s1 = Σ(x − m), s2 = Σ(x − m)² over
 * nPix pixels, shift m per channel): mean and 1/√(var + eps) of each group, in float64.
 */
function groupStats(
  st: Float32Array,
  shift: Float32Array,
  shiftAt: number,
  C: number,
  G: number,
  nPix: number,
  eps: number,
  mean: Float32Array,
  rstd: Float32Array,
  at: number,
): void {
  const cg = C / G, n = nPix * cg;
  for (let g = 0; g < G; g++) {
    let t = 0;
    for (let c = g * cg; c < (g + 1) * cg; c++) t += st[c] + nPix * shift[shiftAt + c];
    const mu = t / n;
    let q = 0;
    for (let c = g * cg; c < (g + 1) * cg; c++) {
      const dm = shift[shiftAt + c] - mu;
      q += st[C + c] + 2 * dm * st[c] + nPix * dm * dm;
    }
    mean[at + g] = mu;
    rstd[at + g] = 1 / Math.sqrt(Math.max(q / n, 0) + eps);
  }
}

/** Forward on the SIMD kernels (C % 4 == 0). */
function forwardSimd(
  backend: WasmBackend,
  x: TI,
  gamma: TI,
  beta: TI,
  G: number,
  silu: boolean,
  eps: number,
): TI[] {
  const { N, C, S } = dims(x);
  const cg = C / G;
  const y = backend.makeOutput(x.shape, "float32");
  const sig = silu ? backend.makeOutput(x.shape, "float32") : backend.makeOutput([1], "float32");
  const meanO = backend.makeOutput([N, G], "float32");
  const rstdO = backend.makeOutput([N, G], "float32");
  const scratch = backend.makeOutput([4 * C], "float32"); // stats [2C] | a [C] | b [C]
  const k = simdKernels(backend);
  const xa = addr(backend, x), ya = addr(backend, y), sa = addr(backend, sig);
  const ta = addr(backend, scratch), aa = ta + 8 * C, ba = ta + 12 * C;
  const xs = heap(backend, x), gs = heap(backend, gamma), bs = heap(backend, beta);
  const ms = heap(backend, meanO), rs = heap(backend, rstdO), t = heap(backend, scratch);
  for (let b = 0; b < N; b++) {
    const off = b * S * C;
    k.gnStats(xa + 4 * off, S, C, xa + 4 * off, ta);
    groupStats(t, xs, off, C, G, S, eps, ms, rs, b * G);
    for (let c = 0; c < C; c++) {
      const g = Math.floor(c / cg), r = rs[b * G + g];
      t[2 * C + c] = r * gs[c];
      t[3 * C + c] = bs[c] - ms[b * G + g] * r * gs[c];
    }
    if (silu) k.gnAffineSilu(xa + 4 * off, S, C, aa, ba, ya + 4 * off, sa + 4 * off);
    else k.gnAffine(xa + 4 * off, S, C, aa, ba, ya + 4 * off);
  }
  free(backend, scratch);
  return [y, meanO, rstdO, sig];
}

/** Backward on the SIMD kernels (C % 4 == 0). */
function backwardSimd(
  backend: WasmBackend,
  inputs: Record<string, TI>,
  G: number,
  silu: boolean,
): TI[] {
  const { dy, x, gamma, beta, mean, rstd, sig } = inputs;
  const { N, C, S } = dims(x);
  const cg = C / G, n = S * cg;
  const dx = backend.makeOutput(x.shape, "float32");
  const dgO = backend.makeOutput([C], "float32"), dbO = backend.makeOutput([C], "float32");
  // sums [2C] | a | b | A | P | Q, then d(pre-activation) of one image.
  const scratch = backend.makeOutput([7 * C + (silu ? S * C : 0)], "float32");
  const k = simdKernels(backend);
  const xa = addr(backend, x), da = addr(backend, dy), dxa = addr(backend, dx);
  const ta = addr(backend, scratch), pa = ta + 28 * C;
  const sga = silu ? addr(backend, sig) : 0;
  const gs = heap(backend, gamma), bs = heap(backend, beta);
  const ms = heap(backend, mean), rs = heap(backend, rstd), t = heap(backend, scratch);
  const dg = new Float64Array(C), db = new Float64Array(C);
  for (let b = 0; b < N; b++) {
    const off = 4 * b * S * C;
    for (let c = 0; c < C; c++) {
      const g = Math.floor(c / cg), m = ms[b * G + g], r = rs[b * G + g];
      t[2 * C + c] = r * gs[c];
      t[3 * C + c] = bs[c] - m * r * gs[c];
    }
    if (silu) {
      k.gnBack1Silu(xa + off, da + off, sga + off, S, C, ta + 8 * C, ta + 12 * C, pa, ta);
    } else {
      k.gnBack1(xa + off, da + off, S, C, ta);
    }
    for (let g = 0; g < G; g++) {
      const m = ms[b * G + g], r = rs[b * G + g];
      let t1 = 0, t2 = 0;
      for (let c = g * cg; c < (g + 1) * cg; c++) {
        const s1 = t[c], sxh = r * (t[C + c] - m * s1);
        db[c] += s1;
        dg[c] += sxh;
        t1 += gs[c] * s1;
        t2 += gs[c] * sxh;
      }
      const m1 = t1 / n, m2 = t2 / n;
      for (let c = g * cg; c < (g + 1) * cg; c++) {
        t[4 * C + c] = r * gs[c];
        t[5 * C + c] = -r * r * m2;
        t[6 * C + c] = r * r * m2 * m - r * m1;
      }
    }
    k.gnBack2(
      silu ? pa : da + off,
      xa + off,
      S,
      C,
      ta + 16 * C,
      ta + 20 * C,
      ta + 24 * C,
      dxa + off,
    );
  }
  free(backend, scratch);
  heap(backend, dgO).set(dg);
  heap(backend, dbO).set(db);
  return [dx, dgO, dbO];
}

export { GROUP_NORM_SILU, GROUP_NORM_SILU_GRAD };

function dims(x: TI): { N: number; C: number; S: number } {
  return { N: x.shape[0], C: x.shape[x.shape.length - 1], S: sizeOf(x.shape.slice(1, -1)) };
}

/** Forward kernel (see the module note). */
export function groupNormSiluForwardKernel(args: unknown): TI[] {
  const { inputs, backend, attrs } = args as KernelArgs;
  const { x, gamma, beta } = inputs;
  const { groups: G, silu, eps } = attrs as unknown as GroupNormSiluAttrs;
  const { N, C, S } = dims(x);
  if (useSimdGroupNorm && C % 4 === 0) return forwardSimd(backend, x, gamma, beta, G, silu, eps);
  const cg = C / G, n = S * cg;
  const pre = backend.makeOutput(x.shape, "float32");
  const meanO = backend.makeOutput([N, G], "float32"),
    rstdO = backend.makeOutput([N, G], "float32");
  const xs = heap(backend, x), ys = heap(backend, pre), gs = heap(backend, gamma);
  const bs = heap(backend, beta), ms = heap(backend, meanO), rs = heap(backend, rstdO);
  const sum = new Float64Array(C), sq = new Float64Array(C);
  const a = new Float32Array(C), bb = new Float32Array(C);
  for (let b = 0; b < N; b++) {
    const base = b * S * C;
    // Per channel with scalar accumulators (faster in V8 than indexed Float64Array sums).
    const end = base + S * C;
    for (let c = 0; c < C; c++) {
      let s1 = 0, s2 = 0;
      for (let i = base + c; i < end; i += C) {
        const v = xs[i];
        s1 += v;
        s2 += v * v;
      }
      sum[c] = s1;
      sq[c] = s2;
    }
    for (let g = 0; g < G; g++) {
      let s1 = 0, s2 = 0;
      for (let c = g * cg; c < (g + 1) * cg; c++) {
        s1 += sum[c];
        s2 += sq[c];
      }
      const mean = s1 / n, r = 1 / Math.sqrt(Math.max(s2 / n - mean * mean, 0) + eps);
      ms[b * G + g] = mean;
      rs[b * G + g] = r;
      for (let c = g * cg; c < (g + 1) * cg; c++) {
        a[c] = r * gs[c];
        bb[c] = bs[c] - mean * r * gs[c];
      }
    }
    for (let s = 0; s < S; s++) {
      const o = base + s * C;
      for (let c = 0; c < C; c++) ys[o + c] = xs[o + c] * a[c] + bb[c];
    }
  }
  if (!silu) return [pre, meanO, rstdO, backend.makeOutput([1], "float32")];
  const sig = run("Sigmoid", backend, { x: pre });
  const y = run("Multiply", backend, { a: pre, b: sig });
  free(backend, pre);
  return [y, meanO, rstdO, sig];
}

let dpreScratch = new Float32Array(0);

/** Backward kernel (see the module note). */
export function groupNormSiluBackwardKernel(args: unknown): TI[] {
  const { inputs, backend, attrs } = args as KernelArgs;
  const { dy, x, gamma, beta, mean, rstd, sig } = inputs;
  const { groups: G, silu } = attrs as unknown as GroupNormSiluAttrs;
  const { N, C, S } = dims(x);
  if (useSimdGroupNorm && C % 4 === 0) return backwardSimd(backend, inputs, G, silu);
  const cg = C / G, n = S * cg;
  const dx = backend.makeOutput(x.shape, "float32");
  const dgO = backend.makeOutput([C], "float32"), dbO = backend.makeOutput([C], "float32");
  const xs = heap(backend, x), ds = heap(backend, dy), gs = heap(backend, gamma);
  const bs = heap(backend, beta), ms = heap(backend, mean), rs = heap(backend, rstd);
  const dxs = heap(backend, dx), ss = silu ? heap(backend, sig) : xs;
  const dg = new Float64Array(C), db = new Float64Array(C);
  const S1 = new Float64Array(C), S2 = new Float64Array(C);
  const a = new Float32Array(C), bb = new Float32Array(C);
  const A = new Float32Array(C), P = new Float32Array(C), Q = new Float32Array(C);
  if (dpreScratch.length < S * C) dpreScratch = new Float32Array(S * C);
  const dpre = dpreScratch;
  for (let b = 0; b < N; b++) {
    const base = b * S * C;
    for (let c = 0; c < C; c++) {
      const g = Math.floor(c / cg), m = ms[b * G + g], r = rs[b * G + g];
      a[c] = r * gs[c];
      bb[c] = bs[c] - m * r * gs[c];
    }
    // Pass 1, per channel: d(pre-activation) and its sums Σd, Σd·x.
    const end = S * C;
    for (let c = 0; c < C; c++) {
      let s1 = 0, s2 = 0;
      if (silu) {
        const ac = a[c], bc = bb[c];
        for (let j = c; j < end; j += C) {
          const v = xs[base + j], sg = ss[base + j];
          const d = ds[base + j] * sg * (1 + (v * ac + bc) * (1 - sg));
          dpre[j] = d;
          s1 += d;
          s2 += d * v;
        }
      } else {
        for (let j = c; j < end; j += C) {
          const v = xs[base + j], d = ds[base + j];
          dpre[j] = d;
          s1 += d;
          s2 += d * v;
        }
      }
      S1[c] = s1;
      S2[c] = s2;
    }
    // Per group: dx = r·γ·d − r·mean(γd) − r·x̂·mean(γd·x̂) = A·d + P·x + Q.
    for (let g = 0; g < G; g++) {
      const m = ms[b * G + g], r = rs[b * G + g];
      let t1 = 0, t2 = 0;
      for (let c = g * cg; c < (g + 1) * cg; c++) {
        const sxh = r * (S2[c] - m * S1[c]);
        db[c] += S1[c];
        dg[c] += sxh;
        t1 += gs[c] * S1[c];
        t2 += gs[c] * sxh;
      }
      const m1 = t1 / n, m2 = t2 / n;
      for (let c = g * cg; c < (g + 1) * cg; c++) {
        A[c] = r * gs[c];
        P[c] = -r * r * m2;
        Q[c] = r * r * m2 * m - r * m1;
      }
    }
    // Pass 2.
    for (let s = 0; s < S; s++) {
      const o = base + s * C, so = s * C;
      for (let c = 0; c < C; c++) dxs[o + c] = dpre[so + c] * A[c] + xs[o + c] * P[c] + Q[c];
    }
  }
  heap(backend, dgO).set(dg);
  heap(backend, dbO).set(db);
  return [dx, dgO, dbO];
}
