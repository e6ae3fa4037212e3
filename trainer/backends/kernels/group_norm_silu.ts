/**
 * GroupNorm (+ optional SiLU) as one op. On a backend where the fused kernel pair
 * "GroupNormSilu"/"GroupNormSiluGrad" is registered (wasm, see `register.ts`) it runs as a
 * single kernel with a hand-written gradient; elsewhere it is composed of plain tfjs ops.
 */
import * as tf from "@tensorflow/tfjs";

/** Kernel names of the fused forward and backward passes. */
export const GROUP_NORM_SILU = "GroupNormSilu";
export const GROUP_NORM_SILU_GRAD = "GroupNormSiluGrad";

/** Attributes of both fused kernels. */
export interface GroupNormSiluAttrs {
  groups: number;
  silu: boolean;
  eps: number;
}

/** GroupNorm + SiLU from plain ops (any backend; the reference the fused kernel is tested against). */
export function groupNormSiluComposite(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  groups: number,
  silu: boolean,
  eps: number,
): tf.Tensor {
  return tf.tidy(() => {
    const n = x.shape[0], c = x.shape[x.shape.length - 1];
    const xr = tf.reshape(x, [n, -1, groups, c / groups]);
    const { mean, variance } = tf.moments(xr, [1, 3], true);
    const xn = tf.reshape(tf.mul(tf.sub(xr, mean), tf.rsqrt(tf.add(variance, eps))), x.shape);
    const y = tf.add(tf.mul(xn, gamma), beta);
    return silu ? tf.mul(y, tf.sigmoid(y)) : y;
  });
}

type FusedFn = (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor;
const fusedCache = new Map<string, FusedFn>();

function fused(attrs: GroupNormSiluAttrs): FusedFn {
  const key = `${attrs.groups}|${attrs.silu}|${attrs.eps}`;
  let f = fusedCache.get(key);
  if (f === undefined) {
    const attrMap = attrs as unknown as tf.NamedAttrMap;
    // customGrad passes the inputs then the save function; its typing lumps them together.
    f = tf.customGrad(
      ((x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, save: tf.GradSaveFunc) => {
        const [y, mean, rstd, sig] = tf.engine().runKernel(
          GROUP_NORM_SILU,
          { x, gamma, beta },
          attrMap,
        ) as tf.Tensor[];
        save([x, gamma, beta, mean, rstd, sig]);
        return {
          value: y,
          gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
            const [sx, sg, sb, sm, sr, ss] = saved;
            return tf.engine().runKernel(
              GROUP_NORM_SILU_GRAD,
              { dy, x: sx, gamma: sg, beta: sb, mean: sm, rstd: sr, sig: ss },
              attrMap,
            ) as tf.Tensor[];
          },
        };
      }) as unknown as Parameters<typeof tf.customGrad>[0],
    ) as unknown as FusedFn;
    fusedCache.set(key, f);
  }
  return f;
}

/**
 * y = GroupNorm(x)·γ + β over `groups` channel groups (x is [N, …, C], γ/β [C]), then SiLU
 * if `silu`. Differentiable in x, γ and β.
 */
export function groupNormSilu(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  groups: number,
  silu: boolean,
  eps = 1e-5,
): tf.Tensor {
  const c = x.shape[x.shape.length - 1];
  if (c % groups !== 0) throw new Error(`groupNorm: ${c} channels not divisible by ${groups}`);
  if (tf.getKernel(GROUP_NORM_SILU, tf.getBackend()) !== undefined) {
    return fused({ groups, silu, eps })(x, gamma, beta);
  }
  return groupNormSiluComposite(x, gamma, beta, groups, silu, eps);
}
