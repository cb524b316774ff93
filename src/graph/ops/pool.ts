// maxpool and avgpool: NHWC windows (TF SAME/VALID). Max pooling records each output's argmax
// for its backward; average pooling's backward needs nothing from the forward.
import type { GradientRequest, OpRule, ShapeContext } from '../registry.js';
import { maxPool2d, maxPool2dBackward, avgPool2d, avgPool2dBackward, type Pool2dBackwardSpec } from '../../kernels/pool.js';
import { ACTIVATION_GRADS_FROM_Y, type Activation } from '../../kernels/matmul.js';
import type { Padding } from '../../kernels/conv2d.js';
import type { Tensor } from '../tensor.js';
import { pair, whole, windowOut } from './common.js';

/** Options of Graph.maxPool and Graph.avgPool: window, stride and padding. */
export interface PoolOptions {
  size: number | [number, number];
  stride?: number | [number, number];
  padding?: Padding;
}

export type PoolAttrs = { name: string; size: [number, number]; stride: [number, number]; padding: Padding };

export function poolAttrs(opts: PoolOptions, name: string): PoolAttrs {
  return { name, size: pair(opts.size, 2), stride: pair(opts.stride ?? opts.size, 2), padding: opts.padding ?? 'SAME' };
}

/** The pooled output y [N, oh, ow, C] (shared by both pools). */
function pooledShape(s: ShapeContext, a: PoolAttrs): number[] {
  const [x] = s.inputs;
  if (x.shape.length !== 4) s.fail('x must be 4-D [batch, height, width, channels] (NHWC)');
  const [kh, kw] = a.size;
  const [sh, sw] = a.stride;
  const [N, H, W, C] = x.shape;
  const oh = windowOut(H, kh, sh, a.padding), ow = windowOut(W, kw, sw, a.padding);
  if (oh < 1 || ow < 1) s.fail(`a ${kh}x${kw} VALID window does not fit the ${H}x${W} input`);
  return [N, oh, ow, C];
}

function poolSpec(n: { inputs: readonly Tensor[]; attrs: PoolAttrs }) {
  const [x] = n.inputs;
  const [kH, kW] = n.attrs.size;
  return {
    batch: x.shape[0], inH: x.shape[1], inW: x.shape[2], channels: x.shape[3], kH, kW,
    stride: n.attrs.stride, padding: n.attrs.padding, label: n.attrs.name,
  };
}

/** The pooling backwards apply the derivative of an activation that is a function of its output (Pool2dBackwardSpec). */
function appliesFromOutput(_ctx: unknown, _n: unknown, input: number, activation: Activation): false | 'in place' {
  return input === 0 && ACTIVATION_GRADS_FROM_Y.includes(activation) && 'in place';
}

function backwardSpec(n: { inputs: readonly Tensor[]; attrs: PoolAttrs }, grad: GradientRequest): Pool2dBackwardSpec {
  return { ...poolSpec(n), accumulate: grad.accumulate[0], activationGrad: grad.activationGrads[0] };
}

export const maxpool: OpRule<PoolAttrs> = {
  op: 'maxpool',
  title: 'maxpool',

  shape(s, a) {
    const shape = pooledShape(s, a);
    return [s.tensor(`${s.name}/y`, shape), s.tensor(`${s.name}/argmax`, shape, 'u32')];
  },

  gradient: { kind: 'kernel', saves: (n) => [n.outputs[1]] /* argmax */, appliesActivationGrad: appliesFromOutput },

  lower(env, n, grad) {
    const [x] = n.inputs;
    const [y, argmax] = n.outputs;
    const forward = [maxPool2d(env.ctx, poolSpec(n), { x: whole(env, x, 'maxpool'), y: env.buf(y), argmax: env.buf(argmax) })];
    const [dx] = grad?.grads ?? [];
    if (!grad || !dx) return { forward, backward: grad && [[]] };
    return {
      forward,
      backward: [[maxPool2dBackward(env.ctx, backwardSpec(n, grad), { dy: env.buf(grad.dOutputs[0]!), argmax: env.buf(argmax), dx: env.buf(dx) })]],
    };
  },
};

export const avgpool: OpRule<PoolAttrs> = {
  op: 'avgpool',
  title: 'avgpool',

  shape: (s, a) => [s.tensor(`${s.name}/y`, pooledShape(s, a))],

  gradient: { kind: 'kernel', saves: () => [], appliesActivationGrad: appliesFromOutput },

  lower(env, n, grad) {
    const forward = [avgPool2d(env.ctx, poolSpec(n), { x: whole(env, n.inputs[0], 'avgpool'), y: env.buf(n.outputs[0]) })];
    const [dx] = grad?.grads ?? [];
    if (!grad || !dx) return { forward, backward: grad && [[]] };
    return {
      forward,
      backward: [[avgPool2dBackward(env.ctx, backwardSpec(n, grad), { dy: env.buf(grad.dOutputs[0]!), dx: env.buf(dx) })]],
    };
  },
};
