// activation: y = f(x) elementwise (relu, sigmoid, tanh, none), or softmax over the last axis.
// Every backward is computed from the forward OUTPUT y, so y is what it saves.
import type { OpRule } from '../registry.js';
import { GraphError } from '../errors.js';
import type { Activation } from '../../kernels/matmul.js';
import { prepareActivation, prepareActivationBackward } from '../../kernels/activation.js';
import { whole } from './common.js';

export type ActivationKind = Activation | 'softmax';
export type ActivationAttrs = { name: string; activation: ActivationKind };

const KINDS: readonly ActivationKind[] = ['none', 'relu', 'sigmoid', 'tanh', 'softmax'];

export const activation: OpRule<ActivationAttrs> = {
  op: 'activation',
  title: 'activation',

  shape(s, a) {
    if (!KINDS.includes(a.activation)) s.fail(`unknown activation "${a.activation}" (${KINDS.join(', ')})`);
    return [s.tensor(`${s.name}/y`, s.inputs[0].shape)];
  },

  gradient: { kind: 'kernel', saves: (n) => [n.outputs[0]] },

  lower(env, n, grad) {
    const [x] = n.inputs;
    const [y] = n.outputs;
    const { activation: act, name } = n.attrs;
    if (act === 'softmax') throw new GraphError(`${name} (activation): softmax is not lowered yet (its kernel is missing)`);
    const forward = [prepareActivation(env.ctx, { n: x.size, activation: act, label: name }, { x: whole(env, x, 'activation'), y: env.buf(y) })];
    const [dx] = grad?.grads ?? [];
    if (!grad || !dx) return { forward, backward: grad && [[]] };
    return {
      forward,
      backward: [[prepareActivationBackward(env.ctx, { n: dx.size, activation: act, accumulate: grad.accumulate[0], label: `${name} backward` },
        { y: env.buf(y), dy: env.buf(grad.dOutputs[0]!), dx: env.buf(dx) })]],
    };
  },
};
