// ONNX export of a model and its parameters, for inference in any ONNX runtime (ONNX Runtime on
// servers and phones, ORT-Web, TensorRT, OpenVINO). One rule per layer class (EXPORT_RULES) maps
// the layer to standard ONNX ops at opset ONNX_OPSET; a layer class without a rule is an
// OnnxExportError naming it, never a silently wrong graph.
//
// The exported graph:
//   input          float32 [batch, ...model input shape], batch-major as a user holds examples
//                  (MNIST nets: [batch, 784] or, for the rnn, [batch, 28, 28]), pixels u8 / 255;
//                  for a model whose input feeds Embedding layers, int64 ids [batch, T] (0 .. input_dim − 1;
//                  the engine takes them as u32).
//   Normalization  BatchNormalization → ONNX BatchNormalization (running statistics) inside a Transpose
//                  pair moving the channels to axis 1; LayerNormalization → ONNX LayerNormalization;
//                  gelu → 0.5·x·(1 + Erf(x/√2)) (opset 17 has no Gelu).
//   logits         float32 [batch, classes]: the engine's logits (cross-entropy: before the softmax the
//                  loss folds in; mean squared error: the outputs themselves).
//   probabilities  float32 [batch, classes]: softmax(logits) for cross-entropy models, the outputs
//                  themselves for MSE models (as Trainer.predict gives them).
// Layouts inside the graph: tensors stay channels-last as in the engine (NHWC); each Conv and pool
// is wrapped in Transposes to NCHW and back (ORT's transpose optimizer cancels back-to-back pairs).
// Recurrent layers run time-major ([T, batch, F], ONNX layout 0, as the engine runs them): one
// Transpose after the input, and sequences between stacked recurrent layers stay time-major.
// Inference only: Dropout is left out.
import type { Layer, ActivationName } from '../nn/layers.js';
import { Recurrent, GATES } from '../nn/layers.js';
import type { Model } from '../nn/model.js';
import { modelToSpec } from '../nn/spec.js';
import { windowDim } from '../kernels/conv2d.js';
import { OnnxGraphBuilder, floatValueInfo, tensorValueInfo, onnx } from './graph-builder.js';

/** The one opset every exported model declares (default ONNX domain). */
export const ONNX_OPSET = 17;
/** ONNX IR version of opset 17 (ONNX 1.12). */
export const ONNX_IR_VERSION = 8;

/** A model that cannot be exported; the message names the layer and says what to do. */
export class OnnxExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxExportError';
  }
}

/** Parameter values by name, as ParamStore.read() gives them. */
export type ParamValues = Record<string, { shape: number[]; data: Float32Array }>;

/** Options of exportOnnx: class names and input scaling for the metadata. */
export interface OnnxExportOptions {
  /** Class names, one per output (metadata `classes`); default "0", "1", ... */
  classNames?: string[];
  /** How raw data becomes the model's input (metadata `input_scaling`); default MNIST's "u8/255". */
  inputScaling?: string;
  /** Extra metadata_props entries (strings). */
  metadata?: Record<string, string>;
}

/** An ONNX value of the graph being built: its name and whether it is batch-major or a time-major sequence. */
export interface OnnxValue {
  name: string;
  /** 'rows': [batch, ...per-example shape]; 'time-major': [T, batch, features]. */
  layout: 'rows' | 'time-major';
}

/** What a rule gets to export one layer. */
export interface ExportContext {
  b: OnnxGraphBuilder;
  layer: Layer;
  /** The layer's inputs, in order. */
  inputs: OnnxValue[];
  /** Per-example shapes of the inputs (no batch dimension), and of the output. */
  inputShapes: number[][];
  outputShape: number[];
  /** A parameter's values; throws OnnxExportError naming the layer when missing or of another shape. */
  param(name: string, shape: number[]): Float32Array;
  /** The layer is the model's output of a cross-entropy model: its softmax is the loss's (leave it out of the logits). */
  foldSoftmax: boolean;
  /** A value name prefix for this layer's nodes and initializers. */
  prefix: string;
}

