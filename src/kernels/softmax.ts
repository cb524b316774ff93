import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { checkCount, checkSize, gridStrideGroups, elementwiseLanes } from './activation.js';

export interface SoftmaxSpec {
  /** Rows R: the product of all dimensions but the last. */
  rows: number;
  /** Columns C: the last axis, the one softmax normalizes over. */
  cols: number;
  label?: string;
}

/** y = softmax(x) over the last axis of x [rows, cols] (max-subtracted: finite for any finite x). `x` and `y` must differ. */
export function prepareSoftmax(ctx: GpuContext, spec: SoftmaxSpec, bufs: { x: GPUBuffer; y: GPUBuffer }): Dispatch {
  const { rows: R, cols: C } = spec;
  const op = `softmax [${R},${C}]`;
  checkCount(op, 'rows', R);
  checkCount(op, 'cols', C);
  checkSize(op, 'x', bufs.x, R * C);
  checkSize(op, 'y', bufs.y, R * C);
  if (bufs.x === bufs.y) throw new GpuError(`${op}: x and y must be different buffers`);
  const wg = elementwiseLanes(ctx);
  const kernel = ctx.kernel('softmax.wgsl', 'forward', { WG: wg });
  const label = spec.label ?? op;
  const bindGroup = kernel.bind({ params: kernel.params({ R, C }), x: bufs.x, y: bufs.y }, label);
  return { kernel, bindGroup, workgroups: gridStrideGroups(ctx, R, wg), label, flops: 4 * R * C };
}

export interface SoftmaxBackwardSpec extends SoftmaxSpec {
  /** dx += … instead of dx = …. */
  accumulate?: boolean;
}

/**
 * dx (+)= y ⊙ (dy − Σ_row dy⊙y), per row, from the forward OUTPUT `y` (not x). `dx` must differ
 * from `y` and `dy`.
 */
export function prepareSoftmaxBackward(
  ctx: GpuContext, spec: SoftmaxBackwardSpec, bufs: { y: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer },
): Dispatch {
  const { rows: R, cols: C } = spec;
  const op = `softmax backward [${R},${C}]`;
  checkCount(op, 'rows', R);
  checkCount(op, 'cols', C);
  for (const k of ['y', 'dy', 'dx'] as const) checkSize(op, k, bufs[k], R * C);
  if (bufs.dx === bufs.y || bufs.dx === bufs.dy) throw new GpuError(`${op}: dx must differ from y and dy`);
  const wg = elementwiseLanes(ctx);
  const kernel = ctx.kernel('softmax.wgsl', 'backward', { WG: wg, ACCUMULATE: !!spec.accumulate });
  const label = spec.label ?? `${op}${spec.accumulate ? ' +=' : ''}`;
  const bindGroup = kernel.bind({ params: kernel.params({ R, C }), yIn: bufs.y, dy: bufs.dy, dx: bufs.dx }, label);
  return { kernel, bindGroup, workgroups: gridStrideGroups(ctx, R, wg), label, flops: (spec.accumulate ? 5 : 4) * R * C };
}
