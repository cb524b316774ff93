import { BufferUsage } from './flags.js';
import { GpuError, type GpuContext } from './context.js';

/** GPU time of one timed compute pass. */
export interface PassTiming {
  label: string;
  /** Nanoseconds between the pass's begin and end timestamps. */
  ns: number;
}

/**
 * Times compute passes with timestamp queries: each timed pass writes a begin and an end
 * timestamp into one query set, resolved into a buffer at the end of the command buffer.
 * Needs the 'timestamp-query' feature (GpuContext.hasTimestamps).
 */
export class PassTimer {
  private readonly querySet: GPUQuerySet;
  private readonly resolveBuf: GPUBuffer;
  private readonly readBuf: GPUBuffer;
  private labels: string[] = [];

  constructor(private readonly ctx: GpuContext, readonly capacity: number) {
    if (!ctx.hasTimestamps) {
      throw new GpuError(`this adapter (${ctx.adapterDescription}) has no 'timestamp-query' feature, so GPU times cannot be measured`);
    }
    this.querySet = ctx.device.createQuerySet({ type: 'timestamp', count: capacity * 2, label: 'pass timer' });
    this.resolveBuf = ctx.createBuffer(capacity * 16, BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, 'timestamps');
    this.readBuf = ctx.createBuffer(capacity * 16, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'timestamps readback');
  }

  /** Starts a new round of timed passes (call before encoding them). */
  reset(): void {
    this.labels = [];
  }

  /** A compute pass descriptor that writes this pass's begin/end timestamps. */
  pass(label: string): GPUComputePassDescriptor {
    const i = this.labels.length;
    if (i >= this.capacity) throw new GpuError(`PassTimer: more than ${this.capacity} timed passes in one round`);
    this.labels.push(label);
    return { label, timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } };
  }

  /** Encodes the query resolution; call once after the timed passes, before finish(). */
  resolve(encoder: GPUCommandEncoder): void {
    const n = this.labels.length * 2;
    if (n === 0) return;
    encoder.resolveQuerySet(this.querySet, 0, n, this.resolveBuf, 0);
    encoder.copyBufferToBuffer(this.resolveBuf, 0, this.readBuf, 0, n * 8);
  }

  /** Reads the times of the round's passes (after its command buffer was submitted). */
  async read(): Promise<PassTiming[]> {
    const n = this.labels.length * 2;
    if (n === 0) return [];
    await this.ctx.mapRead(this.readBuf, 0, n * 8, 'reading the pass timings');
    const t = new BigInt64Array(this.readBuf.getMappedRange(0, n * 8).slice(0));
    this.readBuf.unmap();
    return this.labels.map((label, i) => ({ label, ns: Number(t[2 * i + 1] - t[2 * i]) }));
  }

  /** Frees the query set and its buffers. */
  destroy(): void {
    this.querySet.destroy();
    this.ctx.release(this.resolveBuf);
    this.ctx.release(this.readBuf);
  }
}

/** The median of `xs` (the mean of the middle two for an even count); NaN when empty. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
