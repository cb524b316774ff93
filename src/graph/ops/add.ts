// add: y = a + b elementwise (same shapes), e.g. a residual connection. Its backward passes dy to
// both inputs in one pass (da (+)= dy, db (+)= dy) and saves nothing from the forward.
import type { OpRule } from '../registry.js';
import { shapeStr } from '../tensor.js';
import { prepareAdd, prepareAddBackward } from '../../kernels/copy.js';
import { whole } from './common.js';

export type AddAttrs = { name: string };

export const add: OpRule<AddAttrs> = {
  op: 'add',
  title: 'add',

  shape(s) {
    const [a, b] = s.inputs;
    if (a.dtype !== 'f32' || b.dtype !== 'f32') s.fail('a and b must be f32');
    if (shapeStr(a.shape) !== shapeStr(b.shape)) s.fail(`a and b must have the same shape (${shapeStr(a.shape)} ≠ ${shapeStr(b.shape)})`);
    return [s.tensor(`${s.name}/y`, a.shape)];
  },

  gradient: { kind: 'kernel', saves: () => [] },

  lower(env, n, grad) {
    const [a, b] = n.inputs;
    const [y] = n.outputs;
    const { name } = n.attrs;
    const forward = [prepareAdd(env.ctx, { n: y.size, label: name }, { a: whole(env, a, name), b: whole(env, b, name), y: whole(env, y, name) })];
    if (!grad) return { forward };
    const [da, db] = grad.grads;
    return {
      forward,
      backward: [prepareAddBackward(env.ctx, {
        n: y.size,
        accumulateA: grad.accumulate[0],
        // a + a: both gradients are one tensor; the second write adds to the first
        accumulateB: grad.accumulate[1] || (!!db && db === da),
        label: `${name} backward`,
      }, { dy: whole(env, grad.dOutputs[0]!, name), da: da && whole(env, da, name), db: db && whole(env, db, name) })],
    };
  },
};
