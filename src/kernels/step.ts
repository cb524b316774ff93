import type { GpuContext } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { checkSize } from './activation.js';

/** A one-element u32 storage buffer holding a training step counter, set to `initial`. */
export function createStepCounter(ctx: GpuContext, initial = 0, label = 'step counter'): GPUBuffer {
  return ctx.upload(new Uint32Array([initial >>> 0]), label);
}

/**
 * counter[0] += 1 on the GPU (shaders/step.wgsl). Encode it once per training step, after the
 * dispatches that read the counter (dropout masks, Adam's bias correction).
 */
export function prepareStepIncrement(ctx: GpuContext, spec: { label?: string }, bufs: { counter: GPUBuffer }): Dispatch {
  checkSize('step increment', 'counter', bufs.counter, 1);
  const kernel = ctx.kernel('step.wgsl', 'main');
  const label = spec.label ?? 'step += 1';
  return { kernel, bindGroup: kernel.bind({ counter: bufs.counter }, label), workgroups: [1, 1, 1], label };
}
