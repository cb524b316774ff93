// Every op's lowering in one place: forward and backward dispatches, prepared once at compile
// time from the planned buffers. The graph (graph.ts) checks shapes; autodiff.ts decides which
// gradients each backward node writes; this file turns nodes into kernel dispatches.
import type { GpuContext } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { fusesBiasGrad, matmul, type Activation } from '../kernels/matmul.js';
import { columnSum } from '../kernels/reduce.js';
import { conv2dForward, conv2dBackward, prepareIm2col, type Padding } from '../kernels/conv2d.js';
import { maxPool2d, maxPool2dBackward, avgPool2d, avgPool2dBackward } from '../kernels/pool.js';
import { prepareDropout, prepareDropoutBackward } from '../kernels/dropout.js';
import { prepareActivation, prepareActivationBackward } from '../kernels/activation.js';
import { prepareSoftmaxXent } from '../kernels/softmax-xent.js';
import { prepareArgmax } from '../kernels/argmax.js';
import { prepareSgd, prepareAdam } from '../kernels/optimizer.js';
import { prepareRecurrentStack, type RecurrentStack, type RecurrentCell } from '../kernels/recurrent.js';
import { GraphError, type Node, type RecurrentState } from './graph.js';
import type { Tensor } from './tensor.js';

/** What lowering needs: the context, where each tensor lives, and the GPU step counter. */
export interface LowerEnv {
  ctx: GpuContext;
  buf(t: Tensor): GPUBuffer;
  /** Element offset of a tensor in its buffer (views and external storage). */
  offset(t: Tensor): number;
  /** u32 step counter on the GPU (dropout masks, Adam's t). */
  step: GPUBuffer;
  /** Per-node state shared between a forward node's lowering and its backward's (e.g. a recurrent stack). */
  state: Map<Node, unknown>;
}

type Lower = (env: LowerEnv, n: Node) => Dispatch[];

function whole(env: LowerEnv, t: Tensor, op: string): GPUBuffer {
  if (env.offset(t) !== 0) throw new GraphError(`${op}: ${t} lives at an offset; this op needs it at the start of a buffer`);
  return env.buf(t);
}

const a = <T>(n: Node, k: string) => n.attrs[k] as T;

// ---------------------------------------------------------------- forward

const forward: Record<string, Lower> = {
  dense(env, n) {
    const [x, w, b] = n.inputs;
    const [y] = n.outputs;
    const [B, K] = x.shape;
    const N = w.shape[1];
    return [matmul(env.ctx, { M: B, N, K, activation: a<Activation>(n, 'activation'), offA: env.offset(x), label: `${a(n, 'name')}` },
      { a: env.buf(x), b: env.buf(w), bias: b && env.buf(b), c: whole(env, y, 'dense') })];
  },

  conv2d(env, n) {
    const [x, f, b] = n.inputs;
    const [y, cols] = n.outputs;
    return conv2dForward(env.ctx, convSpec(n), { x: whole(env, x, 'conv2d'), filter: env.buf(f), bias: b && env.buf(b), y: env.buf(y), cols: env.buf(cols) });
  },

  maxpool(env, n) {
    const [x] = n.inputs;
    const [y, argmax] = n.outputs;
    return [maxPool2d(env.ctx, poolSpec(n), { x: whole(env, x, 'maxpool'), y: env.buf(y), argmax: env.buf(argmax) })];
  },

  avgpool(env, n) {
    return [avgPool2d(env.ctx, poolSpec(n), { x: whole(env, n.inputs[0], 'avgpool'), y: env.buf(n.outputs[0]) })];
  },

  dropout(env, n) {
    const [x] = n.inputs;
    const [y, mask] = n.outputs;
    return [prepareDropout(env.ctx, { n: x.size, keepProb: a(n, 'keepProb'), seed: a(n, 'seed'), stream: a(n, 'stream'), label: `${a(n, 'name')}` },
      { x: whole(env, x, 'dropout'), y: env.buf(y), mask: env.buf(mask), step: env.step })];
  },

  reshape() {
    return []; // a view: no work
  },

  activation(env, n) {
    return [prepareActivation(env.ctx, { n: n.inputs[0].size, activation: a(n, 'activation'), label: `${a(n, 'name')}` },
      { x: whole(env, n.inputs[0], 'activation'), y: env.buf(n.outputs[0]) })];
  },

  recurrent(env, n) {
    const stack = recurrentStack(env, n);
    return stack.forward;
  },

  xent(env, n) {
    const [logits, labels] = n.inputs;
    const [loss, dlogits, perExample, lossSum] = n.outputs;
    const [B, C] = logits.shape;
    return prepareSoftmaxXent(env.ctx, { batch: B, classes: C, accumulateLoss: true, label: `${a(n, 'name')}` }, {
      logits: whole(env, logits, 'xent'), labels: env.buf(labels), loss: env.buf(perExample), dlogits: env.buf(dlogits),
      meanLoss: env.buf(loss), lossSum: env.buf(lossSum),
    });
  },

  accuracy(env, n) {
    const [logits, labels] = n.inputs;
    const [predictions, correct] = n.outputs;
    const [B, C] = logits.shape;
    return [prepareArgmax(env.ctx, { batch: B, classes: C, label: `${a(n, 'name')}` },
      { x: whole(env, logits, 'accuracy'), predictions: env.buf(predictions), labels: env.buf(labels), correct: env.buf(correct) })];
  },
};

