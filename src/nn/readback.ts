// Reading training metrics back without stalling the GPU: a pool of small staging buffers (made
// once, reused by every read) and the pacing of the reads (when each step was submitted, when the
// GPU was last seen finishing one, and a ReadPacer's estimate of its busy time per step).
import type { GpuContext } from '../gpu/context.js';
import { BufferUsage } from '../gpu/flags.js';
import { ReadPacer } from '../gpu/pacer.js';

/** A paced read's start of GPU work, steps covered and when its sleep ended (undefined: no sleep). */
interface Wait {
  since: number;
  units: number;
  woke: number | undefined;
}

/**
 * The metrics read-back of a training graph: `copy` records, into the step's own command encoder,
 * copies of the accumulated loss and correct count (and their reset); `read` maps them after the
 * GPU is expected to be done. Nothing is created per step once the pool holds a buffer per read in flight.
 */
export class MetricsReadback {
  private readonly pool: GPUBuffer[] = [];
  /** Steps submitted so far and when each unfinished one was submitted. */
  private submitted = 0;
  private readonly submitTimes = new Map<number, number>();
  /** The last step the GPU was seen finishing, and when. */
  private lastDone: { step: number; time: number } | undefined;
  private readonly pacer = new ReadPacer();

  constructor(private readonly ctx: GpuContext) {}

  /** Steps submitted so far. */
  get steps(): number {
    return this.submitted;
  }

  /** Notes that a step was just submitted (or encoded into the caller's command buffer). */
  noteSubmit(): void {
    this.submitted++;
    this.submitTimes.set(this.submitted, performance.now());
    // An app that encodes steps and never reads metrics back must not grow this without bound.
    if (this.submitTimes.size > 1024) this.submitTimes.delete(this.submitTimes.keys().next().value!);
  }

  /** Records copies of `lossSum` (f32 [1]) and `correct` (u32 [1]) into a staging buffer, then clears both. */
  copy(enc: GPUCommandEncoder, lossSum: GPUBuffer, correct: GPUBuffer): GPUBuffer {
    const staging = this.pool.pop() ?? this.ctx.createBuffer(16, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'metrics readback');
    enc.copyBufferToBuffer(lossSum, 0, staging, 0, 4);
    enc.copyBufferToBuffer(correct, 0, staging, 4, 4);
    enc.clearBuffer(lossSum);
    enc.clearBuffer(correct);
    return staging;
  }

  /** The loss sum and correct count copied by `copy` at step `step` (the latest submitted when it was called). */
  async read(staging: GPUBuffer, step: number): Promise<{ lossSum: number; correct: number }> {
    // dawn.node polls its event queue on the main thread while a mapAsync is pending, taking
    // CPU from a software adapter's worker threads: sleep until the step is expected to be done.
    const wait = await this.sleepUntilDone(step);
    try {
      await this.ctx.mapRead(staging, 0, 8, `training step ${step}`);
    } catch (e) {
      this.ctx.release(staging); // not back in the pool: nothing else would free it
      throw e;
    }
    const raw = staging.getMappedRange(0, 8).slice(0);
    staging.unmap();
    this.pool.push(staging);
    this.ctx.throwIfFailed('training step');
    this.noteDone(step, wait);
    return { lossSum: new Float32Array(raw, 0, 1)[0], correct: new Uint32Array(raw, 4, 1)[0] };
  }

  /**
   * When the GPU started on the steps after the last one seen done: the later of that one's
   * completion and the next one's submit (the GPU idles in between when the host waits).
   */
  private busySince(): number | undefined {
    if (!this.lastDone) return undefined;
    const submit = this.submitTimes.get(this.lastDone.step + 1);
    return submit === undefined ? undefined : Math.max(submit, this.lastDone.time);
  }

  /** Records that the GPU finished `step` (seen just now), for pacing; `wait` is what sleepUntilDone returned. */
  private noteDone(step: number, wait: Wait | undefined): void {
    const since = wait?.since ?? this.busySince();
    if (since !== undefined && this.lastDone && step > this.lastDone.step) {
      this.pacer.done(since, wait?.units ?? step - this.lastDone.step, wait?.woke);
    }
    if (!this.lastDone || step > this.lastDone.step) this.lastDone = { step, time: performance.now() };
    for (const k of this.submitTimes.keys()) if (k <= step) this.submitTimes.delete(k);
  }

  /**
   * Sleeps until the GPU is expected to be nearly done with `step` (see ReadPacer). Only on a
   * software adapter: on a GPU, waiting costs the kernels nothing, and a timer's slack would only
   * delay the read.
   */
  private async sleepUntilDone(step: number): Promise<Wait | undefined> {
    if (!this.ctx.softwareAdapter) return undefined;
    const since = this.busySince();
    if (since === undefined) return undefined;
    const units = step - this.lastDone!.step;
    return { since, units, woke: await this.pacer.sleep(since, units) };
  }

  destroy(): void {
    for (const b of this.pool) this.ctx.release(b);
    this.pool.length = 0;
  }
}
