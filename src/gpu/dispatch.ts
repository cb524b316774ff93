import { bindGroupBuffers, type BoundBuffer, type Kernel } from './kernel.js';
import { GpuError, type GpuContext } from './context.js';

export type { BoundBuffer };

/** One compute dispatch with everything bound: made at compile time, encoded each step. */
export interface Dispatch {
  kernel: Kernel;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
  /** What the dispatch computes, for profiles and traces (e.g. "dense1/matmul"). */
  label: string;
  /** Floating-point operations it performs, for GFLOPS and roofline figures. */
  flops?: number;
}

/**
 * The buffers a dispatch binds (name, access, buffer, byte range), from its bind group. For checks
 * that compare what kernels really touch with what the graph declares; never needed to run a step.
 */
export function boundBuffers(d: Dispatch): readonly BoundBuffer[] {
  const bound = bindGroupBuffers(d.bindGroup);
  if (!bound) throw new GpuError(`${d.label}: its bind group was not made by Kernel.bind, so its buffers are unknown`);
  return bound;
}

/** Records one dispatch (pipeline, bind groups, workgroups) into a compute pass. */
export function encodeDispatch(pass: GPUComputePassEncoder, d: Dispatch): void {
  pass.setPipeline(d.kernel.pipeline);
  pass.setBindGroup(0, d.bindGroup);
  const [x, y, z] = d.workgroups;
  if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
}

/** Encodes dispatches in order into one compute pass, submits once, and waits for the GPU. For tests and tools. */
export async function runDispatches(ctx: GpuContext, dispatches: readonly Dispatch[]): Promise<void> {
  await Promise.all(dispatches.map((d) => d.kernel.ready));
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  for (const d of dispatches) encodeDispatch(pass, d);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
  await ctx.wait(() => ctx.device.queue.onSubmittedWorkDone());
  ctx.throwIfFailed(dispatches.map((d) => d.label).join(', '));
}

export function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b);
}
