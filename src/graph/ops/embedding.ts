// embedding (Keras Embedding): u32 ids [...] pick rows of table [inputDim, D]: y [..., D]. The ids
// are checked against inputDim with the data (Trainer.writeBatch), never read out of range here.
// The table's gradient sums each id's rows in a fixed order (src/kernels/embedding.ts).
import type { OpRule } from '../registry.js';
import { embedding as embeddingKernel, embeddingBackward } from '../../kernels/embedding.js';
import { whole } from './common.js';

export type EmbeddingAttrs = { name: string };

export const embedding: OpRule<EmbeddingAttrs> = {
  op: 'embedding',
  title: 'embedding',

  shape(s) {
    const [ids, table] = s.inputs;
    if (ids.dtype !== 'u32') s.fail('ids must be u32 (integer ids)');
    if (table.shape.length !== 2 || table.dtype !== 'f32') s.fail('table must be f32 [input_dim, output_dim]');
    return [s.tensor(`${s.name}/y`, [...ids.shape, table.shape[1]])];
  },

  gradient: { kind: 'kernel', saves: (n) => [n.inputs[0]] },

  lower(env, n, grad) {
    const [ids, table] = n.inputs;
    const { name } = n.attrs;
    const spec = { n: ids.size, dim: table.shape[1], vocab: table.shape[0], label: name };
    const idsBuf = whole(env, ids, name);
    const forward = [embeddingKernel(env.ctx, spec, { ids: idsBuf, table: env.buf(table), y: whole(env, n.outputs[0], name) })];
    const dtable = grad?.grads[1];
    if (!grad || !dtable) return { forward, backward: grad && [[]] };
    return {
      forward,
      backward: [embeddingBackward(env.ctx, { ...spec, accumulate: grad.accumulate[1], label: `${name} backward` },
        { ids: idsBuf, dy: whole(env, grad.dOutputs[0]!, name), dtable: env.buf(dtable) })],
    };
  },
};
