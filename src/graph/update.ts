// Parameter updates (the optimizer): nodes with inputs [grad] and outputs [param, ...optimizer
// state], added by the recorder after autodiff; Adam's step t comes from env.step.
import type { Dispatch } from '../gpu/dispatch.js';
import { prepareSgd, prepareAdam } from '../kernels/optimizer.js';
import { GraphError, type Node } from './graph.js';
import type { LowerEnv } from './registry.js';

export type SgdAttrs = { lr: number; momentum?: number };
export type AdamAttrs = { lr: number; beta1: number; beta2: number; epsilon: number };

export function lowerUpdate(env: LowerEnv, n: Node): Dispatch[] {
  const [grad] = n.inputs;
  if (n.op === 'sgd') {
    const [param, accum] = n.outputs;
    const { lr, momentum } = n.attrs as SgdAttrs;
    return [prepareSgd(env.ctx, { n: param.size, lr, momentum, label: `sgd ${param.name}` },
      { param: env.buf(param), grad: env.buf(grad), accum: accum && env.buf(accum) })];
  }
  if (n.op === 'adam') {
    const [param, m, v] = n.outputs;
    const { lr, beta1, beta2, epsilon } = n.attrs as AdamAttrs;
    return [prepareAdam(env.ctx, { n: param.size, lr, beta1, beta2, epsilon, label: `adam ${param.name}` },
      { param: env.buf(param), grad: env.buf(grad), m: env.buf(m), v: env.buf(v), step: env.step })];
  }
  throw new GraphError(`no update lowering for optimizer "${n.op}"`);
}
