import { Tensor, shapeStr, type DType, type Role } from './tensor.js';
import type { Activation } from '../kernels/matmul.js';
import type { Padding } from '../kernels/conv2d.js';
import type { RecurrentCell } from '../kernels/recurrent.js';

export type Phase = 'forward' | 'backward' | 'update';

/** One operation of the step. Backward nodes point at the forward node they differentiate. */
export interface Node {
  id: number;
  op: string;
  phase: Phase;
  /** Tensors read (for backward nodes: everything the gradient needs, so they stay alive until then). */
  inputs: Tensor[];
  /** Tensors written. */
  outputs: Tensor[];
  attrs: Record<string, unknown>;
  /** For a backward node: the forward node, and which of its inputs get a gradient (grads[i] or undefined). */
  forward?: Node;
  grads?: (Tensor | undefined)[];
  /** Backward nodes: the incoming gradients of the forward node's outputs. */
  dOutputs?: (Tensor | undefined)[];
  /** Scratch written and read only inside this node (also listed in outputs, so it is planned). */
  temps?: Tensor[];
}

import { GraphError } from './errors.js';
export { GraphError };

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: Padding;
  activation?: Activation;
}

export interface PoolOptions {
  size: number | [number, number];
  stride?: number | [number, number];
  padding?: Padding;
}

/** One recurrent layer's planned sequence state. */
export interface RecurrentState {
  h: Tensor;
  c?: Tensor;
  gates: Tensor;
  rh?: Tensor;
}

export interface RecurrentOptions {
  cell: RecurrentCell;
  /** Hidden size per layer, bottom first. */
  hidden: number[];
  forgetBias?: number;
  /** Dropout keep probability between stacked layers (training only), and the masks' seed. */
  keepProb?: number;
  seed?: number;
  /** 'last': output the last step's h [B, H]; 'all': every step's h [T, B, H]. */
  output?: 'last' | 'all';
}

function pair(v: number | [number, number] | undefined, d: number): [number, number] {
  if (v === undefined) return [d, d];
  return typeof v === 'number' ? [v, v] : v;
}

/**
 * A training or evaluation graph: typed tensors and the ops between them, with shapes checked
 * as the graph is built. Lowering to GPU dispatches happens in the recorder (compile time).
 */
export class Graph {
  readonly tensors: Tensor[] = [];
  readonly nodes: Node[] = [];
  private nextId = 0;

  constructor(readonly name = 'graph') {}

  tensor(name: string, shape: readonly number[], dtype: DType, role: Role): Tensor {
    const t = new Tensor(this.tensors.length, name, shape, dtype, role);
    this.tensors.push(t);
    return t;
  }

  input(name: string, shape: readonly number[], dtype: DType = 'f32'): Tensor {
    return this.tensor(name, shape, dtype, 'input');
  }

  /** A trainable parameter; its storage is given (a ParamStore buffer shared by all graphs of a model). */
  param(name: string, shape: readonly number[], buffer: GPUBuffer): Tensor {
    const t = this.tensor(name, shape, 'f32', 'param');
    t.requiresGrad = true;
    t.external = { buffer, offset: 0 };
    return t;
  }

  addNode(op: string, phase: Phase, inputs: Tensor[], outputs: Tensor[], attrs: Record<string, unknown> = {}): Node {
    const n: Node = { id: this.nextId++, op, phase, inputs, outputs, attrs };
    for (const o of outputs) if (phase === 'forward') o.producer = n;
    if (phase === 'forward') {
      const rg = inputs.some((t) => t.requiresGrad);
      for (const o of outputs) o.requiresGrad = rg && o.dtype === 'f32';
    }
    this.nodes.push(n);
    return n;
  }

  private fail(op: string, inputs: Tensor[], why: string): never {
    throw new GraphError(`${op}: ${why} (inputs: ${inputs.map((t) => t.toString()).join(', ')})`);
  }

