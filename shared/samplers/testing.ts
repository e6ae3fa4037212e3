/**
 * Exact model outputs of tiny data sets, for the sampler tests: with a data set of images of
 * equal weight the optimal ε̂ is known in closed form, so a sampler that is right must return
 * (near) data images.
 */
import assert from "node:assert/strict";
import type { EpsModel } from "../sample.ts";
import type { Schedule } from "../schedule.ts";

/**
 * ε*(x_t, t) of equally weighted images {x⁽ᵏ⁾}: the posterior over k given x_t is a softmax of
 * −‖x_t − √ᾱ x⁽ᵏ⁾‖²/(2(1−ᾱ)), and ε* = (x_t − √ᾱ·E[x₀|x_t])/√(1−ᾱ).
 */
export function mixtureOracle(s: Schedule, images: Float32Array[]): EpsModel {
  const d = images[0].length;
  return (x, t) => {
    const a = s.sqrtAlphasCumprod[t], v = 1 - s.alphasCumprod[t];
    const out = new Float32Array(x.length);
    for (let n = 0; n < x.length / d; n++) {
      const xi = x.subarray(n * d, (n + 1) * d);
      const logits = images.map((im) =>
        -im.reduce((acc, p, j) => acc + (xi[j] - a * p) ** 2, 0) / (2 * v)
      );
      const m = Math.max(...logits);
      const w = logits.map((l) => Math.exp(l - m));
      const z = w.reduce((p, q) => p + q, 0);
      for (let j = 0; j < d; j++) {
        const mean = images.reduce((acc, im, k) => acc + w[k] * im[j], 0) / z;
        out[n * d + j] = (xi[j] - a * mean) / Math.sqrt(v);
      }
    }
    return Promise.resolve(out);
  };
}

/**
 * Assert that every one of the n samples in x (16 values each) lies on the constant image +0.8
 * or −0.8 of the two-image oracle, and that both are drawn (Binomial(n, ½): for n = 40, P(outside
 * 8…32) < 1e-4).
 */
export function assertOnTwoImages(x: Float32Array, n: number): void {
  let nearA = 0;
  for (let k = 0; k < n; k++) {
    const im = x.subarray(k * 16, (k + 1) * 16);
    const da = Math.max(...im.map((v) => Math.abs(v - 0.8)));
    const db = Math.max(...im.map((v) => Math.abs(v + 0.8)));
    assert.ok(Math.min(da, db) < 1e-3, `sample ${k} is on neither image (${da}, ${db})`);
    if (da < db) nearA++;
  }
  assert.ok(nearA >= n / 5 && nearA <= n - n / 5, `mode coverage ${nearA}/${n}`);
}
