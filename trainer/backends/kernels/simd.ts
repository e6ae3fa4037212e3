/**
 * The project's hand-written WebAssembly SIMD kernels (assembled by `wasm_asm.ts`), instantiated
 * on the tfjs wasm backend's own memory so they read and write tensors in place. Where the
 * engine supports relaxed SIMD they use fused multiply-add (`f32x4.relaxed_madd`), which the
 * wasm backend's XNNPACK build (tfjs 4.22) does not.
 *
 * Pointers and strides are byte offsets into that memory.
 */
import { assemble, Func } from "./wasm_asm.ts";
import type { TI, WasmBackend } from "./wasm_util.ts";

/** Exported kernels. */
export interface SimdKernels {
  /**
   * Outer-product accumulation over a 2-D grid of positions (rows × pixels):
   * out[i·nJ + j] += Σ_{r<nRows, p<nPix} S[s + r·sRow + p·sPix + 4i] · V[v + r·vRow + p·vPix + 4j]
   * for i < nI, j < nJ. Requires nJ % 4 == 0, nRows ≥ 1, nPix ≥ 1; out is float32 [nI, nJ].
   */
  opa(
    s: number,
    v: number,
    out: number,
    nRows: number,
    sRow: number,
    vRow: number,
    nPix: number,
    sPix: number,
    vPix: number,
    nI: number,
    nJ: number,
  ): void;
  /**
   * Direct convolution over a rows × pixels grid of outputs, channels innermost:
   * y[yp(r, p) + 4j] = bias[j] + Σ_{kh<fh, kw<fw, i<nI} X[xp(r, p) + kh·xTapRow + kw·xTapCol + 4i]
   * · w[((kh·fw + kw)·nI + i)·nJ + j], with xp(r, p) = x + r·xRow + p·xPix and
   * yp(r, p) = y + r·yRow + p·yPix; bias = 0 means no bias. Requires nJ % 4 == 0 and
   * xTapCol == 4·nI (the taps of a filter row are contiguous in x); every addressed x element
   * must exist (pad the input).
   */
  conv(
    x: number,
    w: number,
    bias: number,
    y: number,
    nRows: number,
    nPix: number,
    xRow: number,
    xPix: number,
    yRow: number,
    yPix: number,
    fh: number,
    fw: number,
    xTapRow: number,
    xTapCol: number,
    nI: number,
    nJ: number,
  ): void;
  /** nRows blocks of len bytes (len % 16 == 0, ≥ 16) from src to dst, with row strides. */
  copyRows(
    src: number,
    dst: number,
    nRows: number,
    len: number,
    sStride: number,
    dStride: number,
  ): void;
  /** dx [nRows, W, C] = 2×2 block sums of dy [2·nRows, 2W, C]; C % 4 == 0. */
  pool2(dy: number, dx: number, nRows: number, W: number, C: number): void;
  /** GroupNorm over x [nPix, C], C % 4 == 0: out [2, C] = Σ (x − shift), Σ (x − shift)². */
  gnStats(x: number, nPix: number, C: number, shift: number, out: number): void;
  /** y = x·a + b per channel. */
  gnAffine(x: number, nPix: number, C: number, a: number, b: number, y: number): void;
  /** pre = x·a + b; sig = sigmoid(pre); y = pre·sig. */
  gnAffineSilu(
    x: number,
    nPix: number,
    C: number,
    a: number,
    b: number,
    y: number,
    sig: number,
  ): void;
  /** dpre = dy·sig·(1 + pre·(1 − sig)); sums [2, C] = Σ dpre, Σ dpre·x. */
  gnBack1Silu(
    x: number,
    dy: number,
    sig: number,
    nPix: number,
    C: number,
    a: number,
    b: number,
    dpre: number,
    sums: number,
  ): void;
  /** sums [2, C] = Σ dy, Σ dy·x. */
  gnBack1(x: number, dy: number, nPix: number, C: number, sums: number): void;
  /** dx = d·A + x·P + Q per channel. */
  gnBack2(
    d: number,
    x: number,
    nPix: number,
    C: number,
    A: number,
    P: number,
    Q: number,
    dx: number,
  ): void;
}