  /** y = act(x·w + b): x [B, in], w [in, out], b [out] (optional). */
  dense(x: Tensor, w: Tensor, b: Tensor | undefined, activation: Activation = 'none', name = 'dense'): Tensor {
    const ins = b ? [x, w, b] : [x, w];
    if (x.shape.length !== 2) this.fail(`${name} (dense)`, ins, `x must be 2-D [batch, features]; flatten it first`);
    if (w.shape.length !== 2 || w.shape[0] !== x.shape[1]) this.fail(`${name} (dense)`, ins, `w must be [${x.shape[1]}, units]`);
    if (b && (b.shape.length !== 1 || b.shape[0] !== w.shape[1])) this.fail(`${name} (dense)`, ins, `b must be [${w.shape[1]}]`);
    const y = this.tensor(`${name}/y`, [x.shape[0], w.shape[1]], 'f32', 'value');
    this.addNode('dense', 'forward', ins, [y], { activation, name, hasBias: !!b });
    return y;
  }

  /** NHWC convolution with filter [kh, kw, cin, cout], optional bias and fused activation. */
  conv2d(x: Tensor, filter: Tensor, bias: Tensor | undefined, opts: Conv2dOptions = {}, name = 'conv2d'): Tensor {
    const ins = bias ? [x, filter, bias] : [x, filter];
    const op = `${name} (conv2d)`;
    if (x.shape.length !== 4) this.fail(op, ins, 'x must be 4-D [batch, height, width, channels] (NHWC)');
    if (filter.shape.length !== 4) this.fail(op, ins, 'filter must be 4-D [kh, kw, in_channels, out_channels]');
    if (filter.shape[2] !== x.shape[3]) this.fail(op, ins, `filter in_channels ${filter.shape[2]} ≠ x channels ${x.shape[3]}`);
    if (bias && (bias.shape.length !== 1 || bias.shape[0] !== filter.shape[3])) this.fail(op, ins, `bias must be [${filter.shape[3]}]`);
    const [sh, sw] = pair(opts.stride, 1);
    const padding = opts.padding ?? 'SAME';
    const [N, H, W, C] = x.shape;
    const [kh, kw, , O] = filter.shape;
    const out = (n: number, k: number, s: number) => (padding === 'SAME' ? Math.ceil(n / s) : Math.ceil((n - k + 1) / s));
    const oh = out(H, kh, sh), ow = out(W, kw, sw);
    if (oh < 1 || ow < 1) this.fail(op, ins, `a ${kh}x${kw} VALID window does not fit the ${H}x${W} input`);
    const y = this.tensor(`${name}/y`, [N, oh, ow, O], 'f32', 'value');
    const cols = this.tensor(`${name}/im2col`, [N * oh * ow, kh * kw * C], 'f32', 'value');
    this.addNode('conv2d', 'forward', ins, [y, cols], { name, stride: [sh, sw], padding, activation: opts.activation ?? 'none', hasBias: !!bias });
    return y;
  }

  private pool(kind: 'maxpool' | 'avgpool', x: Tensor, opts: PoolOptions, name: string): Tensor {
    const op = `${name} (${kind})`;
    if (x.shape.length !== 4) this.fail(op, [x], 'x must be 4-D [batch, height, width, channels] (NHWC)');
    const [kh, kw] = pair(opts.size, 2);
    const [sh, sw] = pair(opts.stride ?? opts.size, 2);
    const padding = opts.padding ?? 'SAME';
    const [N, H, W, C] = x.shape;
    const out = (n: number, k: number, s: number) => (padding === 'SAME' ? Math.ceil(n / s) : Math.ceil((n - k + 1) / s));
    const oh = out(H, kh, sh), ow = out(W, kw, sw);
    if (oh < 1 || ow < 1) this.fail(op, [x], `a ${kh}x${kw} VALID window does not fit the ${H}x${W} input`);
    const y = this.tensor(`${name}/y`, [N, oh, ow, C], 'f32', 'value');
    const outs = [y];
    if (kind === 'maxpool') outs.push(this.tensor(`${name}/argmax`, [N, oh, ow, C], 'u32', 'value'));
    this.addNode(kind, 'forward', [x], outs, { name, size: [kh, kw], stride: [sh, sw], padding });
    return y;
  }

