// layerNorm (Keras LayerNormalization, axis −1): each row of x [..., C] normalized over its C
// features, then scaled by γ and shifted by β. Inputs: [x, gamma?, beta?].
import type { OpRule } from '../registry.js';
import { layerNorm as layerNormKernel, normBackward } from '../../kernels/norm.js';
import { whole } from './common.js';

export type LayerNormAttrs = { name: string; epsilon: number; hasGamma: boolean; hasBeta: boolean };

export const layerNorm: OpRule<LayerNormAttrs> = {
  op: 'layernorm',
  title: 'layer normalization',

  shape(s, a) {
    const [x, ...rest] = s.inputs;
    const C = x.shape[x.shape.length - 1];
    const want = (a.hasGamma ? 1 : 0) + (a.hasBeta ? 1 : 0);
    if (rest.length !== want) s.fail(`needs ${want + 1} inputs (x${a.hasGamma ? ', gamma' : ''}${a.hasBeta ? ', beta' : ''}), got ${s.inputs.length}`);
    for (const t of rest) if (t.shape.length !== 1 || t.shape[0] !== C) s.fail(`${t.name} must be [${C}], one value per feature`);
    if (!(a.epsilon > 0)) s.fail(`epsilon must be positive, got ${a.epsilon}`);
    const R = x.size / C;
    return [s.tensor(`${s.name}/y`, x.shape), s.tensor(`${s.name}/mean`, [R]), s.tensor(`${s.name}/invstd`, [R])];
  },

  gradient: { kind: 'kernel', saves: (n) => [n.inputs[0], n.outputs[1], n.outputs[2]] },

  lower(env, n, grad) {
    const [x] = n.inputs;
    const { name, epsilon, hasGamma, hasBeta } = n.attrs;
    const gi = hasGamma ? 1 : undefined;
    const bi = hasBeta ? 1 + (hasGamma ? 1 : 0) : undefined;
    const C = x.shape[x.shape.length - 1];
    const spec = { rows: x.size / C, cols: C, epsilon, label: name };
    const gamma = gi === undefined ? undefined : env.buf(n.inputs[gi]);
    const beta = bi === undefined ? undefined : env.buf(n.inputs[bi]);
    const xb = whole(env, x, name);
    const mean = env.buf(n.outputs[1]), invstd = env.buf(n.outputs[2]);
    const forward = layerNormKernel(env.ctx, spec, { x: xb, y: env.buf(n.outputs[0]), mean, invstd, gamma, beta });
    if (!grad) return { forward };
    const g = (i: number | undefined) => (i === undefined ? undefined : grad.grads[i]);
    const acc = (i: number | undefined) => (i === undefined ? false : grad.accumulate[i]);
    const dgamma = g(gi), dbeta = g(bi);
    const back = normBackward(env.ctx, 'layer', {
      ...spec, label: `${name} backward`, accumulate: { dx: grad.accumulate[0], dgamma: acc(gi), dbeta: acc(bi) },
    }, {
      x: xb, mean, invstd, dy: whole(env, grad.dOutputs[0]!, name), gamma,
      dx: grad.grads[0] && whole(env, grad.grads[0], name), dgamma: dgamma && env.buf(dgamma), dbeta: dbeta && env.buf(dbeta),
    });
    return { forward, backward: [back] };
  },
};
