// concat: xs[i] [..., C_i] → y [..., ΣC_i] along the LAST axis (the other dimensions equal), one
// strided copy per input. Its backward copies each input's column range of dy; it saves nothing.
import type { OpRule } from '../registry.js';
import { shapeStr } from '../tensor.js';
import { prepareCopy, prepareConcatBackward } from '../../kernels/copy.js';
import { whole } from './common.js';

export type ConcatAttrs = { name: string };

export const concat: OpRule<ConcatAttrs> = {
  op: 'concat',
  title: 'concat',

  shape(s) {
    const xs = s.inputs;
    if (xs.length === 0) s.fail('needs at least one input');
    const lead = xs[0].shape.slice(0, -1);
    for (const x of xs) {
      if (x.dtype !== 'f32') s.fail(`${x} is not f32`);
      if (x.shape.length !== xs[0].shape.length || shapeStr(x.shape.slice(0, -1)) !== shapeStr(lead)) {
        s.fail(`every input must be [${[...lead, 'C'].join(', ')}]: all dimensions but the last equal`);
      }
    }
    return [s.tensor(`${s.name}/y`, [...lead, xs.reduce((c, x) => c + x.shape[x.shape.length - 1], 0)])];
  },

  gradient: { kind: 'kernel', saves: () => [] },

  lower(env, n, grad) {
    const xs = n.inputs;
    const [y] = n.outputs;
    const { name } = n.attrs;
    const cols = xs.map((x) => x.shape[x.shape.length - 1]);
    const total = y.shape[y.shape.length - 1];
    const rows = y.size / total;
    // Copies with the input's own offset, so views (a recurrent op's output) need no copy first.
    let at = 0;
    const forward = xs.map((x, i) => {
      const d = prepareCopy(env.ctx, { rows, cols: cols[i], ldX: cols[i], offX: env.offset(x), ldY: total, offY: at, label: `${name}/in${i}` },
        { x: env.buf(x), y: whole(env, y, name) });
      at += cols[i];
      return d;
    });
    if (!grad) return { forward };
    const dxs = grad.grads.map((d) => d && whole(env, d, `${name} backward`));
    // concat([a, a]): the later copy into one gradient tensor adds to the earlier
    const accumulate = grad.accumulate.map((acc, i) => acc || (!!grad.grads[i] && grad.grads.slice(0, i).includes(grad.grads[i])));
    return {
      forward,
      backward: [prepareConcatBackward(env.ctx, { rows, cols, accumulate, label: `${name} backward` }, { dy: whole(env, grad.dOutputs[0]!, name), dxs })],
    };
  },
};
