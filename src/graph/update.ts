// Parameter updates (the optimizer): nodes with inputs [grad] and outputs [param, ...optimizer
// state], added by the recorder after autodiff; Adam's step t comes from env.step.
import type { Dispatch } from '../gpu/dispatch.js';
import { prepareSgd, prepareAdam } from '../kernels/optimizer.js';
import { clipPartials, prepareGlobalNormClip } from '../kernels/train-control.js';
import { GraphError, type Node } from './graph.js';
import type { LowerEnv } from './registry.js';
import { CLIP_OP, type ControlAttrs } from './train-control.js';

export type SgdAttrs = { lr: number; momentum?: number } & Partial<ControlAttrs>;
export type AdamAttrs = { lr: number; beta1: number; beta2: number; epsilon: number } & Partial<ControlAttrs>;

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
  const control = (a: Partial<ControlAttrs>) => ({ weightDecay: a.weightDecay, decoupled: a.decoupled, scheduled: a.scheduled, clipped: a.clipped });
  if (n.op === 'sgd') {
    const [param, accum] = n.outputs;
    const a = n.attrs as SgdAttrs;
    return [prepareSgd(env.ctx, { n: param.size, lr: a.lr, momentum: a.momentum, ...control(a), label: `sgd ${param.name}` },
      { param: env.buf(param), grad: env.buf(grad), accum: accum && env.buf(accum), control: env.control })];
  }
  if (n.op === 'adam') {
    const [param, m, v] = n.outputs;
    const a = n.attrs as AdamAttrs;
    return [prepareAdam(env.ctx, { n: param.size, lr: a.lr, beta1: a.beta1, beta2: a.beta2, epsilon: a.epsilon, ...control(a), label: `adam ${param.name}` },
      { param: env.buf(param), grad: env.buf(grad), m: env.buf(m), v: env.buf(v), step: env.step, control: env.control })];
  }
  throw new GraphError(`no update lowering for optimizer "${n.op}"`);
}
