import type { GpuContext } from '../gpu/context.js';
import { ceilDiv, type Dispatch } from '../gpu/dispatch.js';
import type { KernelConstants } from '../gpu/kernel.js';
import { GpuError } from '../gpu/context.js';
import { ACTIVATION_CODE, type Activation } from './matmul.js';
import { checkPositive, checkSize, lanesFor, rowsPerGroup, strides, windowDim, type Padding, type WindowGeometry } from './conv2d.js';

/** A 2-D pooling over x [batch, inH, inW, channels] (NHWC) → y [batch, outH, outW, channels]. */
export interface Pool2dSpec {
  batch: number;
  inH: number;
  inW: number;
  channels: number;
  /** Window height and width. */
  kH: number;
  kW: number;
  /** [strideH, strideW] or one number for both; default the window size [kH, kW]. */
  stride?: number | [number, number];
  padding: Padding;
  label?: string;
}

export type Pool2dGeometry = WindowGeometry;

/** Output size and padding as TensorFlow computes them (e.g. 7x7, 2x2 window, stride 2, SAME → 4x4). */
export function pool2dGeometry(spec: Pool2dSpec, op = `pool2d${spec.label ? ` ${spec.label}` : ''}`): Pool2dGeometry {
  const { batch, inH, inW, channels, kH, kW } = spec;
  checkPositive(op, { batch, inH, inW, channels, kH, kW });
  const [strideH, strideW] = strides(spec.stride, [kH, kW]);
  checkPositive(op, { strideH, strideW });
  const h = windowDim(op, inH, kH, strideH, spec.padding);
  const w = windowDim(op, inW, kW, strideW, spec.padding);
  return { outH: h.out, outW: w.out, strideH, strideW, padTop: h.padBefore, padBottom: h.padAfter, padLeft: w.padBefore, padRight: w.padAfter };
}

type Entry = 'maxPool' | 'avgPool' | 'maxPoolBackward' | 'avgPoolBackward';

function poolDispatch(
  ctx: GpuContext, spec: Pool2dSpec, entry: Entry, opName: string,
  bufs: Record<string, GPUBuffer>, sizes: Record<string, number>, constants: KernelConstants = {},
): Dispatch {
  const op = `${opName}${spec.label ? ` ${spec.label}` : ''}`;
  const g = pool2dGeometry(spec, op);
  const inFloats = spec.batch * spec.inH * spec.inW * spec.channels;
  const outFloats = spec.batch * g.outH * g.outW * spec.channels;
  const shapeIn = `[${spec.batch}, ${spec.inH}, ${spec.inW}, ${spec.channels}]`;
  const shapeOut = `[${spec.batch}, ${g.outH}, ${g.outW}, ${spec.channels}]`;
  for (const [name, side] of Object.entries(sizes)) {
    const shown = name === 'argmaxIn' ? 'argmax' : name;
    checkSize(op, shown, bufs[name], side ? outFloats : inFloats, `${shown} ${side ? shapeOut : shapeIn}`);
  }
  const backward = entry.endsWith('Backward');
  const pixels = backward ? spec.batch * spec.inH * spec.inW : spec.batch * g.outH * g.outW;
  // Four channels per lane (the shader's *4 entry points, vec4 loads and stores) when C allows.
  const v4 = spec.channels % 4 === 0;
  const lanes = v4 ? spec.channels / 4 : spec.channels;
  const wg = lanesFor(ctx, lanes);
  const rows = rowsPerGroup(ctx, pixels, 16);
  const kernel = ctx.kernel('pool.wgsl', v4 ? `${entry}4` : entry, { WG: wg, ...constants });
  const label = spec.label ? `${spec.label}/${opName}` : `${opName} ${spec.kH}x${spec.kW}`;
  const params = kernel.params({
    batch: spec.batch, inH: spec.inH, inW: spec.inW, C: spec.channels,
    kH: spec.kH, kW: spec.kW, outH: g.outH, outW: g.outW,
    strideH: g.strideH, strideW: g.strideW, padTop: g.padTop, padLeft: g.padLeft,
    rowsPerGroup: rows,
  }, `${label} params`);
  return {
    kernel,
    bindGroup: kernel.bind({ params, ...(v4 ? Object.fromEntries(Object.entries(bufs).map(([k, b]) => [`${k}4`, b])) : bufs) }, label),
    workgroups: [ceilDiv(lanes, wg), ceilDiv(pixels, rows), 1],
    label,
    flops: backward ? inFloats : outFloats * spec.kH * spec.kW,
  };
}