/** Register block of `opa`: rows of out held in registers (×16 columns). */
const OPA_ROWS = 2;

function opaFunc(relaxed: boolean): Func {
  const f = new Func("opa", [
    ["s", "i32"],
    ["v", "i32"],
    ["out", "i32"],
    ["nRows", "i32"],
    ["sRow", "i32"],
    ["vRow", "i32"],
    ["nPix", "i32"],
    ["sPix", "i32"],
    ["vPix", "i32"],
    ["nI", "i32"],
    ["nJ", "i32"],
  ], relaxed);
  f.locals("i32", "i0", "j0", "r", "p", "sp", "vp", "ob", "rowBytes", "sr", "vr");
  const acc = (ii: number, jj: number) => `a${ii}_${jj}`;
  for (let ii = 0; ii < OPA_ROWS; ii++) {
    for (let jj = 0; jj < 4; jj++) f.locals("v128", acc(ii, jj));
  }
  f.locals("v128", "d0", "d1", "d2", "d3", "s0", "s1");

  // One (mi × 4·nv) block of out at (i0, j0).
  const block = (mi: number, nv: number) => {
    // ob = out + (i0·nJ + j0)·4
    f.get("out").get("i0").get("nJ").i32op("mul").get("j0").i32op("add").i32(4).i32op("mul")
      .i32op("add").set("ob");
    for (let ii = 0; ii < mi; ii++) {
      for (let jj = 0; jj < nv; jj++) {
        f.get("ob");
        if (ii > 0) f.get("rowBytes").i32op("add");
        f.v128Load(16 * jj).set(acc(ii, jj));
      }
    }
    f.get("s").get("i0").i32(4).i32op("mul").i32op("add").set("sr");
    f.get("v").get("j0").i32(4).i32op("mul").i32op("add").set("vr");
    f.get("nRows").set("r");
    f.loop(() => {
      f.get("sr").set("sp");
      f.get("vr").set("vp");
      f.get("nPix").set("p");
      f.loop(() => {
        for (let ii = 0; ii < mi; ii++) f.get("sp").load32Splat(4 * ii).set(`s${ii}`);
        for (let jj = 0; jj < nv; jj++) f.get("vp").v128Load(16 * jj).set(`d${jj}`);
        for (let ii = 0; ii < mi; ii++) {
          for (let jj = 0; jj < nv; jj++) {
            f.fma(() => f.get(`s${ii}`), () => f.get(`d${jj}`), () => f.get(acc(ii, jj)))
              .set(acc(ii, jj));
          }
        }
        f.inc("sp", "sPix").inc("vp", "vPix");
        f.get("p").i32(1).i32op("sub").tee("p").brIf(0);
      });
      f.inc("sr", "sRow").inc("vr", "vRow");
      f.get("r").i32(1).i32op("sub").tee("r").brIf(0);
    });
    for (let ii = 0; ii < mi; ii++) {
      for (let jj = 0; jj < nv; jj++) {
        f.get("ob");
        if (ii > 0) f.get("rowBytes").i32op("add");
        f.get(acc(ii, jj)).v128Store(16 * jj);
      }
    }
  };
  // All column blocks of a band of mi rows: 16 columns at a time, then 4.
  const band = (mi: number) => {
    f.i32(0).set("j0");
    f.whileLoop(() => f.get("j0").i32(16).i32op("add").get("nJ").i32op("le_s"), () => {
      block(mi, 4);
      f.inc("j0", 16);
    });
    f.whileLoop(() => f.get("j0").i32(4).i32op("add").get("nJ").i32op("le_s"), () => {
      block(mi, 1);
      f.inc("j0", 4);
    });
  };
  f.get("nJ").i32(4).i32op("mul").set("rowBytes");
  f.i32(0).set("i0");
  f.whileLoop(() => f.get("i0").i32(OPA_ROWS).i32op("add").get("nI").i32op("le_s"), () => {
    band(OPA_ROWS);
    f.inc("i0", OPA_ROWS);
  });
  f.whileLoop(() => f.get("i0").get("nI").i32op("lt_s"), () => {
    band(1);
    f.inc("i0", 1);
  });
  return f;
}

