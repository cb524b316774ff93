// batchNorm (Keras BatchNormalization, axis −1): x [..., C] normalized per feature c over every
// other axis (the batch, and H and W of NHWC images). Training normalizes with the batch's
// statistics and, in the same pass, moves the running mean and variance (persistent tensors, e.g.
// ParamStore weights) toward them; evaluation normalizes with the running statistics and writes
// nothing else. Inputs: [x, runningMean, runningVar, gamma?, beta?].
import type { OpRule } from '../registry.js';
import { GraphError } from '../errors.js';
import { batchNormInference, batchNormTrain, normBackward } from '../../kernels/norm.js';
import { whole } from './common.js';

export type BatchNormAttrs = {
  name: string;
  epsilon: number;
  momentum: number;
  /** true: batch statistics and running-statistics update; false: the running statistics (evaluation). */
  training: boolean;
  hasGamma: boolean;
  hasBeta: boolean;
};

/** The inputs' positions: x, running mean, running variance, then γ and β when present. */
export function batchNormSlots(a: { hasGamma: boolean; hasBeta: boolean }): { gamma?: number; beta?: number } {
  return { gamma: a.hasGamma ? 3 : undefined, beta: a.hasBeta ? 3 + (a.hasGamma ? 1 : 0) : undefined };
}

export const batchNorm: OpRule<BatchNormAttrs> = {
  op: 'batchnorm',
  title: 'batch normalization',

  shape(s, a) {
    const [x, ...rest] = s.inputs;
    if (x.shape.length < 2) s.fail('x must have a batch axis and a feature axis, [batch, ..., features]');
    const C = x.shape[x.shape.length - 1];
    const want = 2 + (a.hasGamma ? 1 : 0) + (a.hasBeta ? 1 : 0);
    if (rest.length !== want) s.fail(`needs ${want + 1} inputs (x, running mean, running variance${a.hasGamma ? ', gamma' : ''}${a.hasBeta ? ', beta' : ''}), got ${s.inputs.length}`);
    for (const t of rest) if (t.shape.length !== 1 || t.shape[0] !== C) s.fail(`${t.name} must be [${C}], one value per feature`);
    if (!(a.epsilon > 0)) s.fail(`epsilon must be positive, got ${a.epsilon}`);
    if (!(a.momentum >= 0 && a.momentum <= 1)) s.fail(`momentum must be in [0, 1], got ${a.momentum}`);
    const y = s.tensor(`${s.name}/y`, x.shape);
    if (!a.training) return [y];
    return [y, s.tensor(`${s.name}/mean`, [C]), s.tensor(`${s.name}/invstd`, [C])];
  },

  gradient: { kind: 'kernel', saves: (n) => [n.inputs[0], n.outputs[1], n.outputs[2]] },

  lower(env, n, grad) {
    const [x, runningMean, runningVar] = n.inputs;
    const { name, epsilon, momentum, training } = n.attrs;
    const slots = batchNormSlots(n.attrs);
    const gammaT = slots.gamma === undefined ? undefined : n.inputs[slots.gamma];
    const betaT = slots.beta === undefined ? undefined : n.inputs[slots.beta];
    const C = x.shape[x.shape.length - 1];
    const spec = { rows: x.size / C, cols: C, epsilon, label: name };
    const affine = { gamma: gammaT && env.buf(gammaT), beta: betaT && env.buf(betaT) };
    const xb = whole(env, x, name);
    const y = env.buf(n.outputs[0]);
    if (!training) {
      if (grad) throw new GraphError(`${name} (batch normalization): an evaluation batchNorm has no backward; build the training graph with training true`);
      return { forward: [batchNormInference(env.ctx, spec, { ...affine, x: xb, y, runningMean: env.buf(runningMean), runningVar: env.buf(runningVar) })] };
    }
    const mean = env.buf(n.outputs[1]), invstd = env.buf(n.outputs[2]);
    const forward = batchNormTrain(env.ctx, { ...spec, momentum }, {
      ...affine, x: xb, y, mean, invstd, running: { mean: env.buf(runningMean), variance: env.buf(runningVar) },
    });
    if (!grad) return { forward };
    const g = (i: number | undefined) => (i === undefined ? undefined : grad.grads[i]);
    const acc = (i: number | undefined) => (i === undefined ? false : grad.accumulate[i]);
    const dgamma = g(slots.gamma), dbeta = g(slots.beta);
    const back = normBackward(env.ctx, 'batch', {
      ...spec, label: `${name} backward`, accumulate: { dx: grad.accumulate[0], dgamma: acc(slots.gamma), dbeta: acc(slots.beta) },
    }, {
      x: xb, mean, invstd, dy: whole(env, grad.dOutputs[0]!, name), gamma: affine.gamma,
      dx: grad.grads[0] && whole(env, grad.grads[0], name), dgamma: dgamma && env.buf(dgamma), dbeta: dbeta && env.buf(dbeta),
    });
    return { forward, backward: [back] };
  },
};