// ---------------------------------------------------------------- backward
// A backward node has n.forward (the forward node), n.dOutputs (gradients of its outputs) and
// n.grads (the gradient tensors of its inputs to write, or undefined), with n.attrs.accumulate[i]
// telling whether grads[i] already holds another consumer's gradient (then it is added to).

const backward: Record<string, Lower> = {
  dense(env, n) {
    const f = n.forward!;
    const [x, w, b] = f.inputs;
    const [y] = f.outputs;
    const dy = n.dOutputs![0]!;
    const [dx, dw, db] = n.grads!;
    const acc = n.attrs.accumulate as boolean[];
    const act = a<Activation>(f, 'activation');
    const name = a<string>(f, 'name');
    const [B, K] = x.shape;
    const N = w.shape[1];
    const out: Dispatch[] = [];
    const dz = whole(env, dy, `${name} backward`);
    // dz = dy ⊙ act'(y), in place: dy has no other reader
    if (act !== 'none') out.push(prepareActivationBackward(env.ctx, { n: B * N, activation: act, label: `${name}/${act}'` }, { y: env.buf(y), dy: dz, dx: dz }));
    // db = 1ᵀ·dz in the dW product's pass over dz where the kernel can (a short batch), else its own column sum.
    const fuseDb = !!(dw && db && b) && acc[1] === acc[2] && fusesBiasGrad(env.ctx, B);
    if (dw) {
      out.push(matmul(env.ctx, { M: K, N, K: B, transA: true, offA: env.offset(x), accumulate: acc[1], biasGrad: fuseDb, label: fuseDb ? `${name}/dW+db` : `${name}/dW` },
        { a: env.buf(x), b: dz, c: env.buf(dw), dbias: fuseDb ? env.buf(db!) : undefined }));
    }
    if (db && b && !fuseDb) out.push(...columnSum(env.ctx, { rows: B, cols: N, accumulate: acc[2], label: `${name}/db` }, { x: dz, out: env.buf(db) }));
    if (dx) out.push(matmul(env.ctx, { M: B, N: K, K: N, transB: true, offC: env.offset(dx), accumulate: acc[0], label: `${name}/dx` }, { a: dz, b: env.buf(w), c: env.buf(dx) }));
    return out;
  },

  conv2d(env, n) {
    const f = n.forward!;
    const [, filter] = f.inputs;
    const [y] = f.outputs;
    const dy = n.dOutputs![0]!;
    const [dx, dFilter, dBias] = n.grads!;
    const acc = n.attrs.accumulate as boolean[];
    if (acc.some((v) => v) && !acc.every((v, i) => v || !n.grads![i])) {
      throw new GraphError(`${a(f, 'name')} (conv2d): mixed gradient accumulation is not supported`);
    }
    const spec = convSpec(f);
    const out: Dispatch[] = [];
    const dz = whole(env, dy, `${spec.label} backward`);
    // The forward's im2col was not kept: recompute it into this node's scratch (it then also
    // serves as dy·Wᵀ, since dFilter is done with it first).
    const cols = env.buf(n.temps![0]);
    if (dFilter) out.push(prepareIm2col(env.ctx, spec, { x: whole(env, f.inputs[0], 'conv2d'), cols }));
    if (spec.activation && spec.activation !== 'none') {
      out.push(prepareActivationBackward(env.ctx, { n: dy.size, activation: spec.activation, label: `${spec.label}/${spec.activation}'` }, { y: env.buf(y), dy: dz, dx: dz }));
    }
    out.push(...conv2dBackward(env.ctx, { ...spec, accumulate: acc.some((v) => v) }, {
      dy: dz, filter: env.buf(filter), cols,
      dx: dx && env.buf(dx), dFilter: dFilter && env.buf(dFilter), dBias: dBias && env.buf(dBias),
      dCols: cols,
    }));
    return out;
  },

  maxpool(env, n) {
    const f = n.forward!;
    const [dx] = n.grads!;
    if (!dx) return [];
    return [maxPool2dBackward(env.ctx, { ...poolSpec(f), accumulate: (n.attrs.accumulate as boolean[])[0] },
      { dy: env.buf(n.dOutputs![0]!), argmax: env.buf(f.outputs[1]), dx: env.buf(dx) })];
  },

  avgpool(env, n) {
    const f = n.forward!;
    const [dx] = n.grads!;
    if (!dx) return [];
    return [avgPool2dBackward(env.ctx, { ...poolSpec(f), accumulate: (n.attrs.accumulate as boolean[])[0] }, { dy: env.buf(n.dOutputs![0]!), dx: env.buf(dx) })];
  },

  dropout(env, n) {
    const f = n.forward!;
    const [dx] = n.grads!;
    if (!dx) return [];
    return [prepareDropoutBackward(env.ctx, { n: dx.size, keepProb: a(f, 'keepProb'), accumulate: (n.attrs.accumulate as boolean[])[0], label: `${a(f, 'name')} backward` },
      { dy: env.buf(n.dOutputs![0]!), mask: env.buf(f.outputs[1]), dx: env.buf(dx) })];
  },

  activation(env, n) {
    const f = n.forward!;
    const [dx] = n.grads!;
    if (!dx) return [];
    return [prepareActivationBackward(env.ctx, { n: dx.size, activation: a(f, 'activation'), accumulate: (n.attrs.accumulate as boolean[])[0], label: `${a(f, 'name')} backward` },
      { y: env.buf(f.outputs[0]), dy: env.buf(n.dOutputs![0]!), dx: env.buf(dx) })];
  },

  recurrent(env, n) {
    const stack = env.state.get(n.forward!) as RecurrentStack;
    const k = stack.bottomGradientDispatches;
    if (n.attrs.part === 'gradients') return stack.backward.slice(-k);
    return n.attrs.split ? stack.backward.slice(0, -k) : stack.backward;
  },
};