function convFunc(relaxed: boolean): Func {
  const f = new Func("conv", [
    ["x", "i32"],
    ["w", "i32"],
    ["bias", "i32"],
    ["y", "i32"],
    ["nRows", "i32"],
    ["nPix", "i32"],
    ["xRow", "i32"],
    ["xPix", "i32"],
    ["yRow", "i32"],
    ["yPix", "i32"],
    ["fh", "i32"],
    ["fw", "i32"],
    ["xTapRow", "i32"],
    ["xTapCol", "i32"],
    ["nI", "i32"],
    ["nJ", "i32"],
  ], relaxed);
  f.locals(
    "i32",
    "r",
    "p",
    "j0",
    "xr",
    "yr",
    "xp",
    "yp",
    "kh",
    "rowLen",
    "i",
    "xk",
    "xq",
    "xq2",
    "wq",
    "wStep",
  );
  const acc = (ii: number, jj: number) => `a${ii}_${jj}`;
  for (let ii = 0; ii < 2; ii++) {
    for (let jj = 0; jj < 4; jj++) f.locals("v128", acc(ii, jj));
  }
  f.locals("v128", "w0", "w1", "w2", "w3", "s0", "s1");

  // Outputs (mp pixels) × (4·nv channels from j0) of the pixel block at xp / yp.
  const block = (mp: number, nv: number) => {
    f.get("bias").ifThen(() => {
      for (let jj = 0; jj < nv; jj++) {
        f.get("bias").get("j0").i32(4).i32op("mul").i32op("add").v128Load(16 * jj)
          .set(acc(0, jj));
        if (mp > 1) f.get(acc(0, jj)).set(acc(1, jj));
      }
    }, () => {
      for (let ii = 0; ii < mp; ii++) {
        for (let jj = 0; jj < nv; jj++) f.v128Zero().set(acc(ii, jj));
      }
    });
    f.get("w").get("j0").i32(4).i32op("mul").i32op("add").set("wq");
    f.get("xp").set("xk");
    f.get("fh").set("kh");
    f.loop(() => {
      // One filter row: its fw taps × nI channels are contiguous in x (xTapCol = 4·nI).
      f.get("xk").set("xq");
      f.get("xk").get("xPix").i32op("add").set("xq2");
      f.get("rowLen").set("i");
      f.loop(() => {
        f.get("xq").load32Splat().set("s0");
        if (mp > 1) f.get("xq2").load32Splat().set("s1");
        for (let jj = 0; jj < nv; jj++) f.get("wq").v128Load(16 * jj).set(`w${jj}`);
        for (let ii = 0; ii < mp; ii++) {
          for (let jj = 0; jj < nv; jj++) {
            f.fma(() => f.get(`s${ii}`), () => f.get(`w${jj}`), () => f.get(acc(ii, jj)))
              .set(acc(ii, jj));
          }
        }
        f.inc("xq", 4).inc("wq", "wStep");
        if (mp > 1) f.inc("xq2", 4);
        f.get("i").i32(1).i32op("sub").tee("i").brIf(0);
      });
      f.inc("xk", "xTapRow");
      f.get("kh").i32(1).i32op("sub").tee("kh").brIf(0);
    });
    for (let ii = 0; ii < mp; ii++) {
      for (let jj = 0; jj < nv; jj++) {
        f.get("yp").get("j0").i32(4).i32op("mul").i32op("add");
        if (ii > 0) f.get("yPix").i32op("add");
        f.get(acc(ii, jj)).v128Store(16 * jj);
      }
    }
  };
  const channels = (mp: number) => {
    f.i32(0).set("j0");
    f.whileLoop(() => f.get("j0").i32(16).i32op("add").get("nJ").i32op("le_s"), () => {
      block(mp, 4);
      f.inc("j0", 16);
    });
    f.whileLoop(() => f.get("j0").i32(4).i32op("add").get("nJ").i32op("le_s"), () => {
      block(mp, 1);
      f.inc("j0", 4);
    });
  };
  f.get("nJ").i32(4).i32op("mul").set("wStep");
  f.get("fw").get("nI").i32op("mul").set("rowLen");
  f.get("x").set("xr");
  f.get("y").set("yr");
  f.get("nRows").set("r");
  f.loop(() => {
    f.get("xr").set("xp");
    f.get("yr").set("yp");
    f.get("nPix").set("p");
    f.whileLoop(() => f.get("p").i32(2).i32op("ge_s"), () => {
      channels(2);
      f.get("xp").get("xPix").i32op("add").get("xPix").i32op("add").set("xp");
      f.get("yp").get("yPix").i32op("add").get("yPix").i32op("add").set("yp");
      f.inc("p", -2);
    });
    f.get("p").ifThen(() => channels(1));
    f.inc("xr", "xRow").inc("yr", "yRow");
    f.get("r").i32(1).i32op("sub").tee("r").brIf(0);
  });
  return f;
}

