// mean squared error: a loss (Keras MSE). From pred and target [B, D] f32, the mean over all
// elements of (pred − target)² [1]; its gradient 2(pred − target)/(B·D) is made in the same
// kernel, so the forward seeds autodiff with d(pred). The loss is also summed into `lossSum`.
import type { OpRule } from '../registry.js';
import { shapeStr } from '../tensor.js';
import { prepareMse } from '../../kernels/mse.js';
import { whole } from './common.js';

export type MseAttrs = { name: string };

/** Outputs, in order: loss [1], dpred [B, D], lossSum [1] (state). */
export const meanSquaredError: OpRule<MseAttrs> = {
  op: 'mse',
  title: 'mean squared error',

  shape(s) {
    const [pred, target] = s.inputs;
    if (pred.dtype !== 'f32' || pred.shape.length !== 2) s.fail('pred must be f32 2-D [batch, values]');
    if (target.dtype !== 'f32' || shapeStr(target.shape) !== shapeStr(pred.shape)) s.fail(`target must be f32 ${shapeStr(pred.shape)}, like pred`);
    return [
      s.tensor(`${s.name}/loss`, [1]),
      s.tensor(`${s.name}/dpred`, pred.shape),
      s.tensor(`${s.name}/loss_sum`, [1], 'f32', 'state'),
    ];
  },

  gradient: { kind: 'loss', loss: (n) => n.outputs[0], seeds: (n) => [{ input: 0, gradient: n.outputs[1] }] },

  lower(env, n) {
    const [pred, target] = n.inputs;
    const [loss, dpred, lossSum] = n.outputs;
    const { name } = n.attrs;
    const [B, D] = pred.shape;
    return {
      forward: prepareMse(env.ctx, { batch: B, dim: D, accumulateLoss: true, label: name }, {
        pred: whole(env, pred, name), target: whole(env, target, name), dpred: env.buf(dpred), meanLoss: env.buf(loss), lossSum: env.buf(lossSum),
      }),
    };
  },
};
