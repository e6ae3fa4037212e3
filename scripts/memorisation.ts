/**
 * Memorisation: how close each generated image is to its nearest training image, in pixel space.
 * A small data set (7,562 emoji) can be memorised by a diffusion model; these numbers say whether
 * it was, next to the same numbers for real held-out images against the same training set.
 *
 * Distance: root-mean-square pixel difference on the [0, 1] scale (0 = identical, 1/255 = one
 * 8-bit level everywhere). A "near copy" is a query whose nearest training image is closer than
 * NEAR_COPY_RMS, or (Carlini et al. 2023's relative test) closer than a third of the distance to
 * the second nearest. Both sets are flat float arrays of n × dim values in [−1, 1], same layout.
 */

/** Below this RMS difference on [0, 1] (≈ 8 levels of 255) two images are visually the same. */
export const NEAR_COPY_RMS = 0.03;
/** Nearest / second-nearest distance ratio below which a query is a near copy. */
export const NEAR_COPY_RATIO = 1 / 3;

export interface NearestResult {
  /** Per query: index of the nearest training image and the RMS distances to the two nearest. */
  index: Int32Array;
  d1: Float64Array;
  d2: Float64Array;
}

/** The two nearest training images of every query (exact search, squared L2, one pass each). */
export function nearestTraining(
  queries: Float32Array,
  nq: number,
  train: Float32Array,
  nt: number,
  dim: number,
): NearestResult {
  if (queries.length !== nq * dim || train.length !== nt * dim) {
    throw new RangeError(`expected ${nq}×${dim} and ${nt}×${dim} values`);
  }
  if (nt < 2) throw new RangeError("need at least two training images");
  const norms = new Float64Array(nt);
  for (let j = 0; j < nt; j++) {
    let s = 0;
    for (let k = 0; k < dim; k++) s += train[j * dim + k] ** 2;
    norms[j] = s;
  }
  const index = new Int32Array(nq), d1 = new Float64Array(nq), d2 = new Float64Array(nq);
  for (let i = 0; i < nq; i++) {
    const q = queries.subarray(i * dim, (i + 1) * dim);
    let qn = 0;
    for (let k = 0; k < dim; k++) qn += q[k] * q[k];
    let b1 = Infinity, b2 = Infinity, bi = -1;
    for (let j = 0; j < nt; j++) {
      const t = j * dim;
      let dot = 0;
      for (let k = 0; k < dim; k++) dot += q[k] * train[t + k];
      const d = qn + norms[j] - 2 * dot;
      if (d < b1) {
        b2 = b1;
        b1 = d;
        bi = j;
      } else if (d < b2) b2 = d;
    }
    // Squared L2 on [−1, 1] → RMS on [0, 1]: halve the values, divide by the count.
    const rms = (sq: number) => Math.sqrt(Math.max(0, sq) / dim) / 2;
    index[i] = bi;
    d1[i] = rms(b1);
    d2[i] = rms(b2);
  }
  return { index, d1, d2 };
}

export interface MemorisationStats {
  n: number;
  /** Median and 5th percentile of the nearest-training RMS distance. */
  medianNearest: number;
  p5Nearest: number;
  /** Share of queries that are near copies (see the module comment). */
  nearCopyShare: number;
  /** The closest queries: [query index, training index, RMS distance], closest first. */
  closest: [number, number, number][];
}

/** Whether one query is a near copy of its nearest training image. */
export function isNearCopy(d1: number, d2: number): boolean {
  return d1 < NEAR_COPY_RMS || (d2 > 0 && d1 / d2 < NEAR_COPY_RATIO);
}

/** Summary of nearestTraining's result, with the `top` closest pairs for pictures. */
export function memorisationStats(r: NearestResult, top = 8): MemorisationStats {
  const n = r.d1.length;
  const sorted = Float64Array.from(r.d1).sort();
  const q = (p: number) => sorted[Math.min(n - 1, Math.floor(p * n))];
  let copies = 0;
  for (let i = 0; i < n; i++) if (isNearCopy(r.d1[i], r.d2[i])) copies++;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => r.d1[a] - r.d1[b]);
  return {
    n,
    medianNearest: q(0.5),
    p5Nearest: q(0.05),
    nearCopyShare: copies / n,
    closest: order.slice(0, top).map((i) => [i, r.index[i], r.d1[i]]),
  };
}