/** Constants of `sigmoid`, hoisted into v128 locals by `sigmoidConstants`. */
const SIGMOID_CONSTANTS: [string, number][] = [
  ["cMax", 87],
  ["cMin", -87],
  ["cLog2e", Math.LOG2E],
  // 1.5·2²³ + 127: adding it rounds to an integer k and leaves k + 127 in the low bits.
  ["cMagic", 12582912 + 127],
  ["cLn2Hi", -0.693359375],
  ["cLn2Lo", 2.12194440e-4],
  ["cOne", 1],
  ["cP6", 1 / 720],
  ["cP5", 1 / 120],
  ["cP4", 1 / 24],
  ["cP3", 1 / 6],
  ["cP2", 1 / 2],
];

function sigmoidConstants(f: Func): void {
  f.locals("v128", ...SIGMOID_CONSTANTS.map(([n]) => n));
  for (const [n, v] of SIGMOID_CONSTANTS) f.f32x4Const(v).set(n);
}

/**
 * Emits s = sigmoid(z) = 1 / (1 + e^t), t = −z clamped to ±87, for v128 locals: e^t = 2^k·e^r
 * with k = round(t·log2 e) (magic-number rounding; 2^k built in the exponent bits),
 * r = t − k·ln 2 and e^r by its degree-6 Taylor polynomial (|r| ≤ ln 2 / 2).
 */
function sigmoid(f: Func, z: string, s: string, t: string, k: string): void {
  f.get(z).f32x4("neg").get("cMax").f32x4("min").get("cMin").f32x4("max").set(t);
  f.fma(() => f.get(t), () => f.get("cLog2e"), () => f.get("cMagic")).set(k);
  // t −= (k − magic)·ln 2
  f.get(k).get("cMagic").f32x4("sub").set(s);
  f.fma(() => f.get(s), () => f.get("cLn2Hi"), () => f.get(t)).set(t);
  f.fma(() => f.get(s), () => f.get("cLn2Lo"), () => f.get(t)).set(t);
  f.get("cP6").set(s);
  for (const c of ["cP5", "cP4", "cP3", "cP2", "cOne", "cOne"]) {
    f.fma(() => f.get(s), () => f.get(t), () => f.get(c)).set(s);
  }
  f.get(s).get(k).i32(23).i32x4("shl").f32x4("mul").set(s);
  f.get("cOne").get("cOne").get(s).f32x4("add").f32x4("div").set(s);
}

