// dense: y = act(x·w + b), x [B, in], w [in, out], b [out] (optional). The activation is fused
// into the matmul; its backward runs in place over dy.
import type { OpRule } from '../registry.js';
import type { Dispatch } from '../../gpu/dispatch.js';
import { ACTIVATION_GRADS_FROM_Y, fusesBiasGrad, matmul, matmulKernelFor, matmulSplitK, splitKFactor, type Activation, type MatmulSpec } from '../../kernels/matmul.js';
import { fusableBiasUpdate, fusableUpdate, updateEpilogue } from '../update.js';
import { hasUpdateEpilogue } from '../../kernels/optimizer.js';
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
    // w's update in the dW product's epilogue, where that product runs unsplit on the subgroup kernel
    // anyway (a GPU's workgroup-memory tiles or split K beat the saved pass) and the device allows the
    // epilogue's storage buffers; then b's too, from the column sums of dz that product takes (a
    // short batch), where it is the same optimizer.
    fusesUpdate(ctx, n, input, update, fused) {
      const [x, w, b] = n.inputs;
      const spec = weightGradSpec(x.shape[0], x.shape[1], w.shape[1]);
      const layout = { cols: w.shape[1], offset: w.offset };
      if (matmulKernelFor(ctx, spec) !== 'subgroup' || splitKFactor(ctx, spec) !== 1) return false;
      if (input === 1) return fusableUpdate(update) && hasUpdateEpilogue(ctx, layout);
      const weightUpdate = fused[1];
      return input === 2 && !!b && !!weightUpdate && fusableBiasUpdate(weightUpdate, update) && fusesBiasGrad(ctx, x.shape[0])
        && hasUpdateEpilogue(ctx, { ...layout, withBias: true });
    },
    // Its first backward pass, dz = dy ⊙ act'(y) in place (the next dense layer's dx may do it instead).
    activationGrad: (n) => (n.attrs.activation !== 'none' ? n.attrs.activation : undefined),
    // The derivative of the layer before, as dx is stored over that layer's output, which is this
    // layer's x, where dx comes after dW, which reads x; beside it, where w's update is fused into
    // dW and dx goes first. And only where the product costs the same with it: the subgroup kernel,
    // unsplit.
    appliesActivationGrad(ctx, n, input, activation, updates) {
      if (input !== 0 || !ACTIVATION_GRADS_FROM_Y.includes(activation)) return false;
      const spec = dxSpec(n.inputs[0].shape[0], n.inputs[0].shape[1], n.inputs[1].shape[1]);
      if (matmulKernelFor(ctx, spec) !== 'subgroup' || splitKFactor(ctx, spec) !== 1) return false;
      return updates.some((u) => u) ? 'beside' : 'in place';
    },
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
    // dz = dy ⊙ act'(y), in place: dy has no other reader (unless the layer after applied it)
    if (act !== 'none' && !grad.activated[0]) back.push(prepareActivationBackward(env.ctx, { n: B * N, activation: act, label: `${name}/${act}'` }, { y: env.buf(y), dy: dz, dx: dz }));
    // w's update in the dW product's epilogue (fusesUpdate): then dx, which reads w, goes first.
    // b's may be there too, from the product's column sums.
    const [, update, biasUpdate] = grad.updates;
    // dx = dz·wᵀ, or with the derivative of the layer before applied as it is stored over x (appliesActivationGrad)
    const activationGrad = grad.activationGrads[0];
    // (Over x where dx is a view of it, else beside it, reading x.)
    const activationGradFrom = activationGrad && dx && dx.root !== x.root ? { buffer: env.buf(x), offset: env.offset(x) } : undefined;
    const dxProduct = () => dx && matmulSplitK(env.ctx, { ...dxSpec(B, K, N), offC: env.offset(dx), accumulate: acc[0], activationGrad, activationGradFrom, label: `${name}/dx${activationGrad ? ` (⊙ ${activationGrad}')` : ''}` }, { a: dz, b: env.buf(w), c: env.buf(dx) });
    if (update) back.push(...(dxProduct() ?? []));
    // db = 1ᵀ·dz in the dW product's pass over dz where the kernel can (a short batch), else its own column sum.
    // (The sums accumulate as the product does: not at all with an update in its epilogue.)
    const fuseDb = !!biasUpdate || (!!((dw || update) && db && b) && (update ? !acc[2] : acc[1] === acc[2]) && fusesBiasGrad(env.ctx, B));
    const dbias = fuseDb && db ? env.buf(db) : undefined;
    const dwSpec = { ...weightGradSpec(B, K, N), offA: env.offset(x), biasGrad: fuseDb };
    if (update) {
      const epilogue = updateEpilogue(env, update, biasUpdate);
      back.push(matmul(env.ctx, { ...dwSpec, offC: env.offset(w), epilogue, label: `${name}/dW${fuseDb ? '+db' : ''}+${update.op}` }, { a: env.buf(x), b: dz, c: env.buf(w), dbias }));
    } else if (dw) {
      back.push(...matmulSplitK(env.ctx, { ...dwSpec, accumulate: acc[1], label: fuseDb ? `${name}/dW+db` : `${name}/dW` }, { a: env.buf(x), b: dz, c: env.buf(dw), dbias }));
    }
    if (db && b && !fuseDb) back.push(...columnSum(env.ctx, { rows: B, cols: N, accumulate: acc[2], label: `${name}/db` }, { x: dz, out: env.buf(db) }));
    if (!update) back.push(...(dxProduct() ?? []));
    return { forward, backward: [back] };
  },
};

/** dx = dz·wᵀ of a dense layer over a batch of B, dz [B, N], w [K, N]. */
function dxSpec(B: number, K: number, N: number): MatmulSpec {
  return { M: B, N: K, K: N, transB: true };
}

/** dW = xᵀ·dz of a dense layer over a batch of B, x [B, K], dz [B, N]. */
function weightGradSpec(B: number, K: number, N: number): MatmulSpec {
  return { M: K, N, K: B, transA: true };
}
