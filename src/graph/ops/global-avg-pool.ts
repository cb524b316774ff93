// globalAvgPool: x [N, H, W, C] (NHWC) → y [N, C], the mean over each image; its backward spreads
// dy / (H·W) over the pixels and saves nothing from the forward.
import type { OpRule } from '../registry.js';
import { globalAvgPool as globalAvgPoolKernel, globalAvgPoolBackward } from '../../kernels/global-pool.js';
import { whole } from './common.js';

export type GlobalAvgPoolAttrs = { name: string };

export const globalAvgPool: OpRule<GlobalAvgPoolAttrs> = {
  op: 'globalavgpool',
  title: 'global average pool',

  shape(s) {
    const [x] = s.inputs;
    if (x.shape.length !== 4) s.fail('x must be 4-D [batch, height, width, channels] (NHWC)');
    return [s.tensor(`${s.name}/y`, [x.shape[0], x.shape[3]])];
  },

  gradient: { kind: 'kernel', saves: () => [] },

  lower(env, n, grad) {
    const [x] = n.inputs;
    const [y] = n.outputs;
    const { name } = n.attrs;
    const spec = { batch: x.shape[0], H: x.shape[1], W: x.shape[2], channels: x.shape[3], label: name };
    const forward = [globalAvgPoolKernel(env.ctx, spec, { x: whole(env, x, name), y: env.buf(y) })];
    const [dx] = grad?.grads ?? [];
    if (!grad || !dx) return { forward, backward: grad && [[]] };
    return {
      forward,
      backward: [[globalAvgPoolBackward(env.ctx, { ...spec, accumulate: grad.accumulate[0], label: `${name} backward` },
        { dy: whole(env, grad.dOutputs[0]!, name), dx: env.buf(dx) })]],
    };
  },
};