// ---------------------------------------------------------------- parameter updates
// inputs [grad], outputs [param, ...optimizer state]; the step t for Adam comes from env.step.

const update: Record<string, Lower> = {
  sgd(env, n) {
    const [grad] = n.inputs;
    const [param, accum] = n.outputs;
    const momentum = a<number | undefined>(n, 'momentum');
    return [prepareSgd(env.ctx, { n: param.size, lr: a(n, 'lr'), momentum, label: `sgd ${param.name}` },
      { param: env.buf(param), grad: env.buf(grad), accum: accum && env.buf(accum) })];
  },
  adam(env, n) {
    const [grad] = n.inputs;
    const [param, m, v] = n.outputs;
    return [prepareAdam(env.ctx, { n: param.size, lr: a(n, 'lr'), beta1: a(n, 'beta1'), beta2: a(n, 'beta2'), epsilon: a(n, 'epsilon'), label: `adam ${param.name}` },
      { param: env.buf(param), grad: env.buf(grad), m: env.buf(m), v: env.buf(v), step: env.step })];
  },
};

/**
 * What each op's backward reads from its forward (besides the incoming gradients), so the planner
 * keeps exactly that alive until then, and the scratch it needs.
 */
export function backwardNeeds(n: Node): Tensor[] {
  const [x, w] = n.inputs;
  const act = n.attrs.activation !== undefined && n.attrs.activation !== 'none';
  switch (n.op) {
    case 'dense': return act ? [x, w, n.outputs[0]] : [x, w];
    case 'conv2d': return act ? [x, w, n.outputs[0]] : [x, w]; // x: im2col is recomputed
    case 'maxpool': return [n.outputs[1]]; // argmax
    case 'avgpool': return [];
    case 'dropout': return [n.outputs[1]]; // mask
    case 'activation': return [n.outputs[0]];
    case 'recurrent': return [...n.inputs, ...n.outputs.slice(0, -1)]; // x, weights and the sequence state
    default: return [...n.inputs, ...n.outputs];
  }
}

