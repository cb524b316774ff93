// conv2d: NHWC convolution with filter [kh, kw, cin, cout], optional bias and fused activation,
// as implicit GEMMs (src/kernels/conv2d.ts): no patch matrix is stored, forward or backward.
import type { OpRule } from '../registry.js';
import type { Dispatch } from '../../gpu/dispatch.js';
import type { Activation } from '../../kernels/matmul.js';
import { conv2dForward, conv2dBackward, type Padding } from '../../kernels/conv2d.js';
import { prepareActivationBackward } from '../../kernels/activation.js';
import { allOrNoneAccumulate, pair, whole, windowOut } from './common.js';

/** Options of Graph.conv2d. */
export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: Padding;
  activation?: Activation;
}

export type Conv2dAttrs = { name: string; stride: [number, number]; padding: Padding; activation: Activation; hasBias: boolean };

export function conv2dAttrs(opts: Conv2dOptions, name: string, hasBias: boolean): Conv2dAttrs {
  return { name, stride: pair(opts.stride, 1), padding: opts.padding ?? 'SAME', activation: opts.activation ?? 'none', hasBias };
}

function convSpec(n: { inputs: readonly { shape: readonly number[] }[]; attrs: Conv2dAttrs }) {
  const [x, f] = n.inputs;
  return {
    batch: x.shape[0], inH: x.shape[1], inW: x.shape[2], inC: x.shape[3],
    kH: f.shape[0], kW: f.shape[1], outC: f.shape[3],
    stride: n.attrs.stride, padding: n.attrs.padding, activation: n.attrs.activation, label: n.attrs.name,
  };
}

export const conv2d: OpRule<Conv2dAttrs> = {
  op: 'conv2d',
  title: 'conv2d',

  shape(s, a) {
    const [x, filter, bias] = s.inputs;
    if (x.shape.length !== 4) s.fail('x must be 4-D [batch, height, width, channels] (NHWC)');
    if (filter.shape.length !== 4) s.fail('filter must be 4-D [kh, kw, in_channels, out_channels]');
    if (filter.shape[2] !== x.shape[3]) s.fail(`filter in_channels ${filter.shape[2]} ≠ x channels ${x.shape[3]}`);
    if (bias && (bias.shape.length !== 1 || bias.shape[0] !== filter.shape[3])) s.fail(`bias must be [${filter.shape[3]}]`);
    const [sh, sw] = a.stride;
    const [N, H, W, C] = x.shape;
    const [kh, kw, , O] = filter.shape;
    const oh = windowOut(H, kh, sh, a.padding), ow = windowOut(W, kw, sw, a.padding);
    if (oh < 1 || ow < 1) s.fail(`a ${kh}x${kw} VALID window does not fit the ${H}x${W} input`);
    return [s.tensor(`${s.name}/y`, [N, oh, ow, O])];
  },

  gradient: {
    kind: 'kernel',
    // x (for dFilter), the filter (for dx), and y for the activation's derivative
    saves: (n) => (n.attrs.activation !== 'none' ? [n.inputs[0], n.inputs[1], n.outputs[0]] : [n.inputs[0], n.inputs[1]]),
    // Its first backward pass, dz = dy ⊙ act'(y) in place (a pooling's backward may do it instead).
    activationGrad: (n) => (n.attrs.activation !== 'none' ? n.attrs.activation : undefined),
  },

  lower(env, n, grad) {
    const [x, filter, bias] = n.inputs;
    const [y] = n.outputs;
    const spec = convSpec(n);
    const forward = conv2dForward(env.ctx, spec, { x: whole(env, x, 'conv2d'), filter: env.buf(filter), bias: bias && env.buf(bias), y: env.buf(y) });
    if (!grad) return { forward };

    const dy = grad.dOutputs[0]!;
    const [dx, dFilter, dBias] = grad.grads;
    // dx may add to a gradient another reader of x wrote (a residual skip); the parameters' never do.
    const accumulate = allOrNoneAccumulate([dFilter, dBias], grad.accumulate.slice(1), `${n.attrs.name} (conv2d)`);
    const accumulateDx = !!dx && grad.accumulate[0];
    const back: Dispatch[] = [];
    const dz = whole(env, dy, `${spec.label} backward`);
    if (spec.activation !== 'none' && !grad.activated[0]) {
      back.push(prepareActivationBackward(env.ctx, { n: dy.size, activation: spec.activation, label: `${spec.label}/${spec.activation}'` }, { y: env.buf(y), dy: dz, dx: dz }));
    }
    back.push(...conv2dBackward(env.ctx, { ...spec, accumulate, accumulateDx }, {
      dy: dz, filter: env.buf(filter), x: whole(env, x, 'conv2d'),
      dx: dx && env.buf(dx), dFilter: dFilter && env.buf(dFilter), dBias: dBias && env.buf(dBias),
    }));
    return { forward, backward: [back] };
  },
};