/** Loop over channel blocks (cb, byte offset `co` = 16·cb) and, inside, over nPix pixels. */
function channelLoop(f: Func, perBlock: () => void, perPixel: () => void, after: () => void) {
  f.i32(0).set("co");
  f.whileLoop(() => f.get("co").get("rowB").i32op("lt_s"), () => {
    perBlock();
    f.get("nPix").set("p");
    f.i32(0).set("off");
    f.loop(() => {
      perPixel();
      f.inc("off", "rowB");
      f.get("p").i32(1).i32op("sub").tee("p").brIf(0);
    });
    after();
    f.inc("co", 16);
  });
}

/** GroupNorm kernels: all over [nPix, C] (C % 4 == 0), vectorised over channels. */
function groupNormFuncs(relaxed: boolean): Func[] {
  const start = (name: string, params: string[]) => {
    const f = new Func(name, params.map((p) => [p, "i32"] as [string, "i32"]), relaxed);
    f.locals("i32", "co", "p", "off", "rowB");
    f.get("C").i32(4).i32op("mul").set("rowB");
    return f;
  };
  const at = (f: Func, base: string) => f.get(base).get("off").i32op("add");
  const vec = (f: Func, base: string, plusC = false) => {
    f.get(base).get("co").i32op("add");
    if (plusC) f.get("rowB").i32op("add");
    return f;
  };

  // out[0, c] = Σ (x − shift), out[1, c] = Σ (x − shift)² (shifted sums: accurate variance).
  const stats = start("gnStats", ["x", "nPix", "C", "shift", "out"]);
  stats.locals("v128", "m", "d", "s1", "s2");
  channelLoop(stats, () => {
    vec(stats, "shift").v128Load().set("m");
    stats.v128Zero().set("s1").v128Zero().set("s2");
  }, () => {
    at(stats, "x").get("co").i32op("add").v128Load().get("m").f32x4("sub").set("d");
    stats.get("s1").get("d").f32x4("add").set("s1");
    stats.fma(() => stats.get("d"), () => stats.get("d"), () => stats.get("s2")).set("s2");
  }, () => {
    vec(stats, "out").get("s1").v128Store();
    vec(stats, "out", true).get("s2").v128Store();
  });

  // y = x·a + b, and with SiLU: sig = sigmoid(y), y = y·sig.
  const affine = (silu: boolean) => {
    const params = ["x", "nPix", "C", "a", "b", "y"];
    if (silu) params.push("sig");
    const f = start(silu ? "gnAffineSilu" : "gnAffine", params);
    f.locals("v128", "av", "bv", "z", "s", "t", "k");
    if (silu) sigmoidConstants(f);
    channelLoop(f, () => {
      vec(f, "a").v128Load().set("av");
      vec(f, "b").v128Load().set("bv");
    }, () => {
      f.fma(
        () => at(f, "x").get("co").i32op("add").v128Load(),
        () => f.get("av"),
        () => f.get("bv"),
      ).set("z");
      if (silu) {
        sigmoid(f, "z", "s", "t", "k");
        at(f, "sig").get("co").i32op("add").get("s").v128Store();
        f.get("z").get("s").f32x4("mul").set("z");
      }
      at(f, "y").get("co").i32op("add").get("z").v128Store();
    }, () => {});
    return f;
  };

  // Backward pass 1 with SiLU: d = dy·sig·(1 + pre·(1 − sig)), pre = x·a + b; sums Σd, Σd·x.
  const back1 = start("gnBack1Silu", ["x", "dy", "sig", "nPix", "C", "a", "b", "dpre", "sums"]);
  back1.locals("v128", "av", "bv", "v", "sg", "d", "s1", "s2");
  channelLoop(back1, () => {
    vec(back1, "a").v128Load().set("av");
    vec(back1, "b").v128Load().set("bv");
    back1.v128Zero().set("s1").v128Zero().set("s2");
  }, () => {
    const f = back1;
    at(f, "x").get("co").i32op("add").v128Load().set("v");
    at(f, "sig").get("co").i32op("add").v128Load().set("sg");
    // d = dy·sg·(1 + (v·a + b)·(1 − sg))
    f.fma(() => f.get("v"), () => f.get("av"), () => f.get("bv")).set("d");
    f.fma(
      () => f.get("d"),
      () => f.f32x4Const(1).get("sg").f32x4("sub"),
      () => f.f32x4Const(1),
    ).set("d");
    at(f, "dy").get("co").i32op("add").v128Load().get("sg").f32x4("mul").get("d").f32x4("mul")
      .set("d");
    at(f, "dpre").get("co").i32op("add").get("d").v128Store();
    f.get("s1").get("d").f32x4("add").set("s1");
    f.fma(() => f.get("d"), () => f.get("v"), () => f.get("s2")).set("s2");
  }, () => {
    vec(back1, "sums").get("s1").v128Store();
    vec(back1, "sums", true).get("s2").v128Store();
  });

  // Backward pass 1 without SiLU: sums Σdy, Σdy·x.
  const back1p = start("gnBack1", ["x", "dy", "nPix", "C", "sums"]);
  back1p.locals("v128", "d", "s1", "s2");
  channelLoop(back1p, () => {
    back1p.v128Zero().set("s1").v128Zero().set("s2");
  }, () => {
    const f = back1p;
    at(f, "dy").get("co").i32op("add").v128Load().set("d");
    f.get("s1").get("d").f32x4("add").set("s1");
    f.fma(() => f.get("d"), () => at(f, "x").get("co").i32op("add").v128Load(), () => f.get("s2"))
      .set("s2");
  }, () => {
    vec(back1p, "sums").get("s1").v128Store();
    vec(back1p, "sums", true).get("s2").v128Store();
  });

  // Backward pass 2: dx = d·A + x·P + Q.
  const back2 = start("gnBack2", ["d", "x", "nPix", "C", "A", "P", "Q", "dx"]);
  back2.locals("v128", "av", "pv", "qv");
  channelLoop(back2, () => {
    vec(back2, "A").v128Load().set("av");
    vec(back2, "P").v128Load().set("pv");
    vec(back2, "Q").v128Load().set("qv");
  }, () => {
    const f = back2;
    at(f, "dx").get("co").i32op("add");
    f.fma(
      () => at(f, "d").get("co").i32op("add").v128Load(),
      () => f.get("av"),
      () =>
        f.fma(
          () => at(f, "x").get("co").i32op("add").v128Load(),
          () => f.get("pv"),
          () => f.get("qv"),
        ),
    );
    f.v128Store();
  }, () => {});

  return [stats, affine(false), affine(true), back1, back1p, back2];
}

