/**
 * A minimal WebAssembly assembler for the project's hand-written SIMD kernels: functions over
 * i32/f32/v128 locals that work on an imported linear memory (the tfjs wasm backend's own heap,
 * so kernels read and write tensors in place). Only the instructions the kernels use are here.
 *
 * Control flow is structured: `block`/`loop`/`ifThen` take a body callback; `br`/`brIf` take a
 * relative depth as in the binary format (0 = innermost enclosing block/loop/if).
 */

export type ValType = "i32" | "f32" | "v128";

const TYPE_CODE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, v128: 0x7b };

function uleb(n: number, out: number[]): void {
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
}

function sleb(n: number, out: number[]): void {
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

function str(s: string, out: number[]): void {
  const b = new TextEncoder().encode(s);
  uleb(b.length, out);
  out.push(...b);
}

/** i32 binary/compare operators by name. */
const I32_OPS = {
  add: 0x6a,
  sub: 0x6b,
  mul: 0x6c,
  and: 0x71,
  shl: 0x74,
  eq: 0x46,
  ne: 0x47,
  lt_s: 0x48,
  gt_s: 0x4a,
  le_s: 0x4c,
  ge_s: 0x4e,
} as const;

/** f32x4 operators by SIMD opcode. */
const F32X4_OPS = {
  neg: 0xe1,
  add: 0xe4,
  sub: 0xe5,
  mul: 0xe6,
  div: 0xe7,
  min: 0xe8,
  max: 0xe9,
} as const;

/** Integer lane operators by SIMD opcode (i32x4). */
const I32X4_OPS = { shl: 0xab, add: 0xae } as const;

/** Builds one function body. Locals are referred to by name. */
export class Func {
  readonly code: number[] = [];
  private readonly index = new Map<string, { i: number; type: ValType }>();
  private readonly extra: ValType[] = [];
  readonly params: ValType[];

  /**
   * @param relaxed emit `f32x4.relaxed_madd` for `fma` (one fused instruction where the engine
   *   supports it) instead of mul + add.
   */
  constructor(
    readonly name: string,
    params: [string, ValType][],
    readonly relaxed: boolean,
  ) {
    this.params = params.map(([, t]) => t);
    params.forEach(([n, t], i) => this.index.set(n, { i, type: t }));
  }

  /** Declares locals (all of one type). */
  locals(type: ValType, ...names: string[]): this {
    for (const n of names) {
      if (this.index.has(n)) throw new Error(`local ${n} declared twice`);
      this.index.set(n, { i: this.params.length + this.extra.length, type });
      this.extra.push(type);
    }
    return this;
  }

  private idx(name: string): number {
    const l = this.index.get(name);
    if (l === undefined) throw new Error(`${this.name}: unknown local ${name}`);
    return l.i;
  }

  get(name: string): this {
    this.code.push(0x20);
    uleb(this.idx(name), this.code);
    return this;
  }
  set(name: string): this {
    this.code.push(0x21);
    uleb(this.idx(name), this.code);
    return this;
  }
  tee(name: string): this {
    this.code.push(0x22);
    uleb(this.idx(name), this.code);
    return this;
  }
  i32(v: number): this {
    this.code.push(0x41);
    sleb(v | 0, this.code);
    return this;
  }
  i32op(op: keyof typeof I32_OPS): this {
    this.code.push(I32_OPS[op]);
    return this;
  }
  /** name = name + v (an i32 local). */
  inc(name: string, v: number | string): this {
    this.get(name);
    if (typeof v === "number") this.i32(v);
    else this.get(v);
    return this.i32op("add").set(name);
  }

  block(body: () => void): this {
    this.code.push(0x02, 0x40);
    body();
    this.code.push(0x0b);
    return this;
  }
  loop(body: () => void): this {
    this.code.push(0x03, 0x40);
    body();
    this.code.push(0x0b);
    return this;
  }
  /** Pops an i32 condition; runs `then` if non-zero, else `otherwise`. */
  ifThen(then: () => void, otherwise?: () => void): this {
    this.code.push(0x04, 0x40);
    then();
    if (otherwise) {
      this.code.push(0x05);
      otherwise();
    }
    this.code.push(0x0b);
    return this;
  }
  br(depth: number): this {
    this.code.push(0x0c);
    uleb(depth, this.code);
    return this;
  }
  brIf(depth: number): this {
    this.code.push(0x0d);
    uleb(depth, this.code);
    return this;
  }
  /** while (cond()) body(); — `cond` pushes an i32. Inside `body`, depth 0 is the loop. */
  whileLoop(cond: () => void, body: () => void): this {
    return this.block(() =>
      this.loop(() => {
        cond();
        this.code.push(0x45); // i32.eqz
        this.brIf(1);
        body();
        this.br(0);
      })
    );
  }

  private memarg(align: number, offset: number): void {
    uleb(align, this.code);
    uleb(offset, this.code);
  }
  private simd(op: number): void {
    this.code.push(0xfd);
    uleb(op, this.code);
  }
  /** f32 at (address on stack) + offset. */
  f32Load(offset = 0): this {
    this.code.push(0x2a);
    this.memarg(2, offset);
    return this;
  }
  /** Stores the f32 on top at the address below it (+ offset). */
  f32Store(offset = 0): this {
    this.code.push(0x38);
    this.memarg(2, offset);
    return this;
  }
  f32(v: number): this {
    this.code.push(0x43);
    const b = new Uint8Array(new Float32Array([v]).buffer);
    this.code.push(...b);
    return this;
  }
  f32Add(): this {
    this.code.push(0x92);
    return this;
  }
  f32Mul(): this {
    this.code.push(0x94);
    return this;
  }
  v128Load(offset = 0): this {
    this.simd(0x00);
    this.memarg(4, offset);
    return this;
  }
  v128Store(offset = 0): this {
    this.simd(0x0b);
    this.memarg(4, offset);
    return this;
  }
  /** Loads one f32 and splats it to all four lanes. */
  load32Splat(offset = 0): this {
    this.simd(0x09);
    this.memarg(2, offset);
    return this;
  }
  i32x4Splat(): this {
    this.simd(0x11);
    return this;
  }
  f32x4Splat(): this {
    this.simd(0x13);
    return this;
  }
  f32x4ExtractLane(lane: number): this {
    this.simd(0x1f);
    this.code.push(lane);
    return this;
  }
  v128Zero(): this {
    this.simd(0x0c);
    for (let i = 0; i < 16; i++) this.code.push(0);
    return this;
  }
  f32x4(op: keyof typeof F32X4_OPS): this {
    this.simd(F32X4_OPS[op]);
    return this;
  }
  i32x4(op: keyof typeof I32X4_OPS): this {
    this.simd(I32X4_OPS[op]);
    return this;
  }
  /** A v128 constant with four equal f32 lanes. */
  f32x4Const(v: number): this {
    this.simd(0x0c);
    const b = new Uint8Array(new Float32Array([v, v, v, v]).buffer);
    this.code.push(...b);
    return this;
  }
  /** Pushes a·b + c (each callback pushes one v128). */
  fma(a: () => void, b: () => void, c: () => void): this {
    if (this.relaxed) {
      a();
      b();
      c();
      this.simd(0x105); // f32x4.relaxed_madd
    } else {
      c();
      a();
      b();
      this.f32x4("mul").f32x4("add");
    }
    return this;
  }

  /** The function's code-section entry. */
  encode(): number[] {
    const body: number[] = [];
    // Run-length encode the extra locals' types.
    const runs: [number, ValType][] = [];
    for (const t of this.extra) {
      const last = runs[runs.length - 1];
      if (last && last[1] === t) last[0]++;
      else runs.push([1, t]);
    }
    uleb(runs.length, body);
    for (const [n, t] of runs) {
      uleb(n, body);
      body.push(TYPE_CODE[t]);
    }
    body.push(...this.code, 0x0b);
    const out: number[] = [];
    uleb(body.length, out);
    out.push(...body);
    return out;
  }
}

/**
 * A module of functions (no results) that import one memory as env.memory. `shared` must match
 * the memory that will be imported (threaded wasm builds use a shared memory).
 */
export function assemble(funcs: Func[], shared: boolean): Uint8Array {
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const section = (id: number, content: number[]) => {
    out.push(id);
    uleb(content.length, out);
    out.push(...content);
  };
  const types: number[] = [];
  uleb(funcs.length, types);
  for (const f of funcs) {
    types.push(0x60);
    uleb(f.params.length, types);
    for (const p of f.params) types.push(TYPE_CODE[p]);
    types.push(0x00);
  }
  section(1, types);
  const imports: number[] = [1];
  str("env", imports);
  str("memory", imports);
  imports.push(0x02);
  if (shared) {
    imports.push(0x03);
    uleb(1, imports);
    uleb(65536, imports);
  } else {
    imports.push(0x00);
    uleb(1, imports);
  }
  section(2, imports);
  const fns: number[] = [];
  uleb(funcs.length, fns);
  funcs.forEach((_, i) => uleb(i, fns));
  section(3, fns);
  const exps: number[] = [];
  uleb(funcs.length, exps);
  funcs.forEach((f, i) => {
    str(f.name, exps);
    exps.push(0x00);
    uleb(i, exps);
  });
  section(7, exps);
  const code: number[] = [];
  uleb(funcs.length, code);
  for (const f of funcs) code.push(...f.encode());
  section(10, code);
  return new Uint8Array(out);
}
