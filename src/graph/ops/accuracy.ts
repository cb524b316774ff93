// accuracy: predictions (argmax) [B] u32, and the count of correct ones added to `correct` (state).
import type { OpRule } from '../registry.js';
import { prepareArgmax } from '../../kernels/argmax.js';
import { whole } from './common.js';

export type AccuracyAttrs = { name: string };

export const accuracy: OpRule<AccuracyAttrs> = {
  op: 'accuracy',
  title: 'accuracy',

  shape(s) {
    const [logits, labels] = s.inputs;
    if (logits.shape.length !== 2) s.fail('logits must be 2-D [batch, classes]');
    if (labels.shape[0] !== logits.shape[0]) s.fail('labels and logits disagree on the batch size');
    return [s.tensor(`${s.name}/predictions`, [logits.shape[0]], 'u32'), s.tensor(`${s.name}/correct`, [1], 'u32', 'state')];
  },

  gradient: { kind: 'none' },

  lower(env, n) {
    const [logits, labels] = n.inputs;
    const [predictions, correct] = n.outputs;
    const [B, C] = logits.shape;
    return {
      forward: [prepareArgmax(env.ctx, { batch: B, classes: C, label: n.attrs.name },
        { x: whole(env, logits, 'accuracy'), predictions: env.buf(predictions), labels: env.buf(labels), correct: env.buf(correct) })],
    };
  },
};