/** How one layer class becomes ONNX nodes (one entry of EXPORT_RULES). */
export interface ExportRule {
  /** Whether the rule reads time-major sequences (recurrent layers and Dropout); others get batch-major values only. */
  readsSequences?: boolean;
  /** Adds the layer's nodes and initializers; returns the value of its output. */
  export(ctx: ExportContext): OnnxValue;
}

// ------------------------------------------------------------------ helpers shared by the rules

const rows = (name: string): OnnxValue => ({ name, layout: 'rows' });

/** The layer's activation after its op (a final softmax left out when the loss folds it in). */
function activate(ctx: ExportContext, x: string, act: ActivationName): string {
  const { b, prefix } = ctx;
  switch (act) {
    case 'linear': return x;
    case 'relu': return b.op('Relu', [x], `${prefix}/relu`);
    case 'sigmoid': return b.op('Sigmoid', [x], `${prefix}/sigmoid`);
    case 'tanh': return b.op('Tanh', [x], `${prefix}/tanh`);
    case 'gelu': {
      // opset 17 has no Gelu (opset 20): the exact (erf) form the engine computes, 0.5·x·(1 + Erf(x/√2))
      const e = b.op('Erf', [b.op('Div', [x, b.floats(`${prefix}/sqrt2`, [], Float32Array.of(Math.SQRT2))], `${prefix}/gelu_scaled`)], `${prefix}/gelu_erf`);
      const cdf2 = b.op('Add', [e, b.floats(`${prefix}/one`, [], Float32Array.of(1))], `${prefix}/gelu_cdf2`);
      return b.op('Mul', [b.op('Mul', [x, cdf2], `${prefix}/gelu_x_cdf2`), b.floats(`${prefix}/half`, [], Float32Array.of(0.5))], `${prefix}/gelu`);
    }
    case 'softmax': return ctx.foldSoftmax ? x : b.op('Softmax', [x], `${prefix}/softmax`, { axis: -1 });
    default: throw new OnnxExportError(`layer ${ctx.layer.describe()}: activation ${JSON.stringify(act)} has no ONNX export rule`);
  }
}

interface LayerFields {
  paramNames?: { kernel?: string; bias?: string };
}

function paramName(layer: Layer, which: 'kernel' | 'bias'): string {
  return (layer as Layer & LayerFields).paramNames?.[which] ?? `${layer.name}/${which}`;
}

/** NHWC → NCHW, op, NCHW → NHWC (TF's SAME padding made explicit, the odd pixel after). */
function channelsFirst(ctx: ExportContext, op: string, extraInputs: string[], attrs: Record<string, number | number[]>): string {
  const { b, prefix } = ctx;
  const nchw = b.op('Transpose', [ctx.inputs[0].name], `${prefix}/nchw`, { perm: [0, 3, 1, 2] });
  const y = b.op(op, [nchw, ...extraInputs], `${prefix}/${op.toLowerCase()}`, attrs);
  return b.op('Transpose', [y], `${prefix}/nhwc`, { perm: [0, 2, 3, 1] });
}

function windowAttrs(ctx: ExportContext, kernel: [number, number], strides: [number, number], padding: 'same' | 'valid') {
  const [H, W] = ctx.inputShapes[0];
  const pad = padding === 'same' ? 'SAME' : 'VALID';
  const h = windowDim(ctx.layer.describe(), H, kernel[0], strides[0], pad);
  const w = windowDim(ctx.layer.describe(), W, kernel[1], strides[1], pad);
  return { kernel_shape: [...kernel], strides: [...strides], pads: [h.padBefore, w.padBefore, h.padAfter, w.padAfter] };
}

// ------------------------------------------------------------------ the rules

interface DenseLike { units: number; activation: ActivationName; useBias: boolean }
interface ConvLike { filters: number; kernelSize: [number, number]; strides: [number, number]; padding: 'same' | 'valid'; activation: ActivationName; useBias: boolean }
interface PoolLike { poolSize: [number, number]; strides: [number, number]; padding: 'same' | 'valid' }

