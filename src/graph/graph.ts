import { Tensor, type DType, type Role } from './tensor.js';
import type { Activation } from '../kernels/matmul.js';
import { GraphError } from './errors.js';
import { OPS, type OpNode, type OpRule, type ShapeContext } from './registry.js';
import { conv2dAttrs, type Conv2dOptions } from './ops/conv2d.js';
import { poolAttrs, type PoolOptions } from './ops/pool.js';
import type { ActivationKind } from './ops/activation.js';
import type { RecurrentOptions } from './ops/recurrent.js';

export { GraphError };
export type { Conv2dOptions } from './ops/conv2d.js';
export type { PoolOptions } from './ops/pool.js';
export type { RecurrentOptions, RecurrentState } from './ops/recurrent.js';

/** Which pass of a step a node runs in. */
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
  /** Forward nodes: the op's typed attributes (see its file in ops/). Backward nodes: `part` of a split backward. */
  attrs: Record<string, unknown>;
  /** For a backward node: the forward node, and which of its inputs get a gradient (grads[i] or undefined). */
  forward?: Node;
  grads?: (Tensor | undefined)[];
  /** Backward nodes: the incoming gradients of the forward node's outputs. */
  dOutputs?: (Tensor | undefined)[];
  /** Backward nodes: accumulate[i] when grads[i] already holds another consumer's gradient (then it is added to). */
  accumulate?: boolean[];
  /** Scratch written and read only inside this node (also listed in outputs, so it is planned). */
  temps?: Tensor[];
  /**
   * Backward nodes: updates[i], an optimizer update applied in place of writing grads[i] (then
   * undefined), its parameter and state among this node's outputs (src/graph/fuse-updates.ts).
   */
  updates?: (Node | undefined)[];
  /** Backward nodes: activated[i], dOutputs[i] comes with the op's activation derivative applied (fuse-activation-grads.ts). */
  activated?: boolean[];
  /** Backward nodes: activationGrads[i], the activation whose derivative grads[i] is written through (fuse-activation-grads.ts). */
  activationGrads?: (Activation | undefined)[];
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

  /** A new tensor of the graph with a unique name. */
  tensor(name: string, shape: readonly number[], dtype: DType, role: Role): Tensor {
    const t = new Tensor(this.tensors.length, name, shape, dtype, role);
    this.tensors.push(t);
    return t;
  }

  /** A new input tensor (filled by the caller before each run). */
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

  /**
   * A persistent non-trainable tensor (e.g. batch norm's running statistics): no gradient, its
   * storage given (a ParamStore buffer, so checkpoints and every graph of a model share it).
   */
  persistent(name: string, shape: readonly number[], buffer: GPUBuffer): Tensor {
    const t = this.tensor(name, shape, 'f32', 'state');
    t.external = { buffer, offset: 0 };
    return t;
  }

  /** Appends a node of a registered op (see OPS) in the given phase; returns it. */
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

  private fail(op: string, inputs: readonly Tensor[], why: string): never {
    throw new GraphError(`${op}: ${why} (inputs: ${inputs.map((t) => t.toString()).join(', ')})`);
  }

  /**
   * Adds one op through its registry rule: the rule checks the inputs and makes the outputs, then
   * the node is added. Returns the outputs (or the input itself when the op is the identity).
   */
  private apply<A extends { name: string }>(rule: OpRule<A>, inputs: Tensor[], attrs: A): Tensor[] {
    const s: ShapeContext = {
      name: attrs.name,
      inputs,
      tensor: (name, shape, dtype = 'f32', role = 'value') => this.tensor(name, shape, dtype, role),
      fail: (why) => this.fail(`${attrs.name} (${rule.title})`, inputs, why),
    };
    if (rule.identity?.(s, attrs)) return [inputs[0]];
    const n = this.addNode(rule.op, 'forward', inputs, rule.shape(s, attrs), attrs) as unknown as OpNode<A>;
    const g = rule.gradient;
    if (g.kind === 'none') for (const o of n.outputs) o.requiresGrad = false;
    if (g.kind === 'loss') g.loss(n).requiresGrad = false;
    return n.outputs;
  }

  /** y = act(x·w + b): x [B, in], w [in, out], b [out] (optional). */
  dense(x: Tensor, w: Tensor, b: Tensor | undefined, activation: Activation = 'none', name = 'dense'): Tensor {
    return this.apply(OPS.dense, b ? [x, w, b] : [x, w], { name, activation, hasBias: !!b })[0];
  }

  /** NHWC convolution with filter [kh, kw, cin, cout], optional bias and fused activation. */
  conv2d(x: Tensor, filter: Tensor, bias: Tensor | undefined, opts: Conv2dOptions = {}, name = 'conv2d'): Tensor {
    return this.apply(OPS.conv2d, bias ? [x, filter, bias] : [x, filter], conv2dAttrs(opts, name, !!bias))[0];
  }

  /** Max pooling of an NHWC tensor. */
  maxPool(x: Tensor, opts: PoolOptions, name = 'maxpool'): Tensor {
    return this.apply(OPS.maxpool, [x], poolAttrs(opts, name))[0];
  }

  /** Average pooling of an NHWC tensor. */
  avgPool(x: Tensor, opts: PoolOptions, name = 'avgpool'): Tensor {
    return this.apply(OPS.avgpool, [x], poolAttrs(opts, name))[0];
  }

  /** Inverted dropout; keepProb 1 (evaluation) is the identity and adds no op. */
  dropout(x: Tensor, keepProb: number, seed: number, name = 'dropout'): Tensor {
    return this.apply(OPS.dropout, [x], { name, keepProb, seed, stream: this.nodes.length })[0];
  }

  /** A view with another shape of the same elements (free). */
  reshape(x: Tensor, shape: readonly number[], name = 'reshape'): Tensor {
    return this.apply(OPS.reshape, [x], { name, shape: [...shape] })[0];
  }

  /** y = f(x) elementwise (relu, sigmoid, tanh, none), or softmax over the last axis. */
  activation(x: Tensor, activation: ActivationKind, name: string = activation): Tensor {
    return this.apply(OPS.activation, [x], { name, activation })[0];
  }

  /**
   * Recurrent layers over a time-major input x [T, B, I]; weights per layer w_l [in+H, G·H], b_l [G·H]
   * (layout in src/kernels/recurrent.ts). Returns the top layer's last output [B, H] or all outputs [T, B, H].
   */
  recurrent(x: Tensor, weights: { w: Tensor; b: Tensor }[], opts: RecurrentOptions, name = opts.cell): Tensor {
    const ins = [x, ...weights.flatMap((p) => [p.w, p.b])];
    const outs = this.apply(OPS.recurrent, ins, { ...opts, name, output: opts.output ?? 'last', stream: this.nodes.length });
    return outs[outs.length - 1];
  }

  /**
   * Softmax cross-entropy from logits [B, C] and u32 labels [B]: returns the batch-mean loss [1].
   * Its gradient (softmax − onehot)/B is made in the same kernel, and the loss is also summed into
   * `lossSum` (state) for read-back every few steps. `labelSmoothing` ε smooths the target to
   * (1 − ε)·onehot + ε/C (in the same kernel).
   */
  softmaxCrossEntropy(logits: Tensor, labels: Tensor, name = 'xent', labelSmoothing = 0): { loss: Tensor; lossSum: Tensor } {
    const [loss, , , lossSum] = this.apply(OPS.softmaxXent, [logits, labels], { name, ...(labelSmoothing ? { labelSmoothing } : {}) });
    return { loss, lossSum };
  }

  /** y = a + b elementwise (same shapes), e.g. a residual connection. */
  add(a: Tensor, b: Tensor, name = 'add'): Tensor {
    return this.apply(OPS.add, [a, b], { name })[0];
  }

  /** Concatenation along the LAST axis; every other dimension must be equal. */
  concat(xs: Tensor[], name = 'concat'): Tensor {
    return this.apply(OPS.concat, [...xs], { name })[0];
  }

  /** Global average pooling: x [N, H, W, C] (NHWC) → [N, C], the mean over each image. */
  globalAvgPool(x: Tensor, name = 'globalavgpool'): Tensor {
    return this.apply(OPS.globalAvgPool, [x], { name })[0];
  }

  /**
   * Mean squared error (Keras): the mean over all elements of (pred − target)², pred and target
   * [B, D] f32. Returns the loss [1] (its gradient 2(pred − target)/(B·D) is made in the same
   * kernel) and `lossSum` (state), the loss summed across steps, as softmaxCrossEntropy does.
   */
  meanSquaredError(pred: Tensor, target: Tensor, name = 'mse'): { loss: Tensor; lossSum: Tensor } {
    const [loss, , lossSum] = this.apply(OPS.meanSquaredError, [pred, target], { name });
    return { loss, lossSum };
  }

  /**
   * Batch normalization over the last axis (Keras BatchNormalization): with `training`, by the
   * batch's statistics, moving `runningMean`/`runningVar` by `momentum` in the same pass; else by
   * the running statistics.
   */
  batchNorm(x: Tensor, w: { runningMean: Tensor; runningVar: Tensor; gamma?: Tensor; beta?: Tensor },
    opts: { epsilon: number; momentum: number; training: boolean }, name = 'batchnorm'): Tensor {
    const ins = [x, w.runningMean, w.runningVar, ...(w.gamma ? [w.gamma] : []), ...(w.beta ? [w.beta] : [])];
    return this.apply(OPS.batchNorm, ins, { name, ...opts, hasGamma: !!w.gamma, hasBeta: !!w.beta })[0];
  }

  /** Layer normalization over the last axis (Keras LayerNormalization). */
  layerNorm(x: Tensor, w: { gamma?: Tensor; beta?: Tensor }, epsilon: number, name = 'layernorm'): Tensor {
    const ins = [x, ...(w.gamma ? [w.gamma] : []), ...(w.beta ? [w.beta] : [])];
    return this.apply(OPS.layerNorm, ins, { name, epsilon, hasGamma: !!w.gamma, hasBeta: !!w.beta })[0];
  }

  /** Rows of `table` [inputDim, D] picked by u32 ids [...]: [..., D] (Keras Embedding). */
  embedding(ids: Tensor, table: Tensor, name = 'embedding'): Tensor {
    return this.apply(OPS.embedding, [ids, table], { name })[0];
  }

  /** Predictions (argmax) [B] u32, and the count of correct ones added to `correct` (state). */
  accuracy(logits: Tensor, labels: Tensor, name = 'accuracy'): { predictions: Tensor; correct: Tensor } {
    const [predictions, correct] = this.apply(OPS.accuracy, [logits, labels], { name });
    return { predictions, correct };
  }
}
