// The op registry: one typed rule per op (src/graph/ops/NAME.ts), side by side its shape
// inference, what its backward saves, and its forward and backward lowering. The Graph builder,
// autodiff and the recorder reach ops only through here.
import type { GpuContext } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { GraphError } from './errors.js';
import type { Node } from './graph.js';
import type { DType, Tensor } from './tensor.js';
import type { Activation } from '../kernels/matmul.js';
import { dense } from './ops/dense.js';
import { conv2d } from './ops/conv2d.js';
import { maxpool, avgpool } from './ops/pool.js';
import { globalAvgPool } from './ops/global-avg-pool.js';
import { dropout } from './ops/dropout.js';
import { reshape } from './ops/reshape.js';
import { activation } from './ops/activation.js';
import { recurrent } from './ops/recurrent.js';
import { add } from './ops/add.js';
import { concat } from './ops/concat.js';
import { softmaxXent } from './ops/softmax-xent.js';
import { meanSquaredError } from './ops/mse.js';
import { accuracy } from './ops/accuracy.js';
import { batchNorm } from './ops/batch-norm.js';
import { layerNorm } from './ops/layer-norm.js';
import { embedding } from './ops/embedding.js';

/** What lowering needs: the context, where each tensor lives, and the GPU step counter. */
export interface LowerEnv {
  ctx: GpuContext;
  /** The GPU buffer that holds tensor `t` in the compiled graph. */
  buf(t: Tensor): GPUBuffer;
  /** Element offset of a tensor in its buffer (views and external storage). */
  offset(t: Tensor): number;
  /** u32 step counter on the GPU (dropout masks, Adam's t). */
  step: GPUBuffer;
  /**
   * Where a training step advances the counter: 'loss', in the loss's kernel, after the forward
   * pass (whose readers see the steps done before this one) and before the backward pass and the
   * updates (which see this step's own count); 'end', in a dispatch of its own after everything.
   * Undefined where the graph does not advance it.
   */
  stepAdvance?: 'loss' | 'end';
  /** f32 [lr, clip scale, global norm, 0] written on the GPU each step (with a schedule or clipping). */
  control?: GPUBuffer;
}

/** What a shape rule may do: read the op's inputs, make its outputs, fail naming the op and its inputs. */
export interface ShapeContext {
  /** The op instance's name (attrs.name): output tensors are named NAME/…. */
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** A new tensor written by the op (`value`: planned; `state`: persistent, e.g. a metric sum). */
  tensor(name: string, shape: readonly number[], dtype?: DType, role?: 'value' | 'state'): Tensor;
  /** Throws a GraphError "NAME (TITLE): why (inputs: …)". */
  fail(why: string): never;
}

/** A forward node of an op, with its attributes typed. */
export type OpNode<A> = Omit<Node, 'attrs'> & { readonly attrs: A };

/** A scratch tensor an op's backward writes: a new one, or a value written in place over a forward tensor. */
export interface TempSpec {
  name: string;
  shape: number[];
  inPlaceOf?: Tensor;
}

/**
 * A backward scheduled as two nodes: the second reads only `reads` and writes the gradients of the
 * inputs numbered `inputs`, so what only the first half reads is free before they are written.
 */
export interface SplitSpec {
  inputs: number[];
  reads: Tensor[];
}

/** What autodiff asks of one op's backward, handed to its lowering. */
export interface GradientRequest {
  /** Incoming gradients of the forward node's outputs (undefined: none flows). */
  dOutputs: readonly (Tensor | undefined)[];
  /** The gradients of the inputs to write (undefined: not wanted). */
  grads: readonly (Tensor | undefined)[];
  /** accumulate[i]: grads[i] already holds another consumer's gradient; add to it. */
  accumulate: readonly boolean[];
  /** The op's backward scratch, made from its `temps` rule. */
  temps: readonly Tensor[];
  /** How many backward nodes the schedule has for it: 1, or 2 when the op's `split` rule applied. */
  parts: number;
  /**
   * updates[i]: an optimizer update node (phase 'update') to apply where grads[i] would be written,
   * in the epilogue of the product computing it (grads[i] is then undefined). Only where the rule's
   * `fusesUpdate` accepted it.
   */
  updates: readonly (Node | undefined)[];
  /**
   * activated[i]: dOutputs[i] already has the derivative of the op's own activation applied (the
   * rule's `activationGrad`), by the op that wrote it; skip that pass.
   */
  activated: readonly boolean[];
  /**
   * activationGrads[i]: grads[i] is the gradient before this activation (the one that made input i):
   * its buffer holds the activation's output on entry, to read the derivative from and write over
   * (the rule's `appliesActivationGrad` accepted it).
   */
  activationGrads: readonly (Activation | undefined)[];
}