/** ONNX's gate order as blocks of this engine's weight matrix (src/kernels/recurrent.ts: LSTM i, a, f, o; GRU r, u, c). */
export const ONNX_GATE_ORDER: Record<'lstm' | 'gru' | 'rnn', readonly number[]> = {
  lstm: [0, 3, 2, 1], // ONNX i, o, f, c  ←  engine i, o, f, a (a is TF's j, the candidate)
  gru: [1, 0, 2], //     ONNX z, r, h     ←  engine u, r, c
  rnn: [0],
};

const RECURRENT_OP = { lstm: 'LSTM', gru: 'GRU', rnn: 'RNN' } as const;

const recurrentRule: ExportRule = {
  readsSequences: true,
  export(ctx) {
    const { b, prefix } = ctx;
    const l = ctx.layer as Recurrent;
    const I = ctx.inputShapes[0][1];
    const H = l.units, G = GATES[l.cell];
    const w = ctx.param(paramName(l, 'kernel'), [I + H, G * H]);
    const bias = ctx.param(paramName(l, 'bias'), [G * H]);
    // ONNX W [1, G·H, I] and R [1, G·H, H] hold each gate's rows transposed; B [1, 2·G·H] is Wb then Rb.
    const W = new Float32Array(G * H * I), R = new Float32Array(G * H * H), B = new Float32Array(2 * G * H);
    ONNX_GATE_ORDER[l.cell].forEach((e, g) => {
      for (let j = 0; j < H; j++) {
        const col = e * H + j, row = g * H + j;
        for (let k = 0; k < I; k++) W[row * I + k] = w[k * G * H + col];
        for (let k = 0; k < H; k++) R[row * H + k] = w[(I + k) * G * H + col];
        B[row] = bias[col];
      }
    });
    // The engine adds its LSTM forget bias (TF BasicLSTMCell's forget_bias) in the cell: fold it into Wb's f block.
    if (l.cell === 'lstm') for (let j = 0; j < H; j++) B[2 * H + j] += l.forgetBias;
    let x = ctx.inputs[0];
    if (x.layout === 'rows') x = { name: b.op('Transpose', [x.name], `${prefix}/time_major`, { perm: [1, 0, 2] }), layout: 'time-major' };
    const attrs: Record<string, number> = { hidden_size: H };
    // The engine's GRU applies r to h before the candidate's matmul (TF GRUCell): ONNX linear_before_reset = 0.
    if (l.cell === 'gru') attrs.linear_before_reset = 0;
    const inputs = [x.name, b.floats(`${prefix}/W`, [1, G * H, I], W), b.floats(`${prefix}/R`, [1, G * H, H], R), b.floats(`${prefix}/B`, [1, 2 * G * H], B)];
    const op = RECURRENT_OP[l.cell];
    if (l.returnSequences) {
      // Y [T, 1, batch, H] → the time-major sequence [T, batch, H] the next recurrent layer reads
      const [y] = b.node(op, inputs, [`${prefix}/Y`], attrs);
      return { name: b.op('Squeeze', [y, b.int64s(`${prefix}/axes`, [1])], `${prefix}/sequence`), layout: 'time-major' };
    }
    const [, yh] = b.node(op, inputs, ['', `${prefix}/Y_h`], attrs);
    return rows(b.op('Squeeze', [yh, b.int64s(`${prefix}/axes`, [0])], `${prefix}/last`));
  },
};

const poolRule = (op: 'MaxPool' | 'AveragePool'): ExportRule => ({
  export(ctx) {
    const p = ctx.layer as Layer & PoolLike;
    const attrs: Record<string, number | number[]> = windowAttrs(ctx, p.poolSize, p.strides, p.padding);
    // TF (and the engine) average only the in-bounds elements of a padded window
    if (op === 'AveragePool') attrs.count_include_pad = 0;
    return rows(channelsFirst(ctx, op, [], attrs));
  },
});

interface NormLike { epsilon: number; center: boolean; scale: boolean }