/** The scratch tensors an op's backward writes: new ones, or values written in place over a forward tensor. */
export function backwardTemps(n: Node): { name: string; shape: number[]; inPlaceOf?: Tensor }[] {
  if (n.op === 'conv2d') {
    const cols = n.outputs[1];
    return [{ name: `${n.attrs.name}/im2col (backward)`, shape: [...cols.shape] }];
  }
  if (n.op === 'recurrent' && n.attrs.cell !== 'gru') {
    // LSTM and RNN: the gate gradients overwrite the gates (see the recurrent lowering).
    return a<RecurrentState[]>(n, 'state').map((s) => ({ name: `d(${s.gates.name})`, shape: [...s.gates.shape], inPlaceOf: s.gates }));
  }
  return [];
}

/**
 * Ops whose backward is scheduled as two nodes: the second reads only `reads` and writes the gradients
 * of the inputs numbered `inputs`, so what only the first half reads is free before they are written.
 * The recurrent op: the bottom layer's dW, db and dX follow the backward through time, when the cell
 * states are dead (their memory can then hold the weight gradient).
 */
export function backwardSplit(n: Node, temps: readonly Tensor[]): { inputs: number[]; reads: Tensor[] } | undefined {
  if (n.op !== 'recurrent') return undefined;
  const [x, w0] = n.inputs;
  const s = a<RecurrentState[]>(n, 'state')[0];
  const dz = temps.find((t) => t.viewOf === s.gates); // in place over the gates (LSTM, RNN); GRU's is the stack's own
  return { inputs: [0, 1, 2], reads: [x, w0, s.h, ...(s.rh ? [s.rh] : []), ...(dz ? [dz] : [])] };
}

/** Ops whose backward writes no dispatch of its own (their input gradient is another tensor). */
export const GRADIENT_IS_OUTPUT: Record<string, number> = { xent: 1 /* dlogits */ };

export function lowerNode(env: LowerEnv, n: Node): Dispatch[] {
  const table = n.phase === 'backward' ? backward : n.phase === 'update' ? update : forward;
  const fn = table[n.forward?.op ?? n.op];
  if (!fn) throw new GraphError(`no ${n.phase} lowering for op "${n.forward?.op ?? n.op}"`);
  return fn(env, n);
}

export function hasBackward(op: string): boolean {
  return op in backward || op in GRADIENT_IS_OUTPUT || op === 'reshape';
}

