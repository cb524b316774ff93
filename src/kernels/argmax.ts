import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { checkCount, checkSize, elementwiseLanes, gridStrideGroups } from './activation.js';

export interface ArgmaxSpec {
  /** Rows B. */
  batch: number;
  /** Columns C (classes). */
  classes: number;
  label?: string;
}

export interface ArgmaxBuffers {
  /** [B, C] f32 scores (logits or probabilities). */
  x: GPUBuffer;
  /** [B] u32 output: index of the first maximum of each row. */
  predictions: GPUBuffer;
  /** [B] u32 class ids; with `correct`, the rows whose prediction equals the label are counted. */
  labels?: GPUBuffer;
  /** [1] u32 counter: the number of correct rows is ADDED to correct[0] (write 0 to reset it). */
  correct?: GPUBuffer;
}

/** Per-row argmax (first max on ties) and, given labels and a counter, the correct-prediction count. */
export function prepareArgmax(ctx: GpuContext, spec: ArgmaxSpec, bufs: ArgmaxBuffers): Dispatch {
  const { batch: B, classes: C } = spec;
  const op = `argmax [${B},${C}]`;
  checkCount(op, 'batch', B);
  checkCount(op, 'classes', C);
  checkSize(op, 'x', bufs.x, B * C);
  checkSize(op, 'predictions', bufs.predictions, B);
  if (!!bufs.labels !== !!bufs.correct) throw new GpuError(`${op}: labels and correct go together (give both or neither)`);
  const count = !!bufs.labels;
  if (bufs.labels) checkSize(op, 'labels', bufs.labels, B);
  if (bufs.correct) checkSize(op, 'correct', bufs.correct, 1);
  const wg = elementwiseLanes(ctx);
  const kernel = ctx.kernel('argmax.wgsl', count ? 'argmax_count' : 'argmax', { WG: wg });
  const params = kernel.params({ B, C });
  const label = spec.label ?? `${op}${count ? ' + accuracy count' : ''}`;
  const resources: Record<string, GPUBuffer> = count
    ? { params, x: bufs.x, predictions: bufs.predictions, labels: bufs.labels!, correct: bufs.correct! }
    : { params, x: bufs.x, predictions: bufs.predictions };
  return { kernel, bindGroup: kernel.bind(resources, label), workgroups: gridStrideGroups(ctx, B, wg), label, flops: B * C };
}