/** γ and β of a normalization layer over C features: its parameters, or ones and zeros where it learns none. */
function normAffine(ctx: ExportContext, C: number): { gamma: string; beta: string } {
  const { b, prefix } = ctx;
  const n = ctx.layer as Layer & NormLike;
  const name = ctx.layer.name!;
  return {
    gamma: b.floats(`${prefix}/gamma`, [C], n.scale ? ctx.param(`${name}/gamma`, [C]) : new Float32Array(C).fill(1)),
    beta: b.floats(`${prefix}/beta`, [C], n.center ? ctx.param(`${name}/beta`, [C]) : new Float32Array(C)),
  };
}

/** One export rule per layer class (className): add a rule here to export a new layer. */
export const EXPORT_RULES: Record<string, ExportRule> = {
  Dense: {
    export(ctx) {
      const { b, prefix } = ctx;
      const d = ctx.layer as Layer & DenseLike;
      const inShape = ctx.inputShapes[0];
      const inSize = inShape[inShape.length - 1];
      // MatMul broadcasts over leading axes: Keras' Dense on the last axis of any rank
      let y = b.op('MatMul', [ctx.inputs[0].name, b.floats(`${prefix}/kernel`, [inSize, d.units], ctx.param(paramName(d, 'kernel'), [inSize, d.units]))], `${prefix}/matmul`);
      if (d.useBias) y = b.op('Add', [y, b.floats(`${prefix}/bias`, [d.units], ctx.param(paramName(d, 'bias'), [d.units]))], `${prefix}/biased`);
      return rows(activate(ctx, y, d.activation));
    },
  },
  Conv2D: {
    export(ctx) {
      const { b, prefix } = ctx;
      const c = ctx.layer as Layer & ConvLike;
      const [kh, kw] = c.kernelSize;
      const C = ctx.inputShapes[0][2], M = c.filters;
      // the engine's filter [kh, kw, C, M] → ONNX's [M, C, kh, kw]
      const f = ctx.param(paramName(c, 'kernel'), [kh, kw, C, M]);
      const oihw = new Float32Array(f.length);
      for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) for (let ci = 0; ci < C; ci++) for (let m = 0; m < M; m++) {
        oihw[((m * C + ci) * kh + y) * kw + x] = f[((y * kw + x) * C + ci) * M + m];
      }
      const extra = [b.floats(`${prefix}/kernel`, [M, C, kh, kw], oihw)];
      if (c.useBias) extra.push(b.floats(`${prefix}/bias`, [M], ctx.param(paramName(c, 'bias'), [M])));
      const y = channelsFirst(ctx, 'Conv', extra, { ...windowAttrs(ctx, c.kernelSize, c.strides, c.padding), dilations: [1, 1], group: 1 });
      return rows(activate(ctx, y, c.activation));
    },
  },
  MaxPooling2D: poolRule('MaxPool'),
  AveragePooling2D: poolRule('AveragePool'),
  GlobalAveragePooling2D: {
    export(ctx) {
      // mean over H and W of NHWC (opset 17: axes is an attribute)
      return rows(ctx.b.op('ReduceMean', [ctx.inputs[0].name], `${ctx.prefix}/mean`, { axes: [1, 2], keepdims: 0 }));
    },
  },
  Flatten: {
    export(ctx) {
      return rows(ctx.b.op('Flatten', [ctx.inputs[0].name], `${ctx.prefix}/flat`, { axis: 1 }));
    },
  },
  Reshape: {
    export(ctx) {
      // -1 takes the batch: the per-example shape is known
      return rows(ctx.b.op('Reshape', [ctx.inputs[0].name, ctx.b.int64s(`${ctx.prefix}/shape`, [-1, ...ctx.outputShape])], `${ctx.prefix}/reshaped`));
    },
  },
  Dropout: {
    readsSequences: true,
    export: (ctx) => ctx.inputs[0], // identity at inference
  },
  Activation: {
    export(ctx) {
      return rows(activate(ctx, ctx.inputs[0].name, (ctx.layer as Layer & { activation: ActivationName }).activation));
    },
  },
  Add: {
    export(ctx) {
      let y = ctx.inputs[0].name;
      for (let i = 1; i < ctx.inputs.length; i++) y = ctx.b.op('Add', [y, ctx.inputs[i].name], `${ctx.prefix}/sum`);
      return rows(y);
    },
  },
  Concatenate: {
    export(ctx) {
      return rows(ctx.b.op('Concat', ctx.inputs.map((v) => v.name), `${ctx.prefix}/joined`, { axis: -1 }));
    },
  },
  BatchNormalization: {
    export(ctx) {
      // ONNX BatchNormalization (inference: training_mode 0, the running statistics) normalizes axis 1:
      // [batch, F] as it is; [batch, ..., C] (NHWC images) moved to [batch, C, ...] and back by a
      // Transpose pair, which ORT's transpose optimizer cancels against a Conv's own pair.
      const { b, prefix } = ctx;
      const n = ctx.layer as Layer & NormLike;
      const shape = ctx.inputShapes[0];
      const C = shape[shape.length - 1], r = shape.length + 1;
      const name = ctx.layer.name!;
      const { gamma, beta } = normAffine(ctx, C);
      const mean = b.floats(`${prefix}/moving_mean`, [C], ctx.param(`${name}/moving_mean`, [C]));
      const variance = b.floats(`${prefix}/moving_variance`, [C], ctx.param(`${name}/moving_variance`, [C]));
      const attrs = { epsilon: { float: n.epsilon } };
      if (r === 2) return rows(b.op('BatchNormalization', [ctx.inputs[0].name, gamma, beta, mean, variance], `${prefix}/normalized`, attrs));
      const toFirst = [0, r - 1, ...Array.from({ length: r - 2 }, (_, i) => i + 1)];
      const toLast = [0, ...Array.from({ length: r - 2 }, (_, i) => i + 2), 1];
      const x = b.op('Transpose', [ctx.inputs[0].name], `${prefix}/channels_first`, { perm: toFirst });
      const y = b.op('BatchNormalization', [x, gamma, beta, mean, variance], `${prefix}/normalized`, attrs);
      return rows(b.op('Transpose', [y], `${prefix}/channels_last`, { perm: toLast }));
    },
  },
  LayerNormalization: {
    export(ctx) {
      // ONNX LayerNormalization over the last axis (Scale is required: ones when the layer learns no γ)
      const shape = ctx.inputShapes[0];
      const { gamma, beta } = normAffine(ctx, shape[shape.length - 1]);
      const n = ctx.layer as Layer & NormLike;
      return rows(ctx.b.op('LayerNormalization', [ctx.inputs[0].name, gamma, beta], `${ctx.prefix}/normalized`, { axis: -1, epsilon: { float: n.epsilon } }));
    },
  },
  Embedding: {
    export(ctx) {
      // the table's rows picked by the ids: the model input is then int64 ids [batch, ...] (see exportOnnx)
      const e = ctx.layer as Layer & { inputDim: number; outputDim: number };
      const table = ctx.b.floats(`${ctx.prefix}/embeddings`, [e.inputDim, e.outputDim], ctx.param(`${ctx.layer.name}/embeddings`, [e.inputDim, e.outputDim]));
      return rows(ctx.b.op('Gather', [table, ctx.inputs[0].name], `${ctx.prefix}/vectors`, { axis: 0 }));
    },
  },
  LSTM: recurrentRule,
  GRU: recurrentRule,
  SimpleRNN: recurrentRule,
};

