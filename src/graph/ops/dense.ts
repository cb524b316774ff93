// dense: y = act(x·w + b), x [B, in], w [in, out], b [out] (optional). The activation is fused
// into the matmul; its backward runs in place over dy.
import type { OpRule } from '../registry.js';
import type { Dispatch } from '../../gpu/dispatch.js';
import { fusesBiasGrad, matmulSplitK, type Activation } from '../../kernels/matmul.js';
import { columnSum } from '../../kernels/reduce.js';
import { prepareActivationBackward } from '../../kernels/activation.js';
import { whole } from './common.js';

export type DenseAttrs = { name: string; activation: Activation; hasBias: boolean };

export const dense: OpRule<DenseAttrs> = {
  op: 'dense',
  title: 'dense',

  shape(s) {
    const [x, w, b] = s.inputs;
    if (x.shape.length !== 2) s.fail('x must be 2-D [batch, features]; flatten it first');
    if (w.shape.length !== 2 || w.shape[0] !== x.shape[1]) s.fail(`w must be [${x.shape[1]}, units]`);
    if (b && (b.shape.length !== 1 || b.shape[0] !== w.shape[1])) s.fail(`b must be [${w.shape[1]}]`);
    return [s.tensor(`${s.name}/y`, [x.shape[0], w.shape[1]])];
  },

  gradient: {
    kind: 'kernel',
    // x and w for dW and dx; y for the activation's derivative (from the output)
    saves: (n) => (n.attrs.activation !== 'none' ? [n.inputs[0], n.inputs[1], n.outputs[0]] : [n.inputs[0], n.inputs[1]]),
  },

  lower(env, n, grad) {
    const [x, w, b] = n.inputs;
    const [y] = n.outputs;
    const { activation: act, name } = n.attrs;
    const [B, K] = x.shape;
    const N = w.shape[1];
    const forward = matmulSplitK(env.ctx, { M: B, N, K, activation: act, offA: env.offset(x), label: name },
      { a: env.buf(x), b: env.buf(w), bias: b && env.buf(b), c: whole(env, y, 'dense') });
    if (!grad) return { forward };

    const dy = grad.dOutputs[0]!;
    const [dx, dw, db] = grad.grads;
    const acc = grad.accumulate;
    const back: Dispatch[] = [];
    const dz = whole(env, dy, `${name} backward`);
    // dz = dy ⊙ act'(y), in place: dy has no other reader
    if (act !== 'none') back.push(prepareActivationBackward(env.ctx, { n: B * N, activation: act, label: `${name}/${act}'` }, { y: env.buf(y), dy: dz, dx: dz }));
    // db = 1ᵀ·dz in the dW product's pass over dz where the kernel can (a short batch), else its own column sum.
    const fuseDb = !!(dw && db && b) && acc[1] === acc[2] && fusesBiasGrad(env.ctx, B);
    if (dw) {
      back.push(...matmulSplitK(env.ctx, { M: K, N, K: B, transA: true, offA: env.offset(x), accumulate: acc[1], biasGrad: fuseDb, label: fuseDb ? `${name}/dW+db` : `${name}/dW` },
        { a: env.buf(x), b: dz, c: env.buf(dw), dbias: fuseDb ? env.buf(db!) : undefined }));
    }
    if (db && b && !fuseDb) back.push(...columnSum(env.ctx, { rows: B, cols: N, accumulate: acc[2], label: `${name}/db` }, { x: dz, out: env.buf(db) }));
    if (dx) back.push(...matmulSplitK(env.ctx, { M: B, N: K, K: N, transB: true, offC: env.offset(dx), accumulate: acc[0], label: `${name}/dx` }, { a: dz, b: env.buf(w), c: env.buf(dx) }));
    return { forward, backward: [back] };
  },
};
