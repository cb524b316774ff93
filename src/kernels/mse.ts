import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import { ceilDiv, type Dispatch } from '../gpu/dispatch.js';
import { checkCount, checkSize } from './activation.js';

/** Workgroup size of shaders/mse.wgsl (a literal there). */
const MSE_WG = 64;
/**
 * Most workgroups of the partial-sum pass. Each ends in a barrier-separated tree, which lavapipe
 * pays per workgroup: on [5000, 10] the pass took 0.3–0.5 ms with 32 groups vs 1.7–1.9 ms with up
 * to 512 (and 4–7 vs 8–14 ms on [55000, 10]; a shared, loaded 2-core machine, so rough figures).
 * 32 × 64 invocations still give a GPU some parallelism for a loss over one batch.
 */
const MSE_MAX_GROUPS = 32;

export interface MseSpec {
  /** Examples B (rows of pred and target). */
  batch: number;
  /** Values per example D (columns). */
  dim: number;
  /** Scale of the gradient: 2/(B·D) (default) for the gradient of the mean loss. */
  gradScale?: number;
  /** Also add the mean loss to `lossSum[0]` (a running sum kept on the GPU). */
  accumulateLoss?: boolean;
  label?: string;
}

export interface MseBuffers {
  /** [B, D] f32 predictions. */
  pred: GPUBuffer;
  /** [B, D] f32 targets. */
  target: GPUBuffer;
  /** [B, D] f32 gradient gradScale·(pred − target) (output; written, never accumulated). */
  dpred: GPUBuffer;
  /** [1] f32 mean loss over all B·D elements (output). */
  meanLoss: GPUBuffer;
  /** [1] f32 running sum of mean losses, required with `accumulateLoss`. */
  lossSum?: GPUBuffer;
}

/**
 * Keras mean squared error: meanLoss = mean over all B·D elements of (pred − target)²,
 * dpred = 2(pred − target)/(B·D), and with `accumulateLoss` lossSum[0] += meanLoss (the contract
 * of prepareSoftmaxXent). Returns two dispatches (elements and partial sums, then the mean);
 * encode both, in order. The partial-sum scratch buffer (at most 32 floats) is made here and
 * belongs to the dispatches. The reduction order is fixed: the same inputs give the same loss.
 */
export function prepareMse(ctx: GpuContext, spec: MseSpec, bufs: MseBuffers): Dispatch[] {
  const { batch: B, dim: D } = spec;
  const op = `mean squared error [${B},${D}]`;
  checkCount(op, 'batch', B);
  checkCount(op, 'dim', D);
  const n = B * D;
  for (const k of ['pred', 'target', 'dpred'] as const) checkSize(op, k, bufs[k], n);
  checkSize(op, 'meanLoss', bufs.meanLoss, 1);
  if (spec.accumulateLoss) {
    if (!bufs.lossSum) throw new GpuError(`${op}: accumulateLoss needs a lossSum buffer`);
    checkSize(op, 'lossSum', bufs.lossSum, 1);
  }
  if (bufs.dpred === bufs.pred || bufs.dpred === bufs.target) throw new GpuError(`${op}: dpred must differ from pred and target`);
  if (ctx.limits.maxComputeInvocationsPerWorkgroup < MSE_WG) throw new GpuError(`${op}: needs ${MSE_WG} invocations per workgroup`);
  const v4 = n % 4 === 0;
  const u = v4 ? 4 : 1;
  const groups = Math.min(ceilDiv(n / u, MSE_WG), MSE_MAX_GROUPS);
  const constants = { ACCUMULATE_SUM: !!spec.accumulateLoss };
  const partialsK = ctx.kernel('mse.wgsl', v4 ? 'partials4' : 'partials', constants);
  const finishK = ctx.kernel('mse.wgsl', 'finish', constants);
  const base = spec.label ?? `mse [${B},${D}]`;
  const partial = ctx.storage(groups * 4, `${base} partial sums`);
  const values = { n: n / u, groups, count: n, gradScale: spec.gradScale ?? 2 / n };
  const elems: Dispatch = {
    kernel: partialsK,
    bindGroup: partialsK.bind(v4
      ? { params: partialsK.params(values), pred4: bufs.pred, truth4: bufs.target, dpred4: bufs.dpred, partial }
      : { params: partialsK.params(values), pred: bufs.pred, truth: bufs.target, dpred: bufs.dpred, partial }, base),
    workgroups: [groups, 1, 1],
    label: base,
    flops: 4 * n,
  };
  const mean: Dispatch = {
    kernel: finishK,
    bindGroup: finishK.bind({ params: finishK.params(values), partialIn: partial, meanLoss: bufs.meanLoss, lossSum: bufs.lossSum ?? ctx.dummyBuffer() }, `${base}/mean`),
    workgroups: [1, 1, 1],
    label: `${base}/mean`,
    flops: groups,
  };
  return [elems, mean];
}
