/**
 * Sample-quality metrics for MNIST-like generators, all computed in plain JS (float64):
 *
 * - Fréchet distance between Gaussians fitted to classifier features (an "FID" on the small
 *   MNIST classifier's penultimate layer, not on Inception: comparable across runs of this
 *   project only):  ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}.
 *   The matrix square roots come from one symmetric eigendecomposition (cyclic Jacobi).
 * - Classifier confidence (mean max softmax), the fraction of samples with confidence > 0.9,
 *   label coverage (entropy of the predicted-class histogram / ln K) and, for conditional
 *   samples, accuracy against the requested labels.
 * - Nearest-neighbour L2 distance in pixel space from each sample to a reference (training)
 *   set: small values flag memorisation, large values off-manifold images.
 * - Diversity against fidelity on k-NN manifolds, in any space (pixels, classifier features):
 *   improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem
 *   et al. 2020), with recall and coverage per class where the real rows carry labels.
 */

/** A row-major n × d matrix. */
export interface Rows {
  n: number;
  d: number;
  data: Float64Array | Float32Array;
}

export interface GaussianStats {
  d: number;
  mean: Float64Array;
  /** d × d, row-major, unbiased (divided by n − 1). */
  cov: Float64Array;
}

/** Mean and unbiased covariance of n ≥ 2 feature rows. */
export function meanCov(x: Rows): GaussianStats {
  const { n, d, data } = x;
  if (n < 2) throw new RangeError(`meanCov needs at least 2 rows, got ${n}`);
  if (data.length !== n * d) throw new RangeError(`data length ${data.length} ≠ ${n}·${d}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += data[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) c[j] = data[i * d + j] - mean[j];
    for (let a = 0; a < d; a++) {
      const ca = c[a];
      if (ca === 0) continue;
      const row = a * d;
      for (let b = a; b < d; b++) cov[row + b] += ca * c[b];
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b] / (n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  }
  return { d, mean, cov };
}

export interface Eigen {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** Eigenvectors as columns of a row-major d × d matrix (A = V diag(λ) Vᵀ). */
  vectors: Float64Array;
}

/**
 * Eigendecomposition of a symmetric d × d matrix (row-major) by the cyclic Jacobi method:
 * rotations zero every off-diagonal entry in turn until the off-diagonal norm is negligible.
 * Accurate to working precision for symmetric input; O(d³) per sweep, ~6–10 sweeps.
 */
export function symmetricEigen(a: ArrayLike<number>, d: number, maxSweeps = 100): Eigen {
  if (a.length !== d * d) throw new RangeError(`matrix length ${a.length} ≠ ${d}²`);
  const m = Float64Array.from(a);
  // Symmetrise (guards against tiny asymmetries from float accumulation).
  for (let i = 0; i < d; i++) {
    for (let j = i + 1; j < d; j++) {
      const v = 0.5 * (m[i * d + j] + m[j * d + i]);
      m[i * d + j] = v;
      m[j * d + i] = v;
    }
  }
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  let scale = 0;
  for (let i = 0; i < d * d; i++) scale += m[i] * m[i];
  const tol = 1e-30 * Math.max(scale, 1e-300);
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += m[p * d + q] ** 2;
    if (off <= tol) break;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q];
        if (apq === 0) continue;
        const app = m[p * d + p], aqq = m[q * d + q];
        // Rotation angle that zeroes a_pq (Numerical Recipes' stable form).
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < d; k++) {
          // Columns p and q of M (rows by symmetry below).
          const mkp = m[k * d + p], mkq = m[k * d + q];
          m[k * d + p] = c * mkp - s * mkq;
          m[k * d + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < d; k++) {
          const mpk = m[p * d + k], mqk = m[q * d + k];
          m[p * d + k] = c * mpk - s * mqk;
          m[q * d + k] = s * mpk + c * mqk;
        }
        m[p * d + q] = 0;
        m[q * d + p] = 0;
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p], vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: d }, (_, i) => i).sort((i, j) => m[j * d + j] - m[i * d + i]);
  const values = new Float64Array(d);
  const vectors = new Float64Array(d * d);
  order.forEach((src, dst) => {
    values[dst] = m[src * d + src];
    for (let k = 0; k < d; k++) vectors[k * d + dst] = v[k * d + src];
  });
  return { values, vectors };
}

/** f(A) = V diag(f(λ)) Vᵀ for symmetric A. */
export function symmetricMatrixFunction(
  a: ArrayLike<number>,
  d: number,
  f: (lambda: number) => number,
): Float64Array {
  const { values, vectors } = symmetricEigen(a, d);
  const fl = values.map(f);
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += vectors[i * d + k] * fl[k] * vectors[j * d + k];
      out[i * d + j] = s;
      out[j * d + i] = s;
    }
  }
  return out;
}

/** Principal square root of a symmetric PSD matrix (negative round-off eigenvalues → 0). */
export function sqrtPsd(a: ArrayLike<number>, d: number): Float64Array {
  return symmetricMatrixFunction(a, d, (l) => Math.sqrt(Math.max(l, 0)));
}

/** Row-major d × d product. */
export function matmul(a: ArrayLike<number>, b: ArrayLike<number>, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k];
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += aik * b[k * d + j];
    }
  }
  return out;
}

/** tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2} = tr (Σ₁Σ₂)^{1/2} for PSD Σ₁, Σ₂. */
export function traceSqrtProduct(s1: ArrayLike<number>, s2: ArrayLike<number>, d: number): number {
  const r = sqrtPsd(s1, d);
  const m = matmul(matmul(r, s2, d), r, d);
  const { values } = symmetricEigen(m, d);
  let t = 0;
  for (const l of values) t += Math.sqrt(Math.max(l, 0));
  return t;
}

/** Fréchet distance between two Gaussians. */
export function frechetDistance(a: GaussianStats, b: GaussianStats): number {
  if (a.d !== b.d) throw new RangeError(`dimension mismatch ${a.d} ≠ ${b.d}`);
  const d = a.d;
  let dm = 0, tr = 0;
  for (let i = 0; i < d; i++) {
    dm += (a.mean[i] - b.mean[i]) ** 2;
    tr += a.cov[i * d + i] + b.cov[i * d + i];
  }
  // Clamp tiny negatives from round-off.
  return Math.max(dm + tr - 2 * traceSqrtProduct(a.cov, b.cov, d), 0);
}

/** Fréchet distance between the Gaussians fitted to two feature sets. */
export function fid(a: Rows, b: Rows): number {
  return frechetDistance(meanCov(a), meanCov(b));
}

/** Row-wise softmax of n × k logits. */
export function softmax(logits: Rows): Float64Array {
  const { n, d: k, data } = logits;
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let j = 0; j < k; j++) max = Math.max(max, data[i * k + j]);
    let s = 0;
    for (let j = 0; j < k; j++) s += out[i * k + j] = Math.exp(data[i * k + j] - max);
    for (let j = 0; j < k; j++) out[i * k + j] /= s;
  }
  return out;
}

export interface ClassStats {
  /** Mean of the max class probability. */
  confidence: number;
  /** Fraction of samples whose max probability exceeds `threshold` (0.9). */
  confidentFraction: number;
  /** Entropy of the predicted-class histogram / ln k: 1 = every class equally often. */
  coverage: number;
  /** Predicted-class counts. */
  histogram: number[];
  /** Argmax class per sample. */
  predicted: Int32Array;
  /** Fraction with predicted = requested label, when labels are given. */
  accuracy: number | null;
}

/** Entropy of a count histogram divided by ln(bins): 1 for uniform, 0 for one class. */
export function labelCoverage(histogram: ArrayLike<number>): number {
  const k = histogram.length;
  let total = 0;
  for (let i = 0; i < k; i++) total += histogram[i];
  if (total === 0 || k < 2) return 0;
  let h = 0;
  for (let i = 0; i < k; i++) {
    const p = histogram[i] / total;
    if (p > 0) h -= p * Math.log(p);
  }
  return h / Math.log(k);
}

/** Confidence, coverage and (optionally) accuracy from class probabilities n × k. */
export function classStats(
  probs: Rows,
  labels?: ArrayLike<number> | null,
  threshold = 0.9,
): ClassStats {
  const { n, d: k, data } = probs;
  const predicted = new Int32Array(n);
  const histogram = new Array<number>(k).fill(0);
  let conf = 0, confident = 0, correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (data[i * k + j] > data[i * k + best]) best = j;
    const p = data[i * k + best];
    predicted[i] = best;
    histogram[best]++;
    conf += p;
    if (p > threshold) confident++;
    if (labels && labels[i] === best) correct++;
  }
  if (labels && labels.length !== n) throw new RangeError(`${labels.length} labels for ${n} rows`);
  return {
    confidence: conf / n,
    confidentFraction: confident / n,
    coverage: labelCoverage(histogram),
    histogram,
    predicted,
    accuracy: labels ? correct / n : null,
  };
}

/**
 * Squared L2 distances between every row of `a` (n × d) and every row of `b` (m × d), n × m
 * row-major, by direct differences in float64 (exact zeros for equal rows, so a copy of a point
 * lies inside any ball around it).
 */
export function pairwiseSquaredDistances(a: Rows, b: Rows): Float64Array {
  if (a.d !== b.d) throw new RangeError(`dimension mismatch ${a.d} ≠ ${b.d}`);
  const d = a.d, d4 = d - (d % 4), x = a.data, y = b.data;
  const out = new Float64Array(a.n * b.n);
  const ai = new Float64Array(d);
  const same = a === b;
  for (let i = 0; i < a.n; i++) {
    for (let k = 0; k < d; k++) ai[k] = x[i * d + k];
    // A set against itself: fill the upper triangle and mirror it.
    for (let j = same ? i + 1 : 0; j < b.n; j++) {
      const p = j * d;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < d4; k += 4) {
        const e0 = ai[k] - y[p + k], e1 = ai[k + 1] - y[p + k + 1];
        const e2 = ai[k + 2] - y[p + k + 2], e3 = ai[k + 3] - y[p + k + 3];
        s0 += e0 * e0;
        s1 += e1 * e1;
        s2 += e2 * e2;
        s3 += e3 * e3;
      }
      let s = s0 + s1 + s2 + s3;
      for (let k = d4; k < d; k++) s += (ai[k] - y[p + k]) ** 2;
      out[i * b.n + j] = s;
      if (same) out[j * b.n + i] = s;
    }
  }
  return out;
}

/**
 * Per row of a set, the squared distance to its k-th nearest neighbour within the set (itself
 * excluded; duplicates count): the radius of the k-NN ball that the manifold estimate puts there.
 */
export function kthNeighbourRadii(self: Float64Array, n: number, k: number): Float64Array {
  if (!(k >= 1 && k < n)) throw new RangeError(`k = ${k} needs 1 ≤ k < n = ${n}`);
  const radii = new Float64Array(n);
  const row = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) {
    for (let j = 0, w = 0; j < n; j++) if (j !== i) row[w++] = self[i * n + j];
    radii[i] = row.sort()[k - 1];
  }
  return radii;
}

export interface ManifoldMetrics {
  /** Neighbourhood size of the k-NN balls. */
  k: number;
  /** Real (reference) and generated set sizes. */
  nReal: number;
  nFake: number;
  /** Share of generated rows inside the real manifold (Kynkäänniemi et al. 2019). */
  precision: number;
  /** Share of real rows inside the generated manifold (Kynkäänniemi et al. 2019). */
  recall: number;
  /** Mean count of real k-NN balls holding each generated row, / k (Naeem et al. 2020); 1 ≈ real. */
  density: number;
  /** Share of real rows whose own k-NN ball holds some generated row (Naeem et al. 2020). */
  coverage: number;
  /** Recall over the real rows of each class, when the real rows have labels (else null). */
  recallByClass: number[] | null;
  /** Coverage over the real rows of each class, when the real rows have labels (else null). */
  coverageByClass: number[] | null;
}

/** A real set ready to score generated sets against: its rows, k-NN radii and labels. */
export interface ManifoldReference {
  rows: Rows;
  k: number;
  /** Squared distance from each real row to its k-th nearest real neighbour. */
  radii: Float64Array;
  labels: ArrayLike<number> | null;
  classes: number;
}

/** The real side of manifoldMetrics, computed once (its n × n distances are the costly part). */
export function manifoldReference(
  real: Rows,
  k = 3,
  labels?: ArrayLike<number> | null,
  classes = 10,
): ManifoldReference {
  if (labels && labels.length !== real.n) {
    throw new RangeError(`${labels.length} labels for ${real.n} real rows`);
  }
  const radii = kthNeighbourRadii(pairwiseSquaredDistances(real, real), real.n, k);
  return { rows: real, k, radii, labels: labels ?? null, classes };
}

/**
 * Improved precision and recall (k-NN manifolds, Kynkäänniemi et al. 2019) and density and
 * coverage (Naeem et al. 2020) of a generated set against a real one, Euclidean in whatever
 * space the rows live in (pixels, classifier features). A manifold is the union of the balls
 * around each of its points reaching its k-th nearest neighbour in the same set. `realLabels`
 * (class per real row, 0…classes − 1) adds recall and coverage per class.
 */
export function manifoldMetrics(
  real: Rows,
  fake: Rows,
  k = 3,
  realLabels?: ArrayLike<number> | null,
  classes = 10,
): ManifoldMetrics {
  return manifoldMetricsAgainst(manifoldReference(real, k, realLabels, classes), fake);
}

/** manifoldMetrics against a prepared reference (same k for the generated set's balls). */
export function manifoldMetricsAgainst(ref: ManifoldReference, fake: Rows): ManifoldMetrics {
  const { rows: real, k, radii: realRadii, labels: realLabels, classes } = ref;
  const n = real.n, m = fake.n;
  const fakeRadii = kthNeighbourRadii(pairwiseSquaredDistances(fake, fake), m, k);
  const cross = pairwiseSquaredDistances(real, fake); // n × m
  let inReal = 0, balls = 0;
  for (let j = 0; j < m; j++) {
    let count = 0;
    for (let i = 0; i < n; i++) if (cross[i * m + j] <= realRadii[i]) count++;
    balls += count;
    if (count > 0) inReal++;
  }
  const recalled = new Uint8Array(n), covered = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let nearest = Infinity;
    for (let j = 0; j < m; j++) {
      const v = cross[i * m + j];
      if (v < nearest) nearest = v;
      if (!recalled[i] && v <= fakeRadii[j]) recalled[i] = 1;
    }
    covered[i] = nearest <= realRadii[i] ? 1 : 0;
  }
  const share = (flags: Uint8Array, cls?: number) => {
    let hit = 0, all = 0;
    for (let i = 0; i < n; i++) {
      if (cls !== undefined && realLabels![i] !== cls) continue;
      all++;
      hit += flags[i];
    }
    return all === 0 ? NaN : hit / all;
  };
  const byClass = (flags: Uint8Array) =>
    realLabels ? Array.from({ length: classes }, (_, c) => share(flags, c)) : null;
  return {
    k,
    nReal: n,
    nFake: m,
    precision: inReal / m,
    recall: share(recalled),
    density: balls / (k * m),
    coverage: share(covered),
    recallByClass: byClass(recalled),
    coverageByClass: byClass(covered),
  };
}
