/**
 * A small ONNX graph builder over the protobufjs-generated types of the `onnx-proto` package:
 * nodes with typed attributes, initializers from typed arrays, graph inputs/outputs with
 * symbolic dimensions, and serialisation to bytes. No hand-written protobuf encoding.
 */
import onnxProto from "onnx-proto";

/** The `onnx` namespace of onnx-proto (a CommonJS module, so it comes in as the default). */
export const onnx = onnxProto.onnx;
export type TensorProto = InstanceType<typeof onnx.TensorProto>;

/** ONNX tensor element types used by the exporter. */
export const DataType = {
  FLOAT: onnx.TensorProto.DataType.FLOAT,
  INT8: onnx.TensorProto.DataType.INT8,
  INT64: onnx.TensorProto.DataType.INT64,
  FLOAT16: onnx.TensorProto.DataType.FLOAT16,
} as const;

/** An explicit float attribute (plain numbers that are integers would become INT). */
export class FloatAttr {
  constructor(readonly value: number) {}
}
/** Mark a number as a FLOAT attribute. */
export const float = (value: number): FloatAttr => new FloatAttr(value);

/** Attribute values: integers → INT, integer arrays → INTS, FloatAttr → FLOAT, string → STRING. */
export type AttrValue = number | number[] | string | FloatAttr;

/** A dimension: a fixed size or a symbolic name such as "N". */
export type Dim = number | string;

/** IR version that goes with an opset (ONNX release table; ORT accepts newer IR for older opsets). */
export function irVersionFor(opset: number): number {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

function attribute(name: string, v: AttrValue) {
  const A = onnx.AttributeProto.AttributeType;
  if (v instanceof FloatAttr) return { name, type: A.FLOAT, f: v.value };
  if (typeof v === "string") {
    return { name, type: A.STRING, s: new TextEncoder().encode(v) };
  }
  if (Array.isArray(v)) {
    if (!v.every(Number.isInteger)) throw new Error(`attribute ${name}: INTS must be integers`);
    return { name, type: A.INTS, ints: v };
  }
  if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use float() for FLOAT`);
  return { name, type: A.INT, i: v };
}

function valueInfo(name: string, elemType: number, shape: Dim[]) {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: {
          dim: shape.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }),
        },
      },
    },
  };
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  // Copy so later changes to the source array cannot alter the model. ONNX raw data is
  // little-endian, as are typed arrays on every platform Deno runs on.
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
}

/** Builds one ONNX graph; every value is a tensor name (string). */
export class GraphBuilder {
  readonly nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  readonly initializers: TensorProto[] = [];
  readonly inputs: ReturnType<typeof valueInfo>[] = [];
  readonly outputs: ReturnType<typeof valueInfo>[] = [];
  private counters = new Map<string, number>();
  private names = new Set<string>();
  private int64Consts = new Map<string, string>();
  private floatConsts = new Map<string, string>();

  /** An unused name `<prefix>_<k>`, not yet taken (pass it to `initializer`, which takes it). */
  freshName(prefix: string): string {
    let k = this.counters.get(prefix) ?? 0;
    let name: string;
    do name = `${prefix}_${k++}`; while (this.names.has(name));
    this.counters.set(prefix, k);
    return name;
  }

  /** A fresh tensor or node name `<prefix>_<k>`, taken at once. */
  uid(prefix: string): string {
    const name = this.freshName(prefix);
    this.names.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`duplicate tensor name ${name}`);
    this.names.add(name);
    return name;
  }

  /** Append a node; returns its output names (fresh unless `outputs` names them). */
  nodeN(
    op: string,
    inputs: string[],
    nOut: number,
    attrs: Record<string, AttrValue> = {},
    outputs?: string[],
  ): string[] {
    const outs = outputs?.map((o) => this.claim(o)) ??
      Array.from({ length: nOut }, () => this.uid(op.toLowerCase()));
    this.nodes.push(onnx.NodeProto.create({
      opType: op,
      name: this.uid(`n_${op}`),
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    }));
    return outs;
  }

  /** Append a single-output node; returns its output name. */
  node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, output?: string) {
    return this.nodeN(op, inputs, 1, attrs, output === undefined ? undefined : [output])[0];
  }

  /** Add an initializer with explicit name, element type, dims and raw little-endian data. */
  initializer(name: string, dataType: number, dims: number[], data: ArrayBufferView): string {
    const n = dims.reduce((a, b) => a * b, 1);
    const bpe = (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
    if (data.byteLength / bpe !== n) {
      throw new Error(`initializer ${name}: ${data.byteLength / bpe} values for dims [${dims}]`);
    }
    this.initializers.push(onnx.TensorProto.create({
      name: this.claim(name),
      dataType,
      dims,
      rawData: bytesOf(data),
    }));
    return name;
  }

  /** A float32 initializer. */
  float32(name: string, dims: number[], data: Float32Array): string {
    return this.initializer(name, DataType.FLOAT, dims, data);
  }

  /** A shared int64 constant (shapes, axes), deduplicated by value. */
  int64(values: number[], dims: number[] = [values.length]): string {
    const key = `${dims}:${values}`;
    let name = this.int64Consts.get(key);
    if (name === undefined) {
      name = this.initializer(
        this.freshName("i64"),
        DataType.INT64,
        dims,
        BigInt64Array.from(values, (v) => BigInt(v)),
      );
      this.int64Consts.set(key, name);
    }
    return name;
  }

  /** A shared float32 constant, deduplicated by value. */
  floatConst(values: number[], dims: number[] = [values.length]): string {
    const key = `${dims}:${values}`;
    let name = this.floatConsts.get(key);
    if (name === undefined) {
      name = this.float32(this.freshName("f32"), dims, Float32Array.from(values));
      this.floatConsts.set(key, name);
    }
    return name;
  }

  /** Declare a graph input. */
  input(name: string, elemType: number, shape: Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), elemType, shape));
    return name;
  }

  /** Declare a graph output (the tensor must be produced under this name, e.g. by Identity). */
  output(name: string, elemType: number, shape: Dim[]): void {
    this.outputs.push(valueInfo(name, elemType, shape));
  }

  /** Serialise as a ModelProto. */
  toBytes(opts: { name: string; opset: number; producer?: string; doc?: string }): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: irVersionFor(opts.opset),
      producerName: opts.producer ?? "ddpm-edge",
      producerVersion: "1",
      docString: opts.doc ?? "",
      opsetImport: [{ domain: "", version: opts.opset }],
      graph: {
        name: opts.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    const buf = onnx.ModelProto.encode(model).finish();
    // protobufjs may hand back a Node Buffer view; return a plain, exactly sized Uint8Array.
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength).slice();
  }
}

/** Decode a model (tests and inspection). */
export function decodeModel(bytes: Uint8Array) {
  return onnx.ModelProto.decode(bytes);
}
