// dropout: inverted dropout with a mask drawn on the GPU from (seed, stream, step); keep
// probability 1 (evaluation) is the identity and adds no node.
import type { OpRule, ShapeContext } from '../registry.js';
import { prepareDropout, prepareDropoutBackward } from '../../kernels/dropout.js';
import { whole } from './common.js';

/** stream: the node's index when built, so two dropouts of one seed draw different masks. */
export type DropoutAttrs = { name: string; keepProb: number; seed: number; stream: number };

function checkKeep(s: ShapeContext, a: DropoutAttrs): void {
  if (!(a.keepProb > 0 && a.keepProb <= 1)) s.fail(`keep probability must be in (0, 1], got ${a.keepProb}`);
}

export const dropout: OpRule<DropoutAttrs> = {
  op: 'dropout',
  title: 'dropout',

  identity(s, a) {
    checkKeep(s, a);
    return a.keepProb === 1;
  },

  shape(s, a) {
    checkKeep(s, a);
    const [x] = s.inputs;
    return [s.tensor(`${s.name}/y`, x.shape), s.tensor(`${s.name}/mask`, x.shape)];
  },

  gradient: { kind: 'kernel', saves: (n) => [n.outputs[1]] /* mask */ },

  lower(env, n, grad) {
    const [x] = n.inputs;
    const [y, mask] = n.outputs;
    const { keepProb, seed, stream, name } = n.attrs;
    const forward = [prepareDropout(env.ctx, { n: x.size, keepProb, seed, stream, label: name },
      { x: whole(env, x, 'dropout'), y: env.buf(y), mask: env.buf(mask), step: env.step })];
    const [dx] = grad?.grads ?? [];
    if (!grad || !dx) return { forward, backward: grad && [[]] };
    return {
      forward,
      backward: [[prepareDropoutBackward(env.ctx, { n: dx.size, keepProb, accumulate: grad.accumulate[0], label: `${name} backward` },
        { dy: env.buf(grad.dOutputs[0]!), mask: env.buf(mask), dx: env.buf(dx) })]],
    };
  },
};
