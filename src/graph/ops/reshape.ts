// reshape: a view with another shape of the same elements (no work); its gradient is a view too.
import type { OpRule } from '../registry.js';
import { shapeStr } from '../tensor.js';

export type ReshapeAttrs = { name: string; shape: readonly number[] };

export const reshape: OpRule<ReshapeAttrs> = {
  op: 'reshape',
  title: 'reshape',

  shape(s, a) {
    const [x] = s.inputs;
    const size = a.shape.reduce((p, d) => p * d, 1);
    if (size !== x.size) s.fail(`cannot view ${x.size} elements as ${shapeStr(a.shape)}`);
    const y = s.tensor(`${s.name}/y`, a.shape, x.dtype);
    y.viewOf = x;
    return [y];
  },

  gradient: { kind: 'view' },

  lower: () => ({ forward: [] }),
};
