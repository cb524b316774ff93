// Parameter updates (the optimizer): nodes with inputs [grad] and outputs [param, ...optimizer
// state], added by the recorder after autodiff; Adam's step t comes from env.step.
import type { Dispatch } from '../gpu/dispatch.js';
import { prepareSgd, prepareAdam, adamEpilogue, sgdEpilogue } from '../kernels/optimizer.js';
import type { MatmulEpilogue } from '../kernels/matmul.js';
import { clipPartials, prepareGlobalNormClip } from '../kernels/train-control.js';
import { GraphError, type Node } from './graph.js';
import type { LowerEnv } from './registry.js';
import { CLIP_OP, type ControlAttrs } from './train-control.js';

export type SgdAttrs = { lr: number; momentum?: number } & Partial<ControlAttrs>;
export type AdamAttrs = { lr: number; beta1: number; beta2: number; epsilon: number } & Partial<ControlAttrs>;

/** The optimizer's own options of an update node, as the kernels take them. */
function controlOf(a: Partial<ControlAttrs>) {
  return { weightDecay: a.weightDecay, decoupled: a.decoupled, scheduled: a.scheduled, clipped: a.clipped };
}

/**
 * Whether an update node can run as the epilogue of the product computing its gradient
 * (updateEpilogue): SGD or Adam, unclipped, on a 2-D parameter (whole column quads or not).
 */
export function fusableUpdate(n: Node): boolean {
  return (n.op === 'adam' || n.op === 'sgd') && !(n.attrs as Partial<ControlAttrs>).clipped && n.outputs[0].shape.length === 2;
}

/**
 * Whether `biasUpdate` can run in the epilogue that applies `weightUpdate` (updateEpilogue's bias):
 * the same optimizer with the same hyper-parameters, on a 1-D parameter as wide as the weight.
 */
export function fusableBiasUpdate(weightUpdate: Node, biasUpdate: Node): boolean {
  const [w, b] = [weightUpdate.outputs[0], biasUpdate.outputs[0]];
  return fusableUpdate(weightUpdate) && biasUpdate.op === weightUpdate.op && b.shape.length === 1 && b.shape[0] === w.shape[1]
    && biasUpdate.outputs.length === weightUpdate.outputs.length && JSON.stringify(biasUpdate.attrs) === JSON.stringify(weightUpdate.attrs);
}

/**
 * An update node as the epilogue of the product whose C is its gradient (see fusableUpdate), and
 * with `biasUpdate` that of the bias whose gradient is the product's column sums (fusableBiasUpdate).
 */
export function updateEpilogue(env: LowerEnv, n: Node, biasUpdate?: Node): MatmulEpilogue {
  if (!fusableUpdate(n)) throw new GraphError(`${n.op} ${n.outputs[0]?.name}: this update cannot run in a product's epilogue`);
  if (biasUpdate && !fusableBiasUpdate(n, biasUpdate)) throw new GraphError(`${biasUpdate.op} ${biasUpdate.outputs[0]?.name}: this update cannot run in the epilogue of ${n.outputs[0].name}'s`);
  const [param, state1, state2] = n.outputs;
  const [bias, biasState1, biasState2] = biasUpdate?.outputs ?? [];
  const a = n.attrs as Partial<ControlAttrs>;
  const common = {
    rows: param.shape[0], cols: param.shape[1], offset: env.offset(param), ...(bias ? { biasOffset: env.offset(bias) } : {}),
    weightDecay: a.weightDecay, decoupled: a.decoupled, scheduled: a.scheduled, label: `${n.op} ${param.name}${bias ? ` and ${bias.name}` : ''}`,
  };
  if (n.op === 'sgd') {
    const s = n.attrs as SgdAttrs;
    return sgdEpilogue(env.ctx, { ...common, lr: s.lr, momentum: s.momentum }, {
      param: env.buf(param), accum: state1 && env.buf(state1), control: env.control,
      ...(bias ? { bias: { param: env.buf(bias), m: biasState1 && env.buf(biasState1) } } : {}),
    });
  }
  const h = n.attrs as AdamAttrs;
  return adamEpilogue(env.ctx, { ...common, lr: h.lr, beta1: h.beta1, beta2: h.beta2, epsilon: h.epsilon, stepOffset: adamStepOffset(env) }, {
    param: env.buf(param), m: env.buf(state1), v: env.buf(state2), step: env.step, control: env.control,
    ...(bias ? { bias: { param: env.buf(bias), m: env.buf(biasState1), v: env.buf(biasState2) } } : {}),
  });
}

/**
 * Adam's t is the counter plus this: an update runs after the loss, so where the loss advanced the
 * counter (LowerEnv.stepAdvance 'loss') it already holds this step's number; else one short of it.
 */
function adamStepOffset(env: LowerEnv): number {
  return env.stepAdvance === 'loss' ? 0 : 1;
}

export function lowerUpdate(env: LowerEnv, n: Node): Dispatch[] {
  if (n.op === CLIP_OP) {
    if (!env.control) throw new GraphError('clipping needs the training control buffer');
    const sizes = n.inputs.map((g) => g.size);
    // Scratch for the partial sums, made while lowering: it belongs to the compiled graph.
    const partials = env.ctx.storage(4 * clipPartials(sizes), 'clip partial sums');
    return prepareGlobalNormClip(env.ctx, { clipNorm: n.attrs.clipNorm as number },
      n.inputs.map((g) => ({ buffer: env.buf(g), offset: env.offset(g), n: g.size, label: g.name })), { partials, control: env.control });
  }
  const [grad] = n.inputs;
  if (n.op === 'sgd') {
    const [param, accum] = n.outputs;
    const a = n.attrs as SgdAttrs;
    return [prepareSgd(env.ctx, { n: param.size, lr: a.lr, momentum: a.momentum, ...controlOf(a), label: `sgd ${param.name}` },
      { param: env.buf(param), grad: env.buf(grad), accum: accum && env.buf(accum), control: env.control })];
  }
  if (n.op === 'adam') {
    const [param, m, v] = n.outputs;
    const a = n.attrs as AdamAttrs;
    return [prepareAdam(env.ctx, { n: param.size, lr: a.lr, beta1: a.beta1, beta2: a.beta2, epsilon: a.epsilon, stepOffset: adamStepOffset(env), ...controlOf(a), label: `adam ${param.name}` },
      { param: env.buf(param), grad: env.buf(grad), m: env.buf(m), v: env.buf(v), step: env.step, control: env.control })];
  }
  throw new GraphError(`no update lowering for optimizer "${n.op}"`);
}