  maxPool(x: Tensor, opts: PoolOptions, name = 'maxpool'): Tensor {
    return this.pool('maxpool', x, opts, name);
  }

  avgPool(x: Tensor, opts: PoolOptions, name = 'avgpool'): Tensor {
    return this.pool('avgpool', x, opts, name);
  }

  /** Inverted dropout; keepProb 1 (evaluation) is the identity and adds no op. */
  dropout(x: Tensor, keepProb: number, seed: number, name = 'dropout'): Tensor {
    if (!(keepProb > 0 && keepProb <= 1)) this.fail(`${name} (dropout)`, [x], `keep probability must be in (0, 1], got ${keepProb}`);
    if (keepProb === 1) return x;
    const y = this.tensor(`${name}/y`, x.shape, 'f32', 'value');
    const mask = this.tensor(`${name}/mask`, x.shape, 'f32', 'value');
    this.addNode('dropout', 'forward', [x], [y, mask], { name, keepProb, seed, stream: this.nodes.length });
    return y;
  }

  /** A view with another shape of the same elements (free). */
  reshape(x: Tensor, shape: readonly number[], name = 'reshape'): Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== x.size) this.fail(`${name} (reshape)`, [x], `cannot view ${x.size} elements as ${shapeStr(shape)}`);
    const y = this.tensor(`${name}/y`, shape, x.dtype, 'value');
    y.viewOf = x;
    this.addNode('reshape', 'forward', [x], [y], { name });
    return y;
  }

  activation(x: Tensor, activation: Activation, name: string = activation): Tensor {
    const y = this.tensor(`${name}/y`, x.shape, 'f32', 'value');
    this.addNode('activation', 'forward', [x], [y], { name, activation });
    return y;
  }

  /**
   * Recurrent layers over a time-major input x [T, B, I]; weights per layer w_l [in+H, G·H], b_l [G·H]
   * (layout in src/kernels/recurrent.ts). Returns the top layer's last output [B, H] or all outputs [T, B, H].
   */
  recurrent(x: Tensor, weights: { w: Tensor; b: Tensor }[], opts: RecurrentOptions, name = opts.cell): Tensor {
    const op = `${name} (recurrent)`;
    const ins = [x, ...weights.flatMap((p) => [p.w, p.b])];
    if (x.shape.length !== 3) this.fail(op, ins, 'x must be 3-D [time, batch, features] (time-major)');
    if (weights.length !== opts.hidden.length) this.fail(op, ins, `${opts.hidden.length} layers need ${opts.hidden.length} weight pairs`);
    const G = { lstm: 4, gru: 3, rnn: 1 }[opts.cell];
    let inSize = x.shape[2];
    weights.forEach((p, l) => {
      const H = opts.hidden[l];
      if (p.w.shape.length !== 2 || p.w.shape[0] !== inSize + H || p.w.shape[1] !== G * H) this.fail(op, ins, `layer ${l} w must be [${inSize + H}, ${G * H}]`);
      if (p.b.shape.length !== 1 || p.b.shape[0] !== G * H) this.fail(op, ins, `layer ${l} b must be [${G * H}]`);
      inSize = H;
    });
    const [T, B] = x.shape;
    // The sequence state of each layer is planned like any tensor: h and c [(T+1)·B·H] (slot 0 the
    // initial state), the gates z [T·B·G·H] (LSTM and RNN write their gate gradients over them in
    // backward), GRU's r⊙h.
    const layers: RecurrentState[] = opts.hidden.map((H, l) => {
      const S = (what: string, n: number) => this.tensor(`${name}/layer${l}/${what}`, [n], 'f32', 'value');
      return {
        h: S('h', (T + 1) * B * H),
        c: opts.cell === 'lstm' ? S('c', (T + 1) * B * H) : undefined,
        gates: S('gates', T * B * G * H),
        rh: opts.cell === 'gru' ? S('r*h', T * B * H) : undefined,
      };
    });
    const state = layers.flatMap((s) => [s.h, s.c, s.gates, s.rh].filter((t): t is Tensor => !!t));
    const H = opts.hidden[opts.hidden.length - 1];
    const output = opts.output ?? 'last';
    const hTop = layers[layers.length - 1].h;
    const y = this.tensor(`${name}/${output === 'last' ? 'last_h' : 'outputs'}`, output === 'last' ? [B, H] : [T, B, H], 'f32', 'value');
    y.viewOf = hTop;
    y.viewOffset = output === 'last' ? T * B * H : B * H;
    this.addNode('recurrent', 'forward', ins, [...state, y], { name, ...opts, output, layers: opts.hidden.length, state: layers, stream: this.nodes.length });
    return y;
  }

  /**
   * Softmax cross-entropy from logits [B, C] and u32 labels [B]: returns the batch-mean loss [1].
   * Its gradient (softmax − onehot)/B is made in the same kernel, and the loss is also summed into
   * `lossSum` (state) for read-back every few steps.
   */
  softmaxCrossEntropy(logits: Tensor, labels: Tensor, name = 'xent'): { loss: Tensor; lossSum: Tensor } {
    const op = `${name} (softmax cross-entropy)`;
    if (logits.shape.length !== 2) this.fail(op, [logits, labels], 'logits must be 2-D [batch, classes]');
    if (labels.dtype !== 'u32' || labels.shape.length !== 1 || labels.shape[0] !== logits.shape[0]) {
      this.fail(op, [logits, labels], `labels must be u32 [${logits.shape[0]}] class ids`);
    }
    const loss = this.tensor(`${name}/loss`, [1], 'f32', 'value');
    const dlogits = this.tensor(`${name}/dlogits`, logits.shape, 'f32', 'value');
    const perExample = this.tensor(`${name}/per_example`, [logits.shape[0]], 'f32', 'value');
    const lossSum = this.tensor(`${name}/loss_sum`, [1], 'f32', 'state');
    this.addNode('xent', 'forward', [logits, labels], [loss, dlogits, perExample, lossSum], { name });
    loss.requiresGrad = false;
    return { loss, lossSum };
  }

  /** Predictions (argmax) [B] u32, and the count of correct ones added to `correct` (state). */
  accuracy(logits: Tensor, labels: Tensor, name = 'accuracy'): { predictions: Tensor; correct: Tensor } {
    const op = `${name} (accuracy)`;
    if (logits.shape.length !== 2) this.fail(op, [logits, labels], 'logits must be 2-D [batch, classes]');
    if (labels.shape[0] !== logits.shape[0]) this.fail(op, [logits, labels], 'labels and logits disagree on the batch size');
    const predictions = this.tensor(`${name}/predictions`, [logits.shape[0]], 'u32', 'value');
    const correct = this.tensor(`${name}/correct`, [1], 'u32', 'state');
    const n = this.addNode('accuracy', 'forward', [logits, labels], [predictions, correct], { name });
    for (const o of n.outputs) o.requiresGrad = false;
    return { predictions, correct };
  }

  // ===== BEGIN STUBS (layers helper) =====================================================
  // Throwing stand-ins with the agreed signatures of the op-registry helper's new ops, so the
  // model layer compiles before they land. The coordinator replaces this whole block at merge.
  add(a: Tensor, b: Tensor, name = 'add'): Tensor {
    this.fail(`${name} (add)`, [a, b], 'not available yet (stub until the op registry lands)');
  }

  concat(xs: Tensor[], name = 'concat'): Tensor {
    this.fail(`${name} (concat)`, xs, 'not available yet (stub until the op registry lands)');
  }

  globalAvgPool(x: Tensor, name = 'global_avg_pool'): Tensor {
    this.fail(`${name} (globalAvgPool)`, [x], 'not available yet (stub until the op registry lands)');
  }

  meanSquaredError(pred: Tensor, target: Tensor, name = 'mse'): { loss: Tensor; lossSum: Tensor } {
    this.fail(`${name} (meanSquaredError)`, [pred, target], 'not available yet (stub until the op registry lands)');
  }
  // ===== END STUBS (layers helper) =======================================================
}
