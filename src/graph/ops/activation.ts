// activation: y = f(x) elementwise (relu, sigmoid, tanh, gelu, none), or softmax over the last axis.
// Every backward but gelu's is computed from the forward OUTPUT y, so y is what it saves; gelu's
// derivative is no function of y, so it saves the input x.
import type { OpRule } from '../registry.js';
import { prepareActivation, prepareActivationBackward, type ElementwiseActivation } from '../../kernels/activation.js';
import { prepareSoftmax, prepareSoftmaxBackward } from '../../kernels/softmax.js';
import type { Dispatch } from '../../gpu/dispatch.js';
import { whole } from './common.js';

/** An elementwise activation, or softmax over the last axis. */
export type ActivationKind = ElementwiseActivation | 'softmax';
export type ActivationAttrs = { name: string; activation: ActivationKind };

const KINDS: readonly ActivationKind[] = ['none', 'relu', 'sigmoid', 'tanh', 'gelu', 'softmax'];

export const activation: OpRule<ActivationAttrs> = {
  op: 'activation',
  title: 'activation',

  shape(s, a) {
    if (!KINDS.includes(a.activation)) s.fail(`unknown activation "${a.activation}" (${KINDS.join(', ')})`);
    return [s.tensor(`${s.name}/y`, s.inputs[0].shape)];
  },

  gradient: { kind: 'kernel', saves: (n) => [n.attrs.activation === 'gelu' ? n.inputs[0] : n.outputs[0]] },

  lower(env, n, grad) {
    const [x] = n.inputs;
    const [y] = n.outputs;
    const { activation: act, name } = n.attrs;
    const [dx] = grad?.grads ?? [];
    const dy = grad?.dOutputs[0];
    if (act === 'softmax') {
      // over the last axis: rows are every other dimension
      const cols = x.shape[x.shape.length - 1];
      const spec = { rows: x.size / cols, cols, label: name };
      const forward = [prepareSoftmax(env.ctx, spec, { x: whole(env, x, name), y: env.buf(y) })];
      if (!grad || !dx) return { forward, backward: grad && [[]] };
      const back: Dispatch = prepareSoftmaxBackward(env.ctx, { ...spec, accumulate: grad.accumulate[0], label: `${name} backward` },
        { y: env.buf(y), dy: whole(env, dy!, name), dx: whole(env, dx, name) });
      return { forward, backward: [[back]] };
    }
    const forward = [prepareActivation(env.ctx, { n: x.size, activation: act, label: name }, { x: whole(env, x, 'activation'), y: env.buf(y) })];
    if (!grad || !dx) return { forward, backward: grad && [[]] };
    return {
      forward,
      backward: [[prepareActivationBackward(env.ctx, { n: dx.size, activation: act, accumulate: grad.accumulate[0], label: `${name} backward` },
        { y: act === 'gelu' ? whole(env, x, name) : env.buf(y), dy: env.buf(dy!), dx: env.buf(dx) })]],
    };
  },
};
