import { bindGroupBuffers, type BoundBuffer, type Kernel } from './kernel.js';
import { GpuError, type GpuContext } from './context.js';
import { encodeTextureCopy, type TextureCopy } from './operand-textures.js';

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
  /** Buffer ranges the kernel reads as textures: copied in before it runs (see DispatchEncoder). */
  copies?: readonly TextureCopy[];
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

/**
 * Records one dispatch (pipeline, bind groups, workgroups) into a compute pass. A dispatch that
 * reads textures copied from buffers needs its copies encoded first: use DispatchEncoder.
 */
export function encodeDispatch(pass: GPUComputePassEncoder, d: Dispatch): void {
  if (d.copies?.length) throw new GpuError(`${d.label}: it reads operand textures, whose copies a compute pass cannot hold; encode it with DispatchEncoder`);
  encodeBound(pass, d);
}

function encodeBound(pass: GPUComputePassEncoder, d: Dispatch): void {
  pass.setPipeline(d.kernel.pipeline);
  pass.setBindGroup(0, d.bindGroup);
  const [x, y, z] = d.workgroups;
  if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
}

/** The buffers each dispatch may write (its writable bindings), worked out once. */
const writtenBy = new WeakMap<Dispatch, readonly GPUBuffer[]>();

function writes(d: Dispatch): readonly GPUBuffer[] {
  let list = writtenBy.get(d);
  if (!list) {
    list = (bindGroupBuffers(d.bindGroup) ?? []).filter((b) => b.kind === 'storage').map((b) => b.buffer);
    writtenBy.set(d, list);
  }
  return list;
}

/**
 * Encodes dispatches into one command encoder: in one compute pass, except that a dispatch reading
 * operand textures gets its copies first, between passes. A texture is copied only when it was not
 * yet filled in this encoder or its buffer was written since (by a dispatch encoded here), so a
 * weight read by several products of a step is copied once. Writes made outside (queue writes,
 * earlier submits) are why each command encoder starts with every texture stale.
 */
export class DispatchEncoder {
  /** Textures filled in this encoder and not stale since, by source buffer. */
  private readonly filled = new Map<GPUBuffer, Set<GPUTexture>>();

  constructor(readonly encoder: GPUCommandEncoder) {}

  /** Encodes `dispatches` in order; the descriptor's timestamp writes time them all (from the first pass to the last). */
  encode(dispatches: readonly Dispatch[], descriptor?: GPUComputePassDescriptor): void {
    const timestampWrites = descriptor?.timestampWrites;
    // Where passes break: the copies due before each dispatch (found first, so the last pass is known).
    const due = dispatches.map((d) => this.stale(d));
    const breaks = due.map((copies, i) => i > 0 && copies.length > 0);
    const lastBreak = breaks.lastIndexOf(true);
    let pass: GPUComputePassEncoder | undefined;
    dispatches.forEach((d, i) => {
      if (breaks[i] || i === 0) {
        pass?.end();
        for (const copy of due[i]) encodeTextureCopy(this.encoder, copy);
        const first = i === 0, last = i >= lastBreak;
        // The first pass writes the beginning stamp, the last the end; a pass between writes none
        // (a timestampWrites with neither index is invalid).
        const { timestampWrites: _all, ...untimed } = descriptor ?? {};
        pass = this.encoder.beginComputePass(!timestampWrites || !(first || last) ? untimed : {
          ...untimed,
          timestampWrites: {
            querySet: timestampWrites.querySet,
            ...(first ? { beginningOfPassWriteIndex: timestampWrites.beginningOfPassWriteIndex } : {}),
            ...(last ? { endOfPassWriteIndex: timestampWrites.endOfPassWriteIndex } : {}),
          },
        });
      }
      encodeBound(pass!, d);
    });
    if (pass) pass.end();
    else this.encoder.beginComputePass(descriptor).end(); // nothing to run: still write the timestamps
  }

  /** The copies `d` needs before it runs; marks them done and marks what `d` writes as stale. */
  private stale(d: Dispatch): TextureCopy[] {
    const needed: TextureCopy[] = [];
    for (const copy of d.copies ?? []) {
      let done = this.filled.get(copy.source);
      if (done?.has(copy.texture)) continue;
      if (!done) this.filled.set(copy.source, done = new Set());
      done.add(copy.texture);
      needed.push(copy);
    }
    for (const buffer of writes(d)) this.filled.delete(buffer);
    return needed;
  }
}

/** Encodes dispatches in order (one compute pass, besides any texture copies), submits once, and waits for the GPU. For tests and tools. */
export async function runDispatches(ctx: GpuContext, dispatches: readonly Dispatch[]): Promise<void> {
  await Promise.all(dispatches.map((d) => d.kernel.ready));
  const enc = ctx.device.createCommandEncoder();
  new DispatchEncoder(enc).encode(dispatches);
  ctx.device.queue.submit([enc.finish()]);
  await ctx.wait(() => ctx.device.queue.onSubmittedWorkDone());
  ctx.throwIfFailed(dispatches.map((d) => d.label).join(', '));
}

export function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b);
}