// ------------------------------------------------------------------ the model

/**
 * Throws OnnxExportError naming every layer of `model` that has no export rule (e.g. before
 * training, so a long run does not end in an export error).
 */
export function checkOnnxExportable(model: Model): void {
  const missing = model.layers.filter((l) => !Object.hasOwn(EXPORT_RULES, l.className));
  if (missing.length) {
    const names = missing.map((l) => `layer ${model.layers.indexOf(l)} ${l.describe()}`).join(', ');
    throw new OnnxExportError(`${names}: no ONNX export rule for ${[...new Set(missing.map((l) => l.className))].join(', ')}; the exporter supports ${Object.keys(EXPORT_RULES).join(', ')}`);
  }
}

/**
 * The ONNX model (serialized ModelProto bytes) of `model` with parameter values `params`: input →
 * logits and probabilities, dynamic batch, opset ONNX_OPSET; metadata_props hold the model spec,
 * the class names and the input scaling. Throws OnnxExportError for a layer without an export rule.
 */
export function exportOnnx(model: Model, params: ParamValues, opts: OnnxExportOptions = {}): Uint8Array {
  checkOnnxExportable(model);
  const b = new OnnxGraphBuilder();
  const inputName = b.reserve('input');
  const values = new Map<Layer, OnnxValue>([[model.input, rows(inputName)]]);
  const fold = model.loss === 'sparse_categorical_crossentropy';
  for (const layer of model.layers) {
    const who = `layer ${model.layers.indexOf(layer)} ${layer.describe()}`;
    const rule = EXPORT_RULES[layer.className];
    const inputs = layer.inbound.map((t) => values.get(t.layer)!);
    if (!rule.readsSequences && inputs.some((v) => v.layout === 'time-major')) {
      throw new OnnxExportError(`${who} reads a time-major sequence, which only recurrent layers and Dropout read in ONNX export`);
    }
    const ctx: ExportContext = {
      b, layer, inputs,
      inputShapes: layer.inbound.map((t) => [...t.shape]),
      outputShape: [...layer.output!.shape],
      foldSoftmax: fold && layer === model.outputLayer,
      prefix: layer.name!,
      param(name, shape) {
        const p = params[name];
        if (!p) throw new OnnxExportError(`${who}: parameter ${name} is missing from the values given to the exporter`);
        const n = shape.reduce((a, c) => a * c, 1);
        if (p.shape.join() !== shape.join() || p.data.length !== n) {
          throw new OnnxExportError(`${who}: parameter ${name} is [${p.shape}] (${p.data.length} values), the layer needs [${shape}]`);
        }
        return p.data;
      },
    };
    values.set(layer, rule.export(ctx));
  }
  const out = values.get(model.outputLayer)!;
  if (out.layout !== 'rows') throw new OnnxExportError(`the model's output ${model.outputLayer.describe()} is a sequence`);
  const K = model.classes;
  b.node('Identity', [out.name], [b.reserve('logits')], {}, true);
  if (fold) b.node('Softmax', ['logits'], [b.reserve('probabilities')], { axis: -1 }, true);
  else b.node('Identity', ['logits'], [b.reserve('probabilities')], {}, true);

  // A model whose input feeds Embedding layers takes integer ids (the engine's u32 ids): int64, Gather's index type.
  const ids = model.inputDType === 'u32';
  const inputType = `${ids ? 'int64 ids' : 'float32'} [batch, ${model.inputShape.join(', ')}]`;
  const classNames = opts.classNames ?? Array.from({ length: K }, (_, i) => String(i));
  if (classNames.length !== K) throw new OnnxExportError(`${classNames.length} class names given for a model with ${K} classes`);
  const metadata: Record<string, string> = {
    model_spec: JSON.stringify(modelToSpec(model)),
    classes: JSON.stringify(classNames),
    input_scaling: opts.inputScaling ?? 'u8/255',
    input_layout: `${inputType}, batch-major (one example after another)`,
    outputs: fold ? 'logits: scores before softmax; probabilities: softmax(logits)' : 'logits and probabilities: the model\'s outputs (mean squared error model)',
    ...opts.metadata,
  };
  const graph = onnx.GraphProto.create({
    name: model.name,
    node: b.nodes,
    initializer: b.initializers,
    input: [ids ? tensorValueInfo(inputName, onnx.TensorProto.DataType.INT64, 'batch', model.inputShape) : floatValueInfo(inputName, 'batch', model.inputShape)],
    output: [floatValueInfo('logits', 'batch', [K]), floatValueInfo('probabilities', 'batch', [K])],
  });
  const proto = onnx.ModelProto.create({
    irVersion: ONNX_IR_VERSION,
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: ONNX_OPSET })],
    producerName: 'webgpu-train',
    modelVersion: 1,
    docString: `${model.name}: input ${inputType} → logits, probabilities [batch, ${K}]`,
    graph,
    metadataProps: Object.entries(metadata).map(([key, value]) => onnx.StringStringEntryProto.create({ key, value })),
  });
  return onnx.ModelProto.encode(proto).finish();
}
