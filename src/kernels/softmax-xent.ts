import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { checkCount, checkSize, elementwiseLanes, gridStrideGroups } from './activation.js';
import { entryStorageBuffers } from '../gpu/kernel.js';

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
  /**
   * One dispatch (rows and mean in one workgroup) or two (rows over many workgroups, then the mean).
   * Default: one where the logits hold at most ONE_PASS_MAX_LOGITS floats.
   */
  passes?: 1 | 2;
  label?: string;
}

/**
 * Most logits the one-dispatch form takes by default: its one workgroup then walks at most 1,024
 * per invocation, well under what a second dispatch costs (about 0.1 ms on a CPU adapter, a few
 * µs on a GPU, where a larger batch is better spread over many workgroups).
 */
export const ONE_PASS_MAX_LOGITS = 65_536;

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
  /** [B] u32 output, with `correct`: each row's prediction, its first maximum (as prepareArgmax). */
  predictions?: GPUBuffer;
  /** [1] u32 counter: the rows whose prediction equals their label are ADDED to correct[0]. */
  correct?: GPUBuffer;
  /**
   * [1] u32 training step counter (src/kernels/step.ts), advanced by one after the mean (see
   * softmaxXentAdvancesStep): the loss then counts the step, and the step needs no dispatch for it.
   */
  stepCounter?: GPUBuffer;
}

/** The entry point that takes the mean: with the step counter's advance or without. */
function meanEntry(passes: 1 | 2, advance: boolean): string {
  return `${passes === 1 ? 'rows_mean' : 'mean'}${advance ? '_step' : ''}`;
}

/** How many passes prepareSoftmaxXent makes by default for B x C logits. */
function defaultPasses(B: number, C: number): 1 | 2 {
  return B * C <= ONE_PASS_MAX_LOGITS ? 1 : 2;
}

/**
 * Whether this device lets the loss of B x C logits also advance the step counter
 * (SoftmaxXentBuffers.stepCounter): its entry point binds one storage buffer more, which a device
 * with the default limits (8) does not allow in the one-pass form.
 */
export function softmaxXentAdvancesStep(ctx: GpuContext, B: number, C: number): boolean {
  return entryStorageBuffers('softmax_xent.wgsl', meanEntry(defaultPasses(B, C), true)) <= ctx.limits.maxStorageBuffersPerShaderStage;
}

/**
 * Fused, numerically stable softmax cross-entropy from logits: per-example loss, gradient and
 * batch-mean loss, all on the GPU, and with `predictions` and `correct` the accuracy count too.
 * Returns one dispatch, or two (rows, then the mean; see `passes`): encode them in order.
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
  if (!!bufs.predictions !== !!bufs.correct) throw new GpuError(`${op}: predictions and correct go together (give both or neither)`);
  const count = !!bufs.correct;
  if (count) {
    checkSize(op, 'predictions', bufs.predictions!, B);
    checkSize(op, 'correct', bufs.correct!, 1);
  }
  const passes = spec.passes ?? defaultPasses(B, C);
  if (passes !== 1 && passes !== 2) throw new GpuError(`${op}: passes must be 1 or 2, got ${spec.passes}`);
  const smoothing = spec.labelSmoothing ?? 0;
  if (!(smoothing >= 0 && smoothing < 1)) throw new GpuError(`${op}: labelSmoothing must be in [0, 1), got ${spec.labelSmoothing}`);
  const wg = elementwiseLanes(ctx);
  const constants = { WG: wg, ACCUMULATE_SUM: !!spec.accumulateLoss, COUNT_CORRECT: count };
  const values = { B, C, gradScale: spec.gradScale ?? 1 / B, smoothing };
  const base = spec.label ?? `softmax xent [${B},${C}]`;
  // Unused bindings get distinct dummies: a buffer may back only one writable binding of a dispatch.
  const counted = { predictions: bufs.predictions ?? ctx.dummyBuffer(1), correct: bufs.correct ?? ctx.dummyBuffer(2) };
  if (bufs.stepCounter) checkSize(op, 'stepCounter', bufs.stepCounter, 1);
  const advance = !!bufs.stepCounter;
  const sums = { meanLoss: bufs.meanLoss, lossSum: bufs.lossSum ?? ctx.dummyBuffer(), ...(advance ? { step_counter: bufs.stepCounter } : {}) };
  const perRow = { logits: bufs.logits, labels: bufs.labels, loss: bufs.loss, dlogits: bufs.dlogits };
  const rowFlops = 6 * B * C + (count ? B * C : 0);
  if (passes === 1) {
    const k = ctx.kernel('softmax_xent.wgsl', meanEntry(1, advance), constants);
    return [{
      kernel: k,
      bindGroup: k.bind({ params: k.params(values), ...perRow, ...sums, ...counted }, base),
      workgroups: [1, 1, 1],
      label: base,
      flops: rowFlops + B,
    }];
  }
  const rowsK = ctx.kernel('softmax_xent.wgsl', 'rows', constants);
  const meanK = ctx.kernel('softmax_xent.wgsl', meanEntry(2, advance), constants);
  const rows: Dispatch = {
    kernel: rowsK,
    bindGroup: rowsK.bind({ params: rowsK.params(values), ...perRow, ...counted }, base),
    workgroups: gridStrideGroups(ctx, B, wg),
    label: base,
    flops: rowFlops,
  };
  const mean: Dispatch = {
    kernel: meanK,
    bindGroup: meanK.bind({ params: meanK.params(values), loss: bufs.loss, ...sums }, `${base}/mean`),
    workgroups: [1, 1, 1],
    label: `${base}/mean`,
    flops: B,
  };
  return [rows, mean];
}