function convSpec(n: Node) {
  const [x, f] = n.inputs;
  return {
    batch: x.shape[0], inH: x.shape[1], inW: x.shape[2], inC: x.shape[3],
    kH: f.shape[0], kW: f.shape[1], outC: f.shape[3],
    stride: a<[number, number]>(n, 'stride'), padding: a<Padding>(n, 'padding'),
    activation: a<Activation>(n, 'activation'), label: a<string>(n, 'name'),
  };
}

function poolSpec(n: Node) {
  const [x] = n.inputs;
  const [kH, kW] = a<[number, number]>(n, 'size');
  return {
    batch: x.shape[0], inH: x.shape[1], inW: x.shape[2], channels: x.shape[3], kH, kW,
    stride: a<[number, number]>(n, 'stride'), padding: a<Padding>(n, 'padding'), label: a<string>(n, 'name'),
  };
}

/**
 * The recurrent op owns its sequence buffers (h, c, gates): they are prepared with the forward and
 * shared with the backward. Its output tensor is a view into the top layer's h.
 */
function recurrentStack(env: LowerEnv, n: Node): RecurrentStack {
  const [x, ...wb] = n.inputs;
  const cell = a<RecurrentCell>(n, 'cell');
  const hidden = a<number[]>(n, 'hidden');
  const L = hidden.length;
  const [T, B, I] = x.shape;
  const y = n.outputs[n.outputs.length - 1];
  const state = a<RecurrentState[]>(n, 'state');
  const back = n.attrs.backward as Node | undefined; // set by autodiff when gradients flow
  const grads = back?.grads ?? [];
  const dyT = back?.dOutputs?.[n.outputs.length - 1];
  const keepProb = a<number | undefined>(n, 'keepProb') ?? 1;
  const stack = prepareRecurrentStack(env.ctx, {
    cell, T, B, I, hidden,
    forgetBias: a<number | undefined>(n, 'forgetBias'),
    gradFrom: a(n, 'output') === 'last' ? 'last' : 'all',
    inputGrad: !!grads[0],
    dropout: L > 1 && keepProb < 1,
    label: a<string>(n, 'name'),
  }, {
    x: env.buf(x), xOffset: env.offset(x),
    dy: dyT ? env.buf(dyT) : undefined,
    dx: grads[0] ? env.buf(grads[0]) : undefined,
    params: Array.from({ length: L }, (_, l) => {
      const s = state[l];
      const z = env.buf(s.gates);
      return {
        w: env.buf(wb[2 * l]), b: env.buf(wb[2 * l + 1]),
        dw: grads[1 + 2 * l] ? env.buf(grads[1 + 2 * l]!) : undefined,
        db: grads[2 + 2 * l] ? env.buf(grads[2 + 2 * l]!) : undefined,
        h: env.buf(s.h), c: s.c && env.buf(s.c), rh: s.rh && env.buf(s.rh),
        // LSTM and RNN write their gate gradients over the gates; GRU's backward still reads them.
        z, dz: cell === 'gru' ? undefined : z,
      };
    }),
  });
  if (env.buf(y) !== stack.output.buffer) throw new GraphError(`${a(n, 'name')}: the recurrent output is not in the planned h buffer`);
  env.state.set(n, stack);
  if (L > 1 && keepProb < 1) {
    // Fill each inter-layer mask (0 or 1/keep) from the GPU RNG before the stack runs: dropout of ones.
    const ones = env.ctx.upload(new Float32Array(Math.max(...stack.masks.map((m) => m.size / 4))).fill(1), `${a(n, 'name')} ones`);
    const pre = stack.masks.map((m, l) => {
      const count = T * B * hidden[l];
      const scratch = env.ctx.storage(count * 4, `${a(n, 'name')} mask ${l} scratch`);
      return prepareDropout(env.ctx, { n: count, keepProb, seed: a<number | undefined>(n, 'seed') ?? 1, stream: (a<number>(n, 'stream') << 8) + l, label: `${a(n, 'name')} dropout mask ${l}` },
        { x: ones, y: m, mask: scratch, step: env.step });
    });
    stack.forward.unshift(...pre);
  }
  return stack;
}