/** copyRows(src, dst, nRows, len, sStride, dStride): nRows blocks of len bytes (len % 16 == 0). */
function copyRowsFunc(relaxed: boolean): Func {
  const f = new Func(
    "copyRows",
    ["src", "dst", "nRows", "len", "sStride", "dStride"].map((n) => [n, "i32"]),
    relaxed,
  );
  f.locals("i32", "r", "o");
  f.get("nRows").set("r");
  f.loop(() => {
    f.i32(0).set("o");
    f.loop(() => {
      f.get("dst").get("o").i32op("add");
      f.get("src").get("o").i32op("add").v128Load();
      f.v128Store();
      f.inc("o", 16);
      f.get("o").get("len").i32op("lt_s").brIf(0);
    });
    f.inc("src", "sStride").inc("dst", "dStride");
    f.get("r").i32(1).i32op("sub").tee("r").brIf(0);
  });
  return f;
}

/**
 * pool2(dy, dx, nRows, W, C): dx [nRows, W, C] = sum of each 2×2 block of dy [2·nRows, 2W, C]
 * (the gradient of nearest ×2 upsampling). C % 4 == 0.
 */
function pool2Func(relaxed: boolean): Func {
  const f = new Func("pool2", ["dy", "dx", "nRows", "W", "C"].map((n) => [n, "i32"]), relaxed);
  f.locals("i32", "r", "j", "o", "rowB", "pixB", "a");
  f.get("C").i32(4).i32op("mul").set("pixB");
  f.get("W").get("pixB").i32op("mul").i32(2).i32op("mul").set("rowB"); // one dy row
  f.get("nRows").set("r");
  f.loop(() => {
    f.get("W").set("j");
    f.loop(() => {
      f.i32(0).set("o");
      f.loop(() => {
        f.get("dy").get("o").i32op("add").set("a");
        f.get("dx").get("o").i32op("add");
        f.get("a").v128Load().get("a").get("pixB").i32op("add").v128Load().f32x4("add");
        f.get("a").get("rowB").i32op("add").set("a");
        f.get("a").v128Load().f32x4("add");
        f.get("a").get("pixB").i32op("add").v128Load().f32x4("add");
        f.v128Store();
        f.inc("o", 16);
        f.get("o").get("pixB").i32op("lt_s").brIf(0);
      });
      f.inc("dx", "pixB");
      f.get("dy").get("pixB").i32op("add").get("pixB").i32op("add").set("dy");
      f.get("j").i32(1).i32op("sub").tee("j").brIf(0);
    });
    f.inc("dy", "rowB"); // skip the second row of the pair
    f.get("r").i32(1).i32op("sub").tee("r").brIf(0);
  });
  return f;
}

