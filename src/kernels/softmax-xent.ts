import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { checkCount, checkSize, elementwiseLanes, gridStrideGroups } from './activation.js';

export interface SoftmaxXentSpec {
  /** Examples B (rows of the logits). */
  batch: number;
  /** Classes C (columns of the logits). */
  classes: number;
  /** Scale of the gradient: 1/B (default) for the gradient of the batch-mean loss. */
  gradScale?: number;
  /**
   * Label smoothing ε in [0, 1) (default 0): the target is (1 − ε)·onehot + ε/C, as Keras' and
   * PyTorch's label_smoothing; loss and gradient stay fused.
   */
  labelSmoothing?: number;
  /** Also add the batch-mean loss to `lossSum[0]` (a running sum kept on the GPU). */
  accumulateLoss?: boolean;
  label?: string;
}

export interface SoftmaxXentBuffers {
  /** [B, C] f32. */
  logits: GPUBuffer;
  /** [B] u32 class ids; an id ≥ C gives a NaN loss and gradient row. */
  labels: GPUBuffer;
  /** [B] f32 per-example loss (output). */
  loss: GPUBuffer;
  /** [B, C] f32 gradient (softmax − target)·gradScale (output; target the one-hot, or smoothed, labels). */
  dlogits: GPUBuffer;
  /** [1] f32 batch-mean loss (output). */
  meanLoss: GPUBuffer;
  /** [1] f32 running sum of batch-mean losses, required with `accumulateLoss`. */
  lossSum?: GPUBuffer;
}

/**
 * Fused, numerically stable softmax cross-entropy from logits: per-example loss, gradient and
 * batch-mean loss, all on the GPU. Returns two dispatches (rows, then the mean); encode both, in order.
 */
export function prepareSoftmaxXent(ctx: GpuContext, spec: SoftmaxXentSpec, bufs: SoftmaxXentBuffers): Dispatch[] {
  const { batch: B, classes: C } = spec;
  const op = `softmax cross-entropy [${B},${C}]`;
  checkCount(op, 'batch', B);
  checkCount(op, 'classes', C);
  checkSize(op, 'logits', bufs.logits, B * C);
  checkSize(op, 'labels', bufs.labels, B);
  checkSize(op, 'loss', bufs.loss, B);
  checkSize(op, 'dlogits', bufs.dlogits, B * C);
  checkSize(op, 'meanLoss', bufs.meanLoss, 1);
  if (spec.accumulateLoss) {
    if (!bufs.lossSum) throw new GpuError(`${op}: accumulateLoss needs a lossSum buffer`);
    checkSize(op, 'lossSum', bufs.lossSum, 1);
  }
  const smoothing = spec.labelSmoothing ?? 0;
  if (!(smoothing >= 0 && smoothing < 1)) throw new GpuError(`${op}: labelSmoothing must be in [0, 1), got ${spec.labelSmoothing}`);
  const wg = elementwiseLanes(ctx);
  const constants = { WG: wg, ACCUMULATE_SUM: !!spec.accumulateLoss };
  const rowsK = ctx.kernel('softmax_xent.wgsl', 'rows', constants);
  const meanK = ctx.kernel('softmax_xent.wgsl', 'mean', constants);
  const values = { B, C, gradScale: spec.gradScale ?? 1 / B, smoothing };
  const base = spec.label ?? `softmax xent [${B},${C}]`;
  const rows: Dispatch = {
    kernel: rowsK,
    bindGroup: rowsK.bind({ params: rowsK.params(values), logits: bufs.logits, labels: bufs.labels, loss: bufs.loss, dlogits: bufs.dlogits }, base),
    workgroups: gridStrideGroups(ctx, B, wg),
    label: base,
    flops: 6 * B * C,
  };
  const mean: Dispatch = {
    kernel: meanK,
    bindGroup: meanK.bind({ params: meanK.params(values), loss: bufs.loss, meanLoss: bufs.meanLoss, lossSum: bufs.lossSum ?? ctx.dummyBuffer() }, `${base}/mean`),
    workgroups: [1, 1, 1],
    label: `${base}/mean`,
    flops: B,
  };
  return [rows, mean];
}