/** An op's dispatches, prepared in one call: the forward's, and one list per backward node. */
export interface Lowered {
  forward: Dispatch[];
  /** backward[k]: the dispatches of the k-th backward node (GradientRequest.parts of them). */
  backward?: Dispatch[][];
}

/** How gradients pass through an op. */
export type GradientRule<A> =
  /** No gradient flows through it (accuracy); its outputs never need one. */
  | { kind: 'none' }
  /** Output 0 is a view of input 0: the input's gradient is a view of the output's (reshape). */
  | { kind: 'view' }
  /**
   * A scalar loss. `loss` is its [1] loss output; `seeds` are gradients of the loss with respect to
   * inputs that the forward itself writes (softmax cross-entropy's d(logits)): autodiff starts there.
   */
  | {
      kind: 'loss';
      /** The op's [1] loss output. */
      loss(n: OpNode<A>): Tensor;
      /** Gradients of the loss that the forward writes, where autodiff starts. */
      seeds(n: OpNode<A>): { input: number; gradient: Tensor }[];
    }
  /** A backward lowered from dispatches: what it reads from the forward, its scratch, and an optional split. */
  | {
      kind: 'kernel';
      /** The forward tensors the backward reads. */
      saves(n: OpNode<A>): Tensor[];
      /** Scratch tensors of the backward. */
      temps?(n: OpNode<A>): TempSpec[];
      /** How the backward is split into dispatches, if it is. */
      split?(n: OpNode<A>, temps: readonly Tensor[]): SplitSpec | undefined;
      /**
       * Whether the backward can apply `update` (an optimizer node whose gradient is input `input`'s)
       * in the epilogue of the product computing that gradient, instead of writing the gradient (see
       * GradientRequest.updates), given the updates already fused into it (`fused[i]`, input i's).
       * The lowering must then run everything that reads the input's old value before that product.
       */
      fusesUpdate?(ctx: GpuContext, n: OpNode<A>, input: number, update: Node, fused: readonly (Node | undefined)[]): boolean;
      /**
       * The activation whose derivative the backward applies first to dOutputs[0], in place, and the
       * only reason it reads output 0; the writer of that gradient may apply it instead
       * (GradientRequest.activated, src/graph/fuse-activation-grads.ts). Undefined: none.
       */
      activationGrad?(n: OpNode<A>): Activation | undefined;
      /**
       * Whether the backward can apply an activation's derivative to grads[input]
       * (GradientRequest.activationGrads), given the updates already fused into it
       * (GradientRequest.updates: the lowering then reorders its products): 'in place', writing
       * grads[input] over the activation's output, or 'beside' it, reading that output, which the
       * backward still needs afterwards; false where it cannot.
       */
      appliesActivationGrad?(ctx: GpuContext, n: OpNode<A>, input: number, activation: Activation, updates: readonly (Node | undefined)[]): false | 'in place' | 'beside';
    };

/** One op: typed attributes A, shape inference, gradient rule, lowering. */
export interface OpRule<A extends { name: string }> {
  /** Node.op of its nodes. */
  readonly op: string;
  /** How shape errors name it: "NAME (title): …". */
  readonly title: string;
  /** Checks the inputs (s.fail) and makes the outputs, in the order the node lists them. */
  shape(s: ShapeContext, attrs: A): Tensor[];
  /** True when the op is the identity for these attributes (then the builder adds no node). May fail. */
  identity?(s: ShapeContext, attrs: A): boolean;
  gradient: GradientRule<A>;
  /** The forward dispatches and, when `grad` is given, the backward's, prepared together from the planned buffers. */
  lower(env: LowerEnv, n: OpNode<A>, grad: GradientRequest | undefined): Lowered;
}

/** Every op the graph knows, by the builder's name for it. */
export const OPS = {
  dense, conv2d, maxpool, avgpool, globalAvgPool, dropout, reshape, activation, recurrent,
  add, concat, softmaxXent, meanSquaredError, accuracy, batchNorm, layerNorm, embedding,
} as const;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyRule = OpRule<any>;
const BY_OP = new Map<string, AnyRule>(Object.values(OPS).map((r: AnyRule) => [r.op, r]));

/** The rule of an op, or undefined for a node no rule made (hand-built test graphs). */
export function findOpRule(op: string): AnyRule | undefined {
  return BY_OP.get(op);
}

/** The rule of a registered op; throws a GraphError naming the known ops for an unknown one. */
export function opRule(op: string): AnyRule {
  const r = BY_OP.get(op);
  if (!r) throw new GraphError(`unknown op "${op}" (known: ${[...BY_OP.keys()].join(', ')})`);
  return r;
}

/** The ops autodiff accepts as a loss. */
export function lossOps(): string[] {
  return [...BY_OP.values()].filter((r) => r.gradient.kind === 'loss').map((r) => r.op);
}