function build(relaxed: boolean): Func[] {
  return [
    opaFunc(relaxed),
    convFunc(relaxed),
    ...groupNormFuncs(relaxed),
    copyRowsFunc(relaxed),
    pool2Func(relaxed),
  ];
}

const cache = new WeakMap<object, SimdKernels>();

/** The wasm backend's linear memory. */
export function backendMemory(backend: WasmBackend): WebAssembly.Memory {
  const m = (backend as unknown as {
    wasm: { asm?: { memory?: WebAssembly.Memory }; wasmMemory?: WebAssembly.Memory };
  }).wasm;
  // The single-threaded build exports its memory; the threaded one creates it in JS.
  const mem = m.asm?.memory ?? m.wasmMemory;
  if (!(mem instanceof WebAssembly.Memory)) throw new Error("wasm backend memory not found");
  return mem;
}

/** Whether the kernels use fused multiply-add (relaxed SIMD); set on first `simdKernels`. */
export let usesRelaxedSimd: boolean | undefined;

/**
 * Compiles the kernels against `memory`, with fused multiply-add if `relaxed` (throws if the
 * engine lacks relaxed SIMD).
 */
export function instantiate(memory: WebAssembly.Memory, relaxed: boolean): SimdKernels {
  const shared = typeof SharedArrayBuffer !== "undefined" &&
    memory.buffer instanceof SharedArrayBuffer;
  const module = new WebAssembly.Module(assemble(build(relaxed), shared) as BufferSource);
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as SimdKernels;
}

/** The kernels bound to `backend`'s memory (compiled once per backend; FMA if available). */
export function simdKernels(backend: WasmBackend): SimdKernels {
  let k = cache.get(backend);
  if (k !== undefined) return k;
  const memory = backendMemory(backend);
  try {
    k = instantiate(memory, true);
    usesRelaxedSimd = true;
  } catch {
    k = instantiate(memory, false);
    usesRelaxedSimd = false;
  }
  cache.set(backend, k);
  return k;
}

/** Byte address of a tensor's data in the backend memory. */
export function addr(backend: WasmBackend, t: TI): number {
  const d = backend.dataIdMap.get(t.dataId);
  if (d === undefined) throw new Error("tensor not on the wasm backend");
  return d.memoryOffset;
}
