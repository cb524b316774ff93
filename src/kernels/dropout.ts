import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { ceilDiv } from '../gpu/dispatch.js';
import { checkCount, checkSize, gridStrideGroups, elementwiseLanes } from './activation.js';

export interface DropoutSpec {
  /** Elements. */
  n: number;
  /** Probability of keeping a unit, in (0, 1]; 1 is an exact identity. */
  keepProb: number;
  /** RNG seed (u32): key word 0 of Philox4x32-10. */
  seed: number;
  /** RNG stream (u32, default 0): key word 1; give each dropout layer its own. */
  stream?: number;
  label?: string;
}

export interface DropoutBuffers {
  x: GPUBuffer;
  /** Output: x · mask / keepProb. Must differ from x. */
  y: GPUBuffer;
  /** Output, kept for backward: 1 where a unit is kept, 0 where dropped (f32). */
  mask: GPUBuffer;
  /** u32 step counter (element 0), advanced on the GPU by prepareStepIncrement. */
  step: GPUBuffer;
}

function checkKeepProb(op: string, keepProb: number): void {
  if (!(keepProb > 0 && keepProb <= 1)) throw new GpuError(`${op}: keepProb must be in (0, 1], got ${keepProb}`);
}

/** 24-bit threshold: a unit is kept iff the top 24 bits of its Philox word are below it. */
export function dropoutKeepThreshold(keepProb: number): number {
  return Math.min(1 << 24, Math.round(keepProb * (1 << 24)));
}

/**
 * Inverted dropout forward: mask from Philox4x32-10 keyed by (seed, stream) at counter
 * (element/4, step[0]); y = x · mask / keepProb. Nothing is uploaded per step.
 */
export function prepareDropout(ctx: GpuContext, spec: DropoutSpec, bufs: DropoutBuffers): Dispatch {
  const op = `dropout [${spec.n}] keep ${spec.keepProb}`;
  checkCount(op, 'n', spec.n);
  checkKeepProb(op, spec.keepProb);
  for (const k of ['x', 'y', 'mask'] as const) checkSize(op, k, bufs[k], spec.n);
  checkSize(op, 'step', bufs.step, 1);
  if (bufs.x === bufs.y || bufs.x === bufs.mask || bufs.y === bufs.mask) throw new GpuError(`${op}: x, y and mask must be three different buffers`);
  const wg = elementwiseLanes(ctx);
  const kernel = ctx.kernel('dropout.wgsl', 'forward', { WG: wg });
  const params = kernel.params({
    n: spec.n,
    seed: spec.seed >>> 0,
    stream: (spec.stream ?? 0) >>> 0,
    keepThreshold: dropoutKeepThreshold(spec.keepProb),
    scale: 1 / spec.keepProb,
  });
  const label = spec.label ?? op;
  const bindGroup = kernel.bind({ params, x: bufs.x, y: bufs.y, mask: bufs.mask, step: bufs.step }, label);
  return { kernel, bindGroup, workgroups: gridStrideGroups(ctx, ceilDiv(spec.n, 4), wg), label, flops: 2 * spec.n };
}

export interface DropoutBackwardSpec {
  n: number;
  keepProb: number;
  /** dx += … instead of dx = …. */
  accumulate?: boolean;
  label?: string;
}

/** dx = dy · mask / keepProb (+= with `accumulate`), with the mask written by the forward pass. */
export function prepareDropoutBackward(
  ctx: GpuContext, spec: DropoutBackwardSpec, bufs: { dy: GPUBuffer; mask: GPUBuffer; dx: GPUBuffer },
): Dispatch {
  const op = `dropout backward [${spec.n}] keep ${spec.keepProb}`;
  checkCount(op, 'n', spec.n);
  checkKeepProb(op, spec.keepProb);
  for (const k of ['dy', 'mask', 'dx'] as const) checkSize(op, k, bufs[k], spec.n);
  if (bufs.dx === bufs.dy || bufs.dx === bufs.mask) throw new GpuError(`${op}: dx must differ from dy and mask`);
  const wg = elementwiseLanes(ctx);
  const kernel = ctx.kernel('dropout.wgsl', 'backward', { WG: wg, ACCUMULATE: !!spec.accumulate });
  const params = kernel.params({ n: spec.n, seed: 0, stream: 0, keepThreshold: 0, scale: 1 / spec.keepProb });
  const label = spec.label ?? op;
  const bindGroup = kernel.bind({ params, dy: bufs.dy, mask: bufs.mask, dx: bufs.dx }, label);
  return { kernel, bindGroup, workgroups: gridStrideGroups(ctx, spec.n, wg), label, flops: 2 * spec.n };
}
