// softmax cross-entropy: a loss. From logits [B, C] and u32 labels [B], the batch-mean loss [1];
// its gradient (softmax − onehot)/B is made in the same kernel, so the forward seeds autodiff with
// d(logits). The loss is also summed into `lossSum` (state) for read-back every few steps.
import type { OpRule } from '../registry.js';
import { prepareSoftmaxXent } from '../../kernels/softmax-xent.js';
import { whole } from './common.js';

/** labelSmoothing: ε in [0, 1) (default 0), the target (1 − ε)·onehot + ε/C. */
export type SoftmaxXentAttrs = { name: string; labelSmoothing?: number };

/**
 * Outputs, in order: loss [1], dlogits [B, C], per-example loss [B], lossSum [1] (state); and where
 * src/graph/fuse-accuracy.ts moved an accuracy op in, its predictions [B] u32 and correct [1] (state).
 */
export const softmaxXent: OpRule<SoftmaxXentAttrs> = {
  op: 'xent',
  title: 'softmax cross-entropy',

  shape(s, attrs) {
    const [logits, labels] = s.inputs;
    const eps = attrs.labelSmoothing ?? 0;
    if (!(eps >= 0 && eps < 1)) s.fail(`labelSmoothing must be in [0, 1), got ${attrs.labelSmoothing}`);
    if (logits.shape.length !== 2) s.fail('logits must be 2-D [batch, classes]');
    if (labels.dtype !== 'u32' || labels.shape.length !== 1 || labels.shape[0] !== logits.shape[0]) {
      s.fail(`labels must be u32 [${logits.shape[0]}] class ids`);
    }
    return [
      s.tensor(`${s.name}/loss`, [1]),
      s.tensor(`${s.name}/dlogits`, logits.shape),
      s.tensor(`${s.name}/per_example`, [logits.shape[0]]),
      s.tensor(`${s.name}/loss_sum`, [1], 'f32', 'state'),
    ];
  },

  gradient: { kind: 'loss', loss: (n) => n.outputs[0], seeds: (n) => [{ input: 0, gradient: n.outputs[1] }] },

  lower(env, n) {
    const [logits, labels] = n.inputs;
    const [loss, dlogits, perExample, lossSum, predictions, correct] = n.outputs;
    const [B, C] = logits.shape;
    return {
      forward: prepareSoftmaxXent(env.ctx, { batch: B, classes: C, accumulateLoss: true, labelSmoothing: n.attrs.labelSmoothing, label: n.attrs.name }, {
        logits: whole(env, logits, 'xent'), labels: env.buf(labels), loss: env.buf(perExample), dlogits: env.buf(dlogits),
        meanLoss: env.buf(loss), lossSum: env.buf(lossSum),
        ...(predictions ? { predictions: env.buf(predictions), correct: env.buf(correct) } : {}),
        ...(env.stepAdvance === 'loss' ? { stepCounter: env.step } : {}),
      }),
    };
  },
};
