// A small builder of ONNX graphs over onnx-proto's generated message classes (protobufjs static
// code for onnx.proto): unique value names, nodes with typed attributes, float and int64
// initializers stored as little-endian raw_data (one copy, no per-element varints).
import onnxProto from 'onnx-proto';

export const { onnx } = onnxProto;
type Onnx = typeof onnxProto.onnx;
export type NodeProto = InstanceType<Onnx['NodeProto']>;
export type TensorProto = InstanceType<Onnx['TensorProto']>;
export type AttributeProto = InstanceType<Onnx['AttributeProto']>;

/** An attribute value: a number is an INT unless it is not an integer (then a FLOAT); use `floatAttr` for an integral FLOAT. */
export type AttrValue = number | number[] | string | { float: number };

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function leFloatBytes(data: Float32Array): Uint8Array {
  const out = new Uint8Array(data.byteLength);
  if (LITTLE_ENDIAN) out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  else {
    const v = new DataView(out.buffer);
    for (let i = 0; i < data.length; i++) v.setFloat32(i * 4, data[i], true);
  }
  return out;
}

function leInt64Bytes(data: readonly number[]): Uint8Array {
  const out = new Uint8Array(data.length * 8);
  const v = new DataView(out.buffer);
  data.forEach((d, i) => v.setBigInt64(i * 8, BigInt(d), true));
  return out;
}

function attribute(name: string, value: AttrValue): AttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return onnx.AttributeProto.create({ name, type: T.STRING, s: new TextEncoder().encode(value) });
  if (Array.isArray(value)) return onnx.AttributeProto.create({ name, type: T.INTS, ints: value });
  if (typeof value === 'object') return onnx.AttributeProto.create({ name, type: T.FLOAT, f: value.float });
  if (Number.isInteger(value)) return onnx.AttributeProto.create({ name, type: T.INT, i: value });
  return onnx.AttributeProto.create({ name, type: T.FLOAT, f: value });
}

export class OnnxGraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly taken = new Set<string>();

  /** A value name not used yet, from `base` (ONNX names are graph-wide and must be unique). */
  unique(base: string): string {
    const clean = base.replace(/[^A-Za-z0-9_./:-]/g, '_') || 'value';
    let name = clean;
    for (let k = 1; this.taken.has(name); k++) name = `${clean}_${k}`;
    this.taken.add(name);
    return name;
  }

  /** Reserves a name exactly (graph inputs and outputs). */
  reserve(name: string): string {
    if (this.taken.has(name)) throw new Error(`ONNX value name ${name} is used twice`);
    this.taken.add(name);
    return name;
  }

  /** Adds a node of `op` on `inputs` ('' for an optional input left out) with one output per entry of `outputs` (names made unique; '' leaves an optional output out); returns the output names. */
  node(op: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, exact = false): string[] {
    const outs = outputs.map((o) => (o === '' ? '' : exact ? o : this.unique(o)));
    this.nodes.push(onnx.NodeProto.create({
      opType: op,
      name: this.unique(`${op}:${outs.find((o) => o !== '') ?? op}`),
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    }));
    return outs;
  }

  /** One-output node. */
  op(op: string, inputs: string[], output: string, attrs: Record<string, AttrValue> = {}): string {
    return this.node(op, inputs, [output], attrs)[0];
  }

  /** A float32 initializer (copied). */
  floats(name: string, dims: readonly number[], data: Float32Array): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`ONNX initializer ${name}: ${data.length} values for dims [${dims}]`);
    const unique = this.unique(name);
    this.initializers.push(onnx.TensorProto.create({ name: unique, dims: [...dims], dataType: onnx.TensorProto.DataType.FLOAT, rawData: leFloatBytes(data) }));
    return unique;
  }

  /** An int64 initializer (shapes, axes). */
  int64s(name: string, data: readonly number[]): string {
    const unique = this.unique(name);
    this.initializers.push(onnx.TensorProto.create({ name: unique, dims: [data.length], dataType: onnx.TensorProto.DataType.INT64, rawData: leInt64Bytes(data) }));
    return unique;
  }
}

/** A float32 tensor type with a symbolic batch dimension first (dim_param) and fixed dimensions after it. */
export function floatValueInfo(name: string, batchParam: string, dims: readonly number[]) {
  return tensorValueInfo(name, onnx.TensorProto.DataType.FLOAT, batchParam, dims);
}

/** A tensor type of element type `elemType` (e.g. INT64 ids) with a symbolic batch dimension first and fixed dimensions after it. */
export function tensorValueInfo(name: string, elemType: number, batchParam: string, dims: readonly number[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType,
        shape: onnx.TensorShapeProto.create({
          dim: [onnx.TensorShapeProto.Dimension.create({ dimParam: batchParam }), ...dims.map((d) => onnx.TensorShapeProto.Dimension.create({ dimValue: d }))],
        }),
      }),
    }),
  });
}