/**
 * Max pooling: y = max of each window (padding never wins), and argmax (a u32 buffer shaped like y)
 * = the flat index into x of the first maximum in row-major window order, for the backward pass.
 */
export function maxPool2d(ctx: GpuContext, spec: Pool2dSpec, bufs: { x: GPUBuffer; y: GPUBuffer; argmax: GPUBuffer }): Dispatch {
  return poolDispatch(ctx, spec, 'maxPool', 'maxPool2d', { x: bufs.x, y: bufs.y, argmax: bufs.argmax }, { x: 0, y: 1, argmax: 1 });
}

/** What a pooling backward may do besides writing dx. */
export interface Pool2dBackwardSpec extends Pool2dSpec {
  /** dx += instead of dx =. */
  accumulate?: boolean;
  /**
   * The activation that made the pooled tensor: dx holds its output y on entry, and the gradient
   * is multiplied by its derivative (through y) and written over y. The gradient before the
   * activation, so the op that applied it skips that pass. relu, sigmoid or tanh; not with accumulate.
   */
  activationGrad?: Activation;
}

/** The pool shader's constants of a backward spec, checked. */
function backwardConstants(spec: Pool2dBackwardSpec, opName: string): KernelConstants {
  const act = spec.activationGrad ?? 'none';
  const op = `${opName}${spec.label ? ` ${spec.label}` : ''}`;
  if (act !== 'none' && !(act in GRAD_FROM_OUTPUT)) throw new GpuError(`${op}: the derivative of ${act} is not a function of its output; apply it with prepareActivationBackward`);
  if (act !== 'none' && spec.accumulate) throw new GpuError(`${op}: activationGrad reads the activation's output from dx, so dx cannot also accumulate`);
  return { ACCUMULATE: !!spec.accumulate, ACT_GRAD: act === 'none' ? 0 : ACTIVATION_CODE[act] };
}

/** The activations whose derivative the pooling backward applies (a function of the output). */
const GRAD_FROM_OUTPUT: Partial<Record<Activation, true>> = { relu: true, sigmoid: true, tanh: true };

/**
 * Max-pool backward: dx[i] (+)= Σ dy[o] over the windows o whose recorded argmax is i, as a gather
 * over input elements (no atomics). `argmax` is the forward's. See Pool2dBackwardSpec.
 */
export function maxPool2dBackward(ctx: GpuContext, spec: Pool2dBackwardSpec, bufs: { dy: GPUBuffer; argmax: GPUBuffer; dx: GPUBuffer }): Dispatch {
  return poolDispatch(ctx, spec, 'maxPoolBackward', 'maxPool2dBackward', { dy: bufs.dy, argmaxIn: bufs.argmax, dx: bufs.dx },
    { dy: 1, argmaxIn: 1, dx: 0 }, backwardConstants(spec, 'maxPool2dBackward'));
}

/** Average pooling: y = mean of each window's in-bounds elements (TensorFlow does not count padding). */
export function avgPool2d(ctx: GpuContext, spec: Pool2dSpec, bufs: { x: GPUBuffer; y: GPUBuffer }): Dispatch {
  return poolDispatch(ctx, spec, 'avgPool', 'avgPool2d', { x: bufs.x, y: bufs.y }, { x: 0, y: 1 });
}

/** Average-pool backward: dx[i] (+)= Σ dy[o] / (in-bounds size of window o) over the windows covering i (a gather). See Pool2dBackwardSpec. */
export function avgPool2dBackward(ctx: GpuContext, spec: Pool2dBackwardSpec, bufs: { dy: GPUBuffer; dx: GPUBuffer }): Dispatch {
  return poolDispatch(ctx, spec, 'avgPoolBackward', 'avgPool2dBackward', { dy: bufs.dy, dx: bufs.dx }, { dy: 1, dx: 0 }, backwardConstants(spec, 'avgPool2dBackward'));
}
