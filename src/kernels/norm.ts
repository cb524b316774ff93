// Batch normalization and layer normalization (shaders/norm.wgsl): dispatches prepared once, at
// compile time. x is viewed as [rows, cols] with cols the normalized features' axis (the last).
import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { checkCount, checkSize, gridStrideGroups } from './activation.js';

export interface NormSpec {
  rows: number;
  cols: number;
  epsilon: number;
  label?: string;
}

/** γ and β, either of which may be absent (Keras scale=False / center=False). */
export interface Affine {
  gamma?: GPUBuffer;
  beta?: GPUBuffer;
}

const WG = 64;

function check(ctx: GpuContext, op: string, spec: NormSpec, bufs: object, sizes: Record<string, number>): void {
  checkCount(op, 'rows', spec.rows);
  checkCount(op, 'cols', spec.cols);
  if (!(spec.epsilon > 0)) throw new GpuError(`${op}: epsilon must be positive, got ${spec.epsilon}`);
  for (const [k, n] of Object.entries(sizes)) {
    const b = (bufs as Record<string, GPUBuffer | undefined>)[k];
    if (b) checkSize(op, k, b, n);
  }
  if (WG > ctx.limits.maxComputeInvocationsPerWorkgroup) throw new GpuError(`${op}: needs ${WG} invocations per workgroup`);
}

function columnGroups(ctx: GpuContext, op: string, cols: number): [number, number, number] {
  if (cols > ctx.limits.maxComputeWorkgroupsPerDimension) throw new GpuError(`${op}: ${cols} features exceed the ${ctx.limits.maxComputeWorkgroupsPerDimension} workgroups of one dispatch`);
  return [cols, 1, 1];
}

function affineConstants(a: Affine) {
  return { HAS_GAMMA: !!a.gamma, HAS_BETA: !!a.beta };
}

/** γ and β bound, or distinct dummies where absent (their kernels never read them). */
function affineBindings(ctx: GpuContext, a: Affine) {
  return { gamma: a.gamma ?? ctx.dummyBuffer(0), beta: a.beta ?? ctx.dummyBuffer(1) };
}

const params = (k: { params(v: Record<string, number>, label?: string): GPUBuffer }, s: NormSpec, momentum = 0) =>
  k.params({ rows: s.rows, cols: s.cols, epsilon: s.epsilon, momentum });

/**
 * Batch norm in training: per-column mean and invstd of x over its rows, then y; with `running`,
 * the same pass updates the running mean and variance with `momentum` (Keras' moving averages).
 */
export function batchNormTrain(
  ctx: GpuContext, spec: NormSpec & { momentum?: number },
  bufs: Affine & { x: GPUBuffer; y: GPUBuffer; mean: GPUBuffer; invstd: GPUBuffer; running?: { mean: GPUBuffer; variance: GPUBuffer } },
): Dispatch[] {
  const { rows: R, cols: C } = spec;
  const op = `batchNorm [${R},${C}]`;
  check(ctx, op, spec, { ...bufs, rm: bufs.running?.mean, rv: bufs.running?.variance },
    { x: R * C, y: R * C, mean: C, invstd: C, gamma: C, beta: C, rm: C, rv: C });
  if (bufs.running && !(spec.momentum !== undefined && spec.momentum >= 0 && spec.momentum <= 1)) throw new GpuError(`${op}: momentum must be in [0, 1], got ${spec.momentum}`);
  const label = spec.label ?? op;
  const stats = ctx.kernel('norm.wgsl', 'column_stats', { WG, UPDATE_RUNNING: !!bufs.running });
  const statsBind: Record<string, GPUBuffer> = { params: params(stats, spec, spec.momentum ?? 0), x: bufs.x, mean: bufs.mean, invstd: bufs.invstd };
  // distinct dummies when there is nothing to update: one buffer may not be bound writable twice
  Object.assign(statsBind, { running_mean: bufs.running?.mean ?? ctx.dummyBuffer(2), running_var: bufs.running?.variance ?? ctx.dummyBuffer(3) });
  const norm = ctx.kernel('norm.wgsl', 'normalize', { WG, ...affineConstants(bufs) });
  return [
    { kernel: stats, bindGroup: stats.bind(statsBind, `${label} statistics`), workgroups: columnGroups(ctx, op, C), label: `${label} statistics`, flops: 4 * R * C },
    {
      kernel: norm, workgroups: gridStrideGroups(ctx, R * C, WG), label, flops: 4 * R * C,
      bindGroup: norm.bind({ params: params(norm, spec), x: bufs.x, y: bufs.y, mean: bufs.mean, invstd: bufs.invstd, ...affineBindings(ctx, bufs) }, label),
    },
  ];
}

/** Batch norm in evaluation: y from the running mean and variance (nothing is written but y). */
export function batchNormInference(
  ctx: GpuContext, spec: NormSpec, bufs: Affine & { x: GPUBuffer; y: GPUBuffer; runningMean: GPUBuffer; runningVar: GPUBuffer },
): Dispatch {
  const { rows: R, cols: C } = spec;
  const op = `batchNorm inference [${R},${C}]`;
  check(ctx, op, spec, bufs, { x: R * C, y: R * C, runningMean: C, runningVar: C, gamma: C, beta: C });
  const label = spec.label ?? op;
  const k = ctx.kernel('norm.wgsl', 'normalize_running', { WG, ...affineConstants(bufs) });
  return {
    kernel: k, workgroups: gridStrideGroups(ctx, R * C, WG), label, flops: 5 * R * C,
    bindGroup: k.bind({ params: params(k, spec), x: bufs.x, y: bufs.y, running_mean: bufs.runningMean, running_var: bufs.runningVar, ...affineBindings(ctx, bufs) }, label),
  };
}

/** Layer norm: per-row mean and invstd of x over its columns, then y. */
export function layerNorm(
  ctx: GpuContext, spec: NormSpec, bufs: Affine & { x: GPUBuffer; y: GPUBuffer; mean: GPUBuffer; invstd: GPUBuffer },
): Dispatch[] {
  const { rows: R, cols: C } = spec;
  const op = `layerNorm [${R},${C}]`;
  check(ctx, op, spec, bufs, { x: R * C, y: R * C, mean: R, invstd: R, gamma: C, beta: C });
  const label = spec.label ?? op;
  const stats = ctx.kernel('norm.wgsl', 'row_stats', { WG });
  const norm = ctx.kernel('norm.wgsl', 'normalize', { WG, PER_ROW: true, ...affineConstants(bufs) });
  return [
    {
      kernel: stats, workgroups: gridStrideGroups(ctx, R, WG), label: `${label} statistics`, flops: 4 * R * C,
      bindGroup: stats.bind({ params: params(stats, spec), x: bufs.x, mean: bufs.mean, invstd: bufs.invstd }, `${label} statistics`),
    },
    {
      kernel: norm, workgroups: gridStrideGroups(ctx, R * C, WG), label, flops: 4 * R * C,
      bindGroup: norm.bind({ params: params(norm, spec), x: bufs.x, y: bufs.y, mean: bufs.mean, invstd: bufs.invstd, ...affineBindings(ctx, bufs) }, label),
    },
  ];
}

export interface NormBackwardSpec extends NormSpec {
  /** Add to dx / dγ / dβ instead of overwriting them. */
  accumulate?: { dx?: boolean; dgamma?: boolean; dbeta?: boolean };
}

export interface NormBackwardBuffers {
  x: GPUBuffer;
  mean: GPUBuffer;
  invstd: GPUBuffer;
  dy: GPUBuffer;
  gamma?: GPUBuffer;
  /** The gradients to write (each optional). */
  dx?: GPUBuffer;
  dgamma?: GPUBuffer;
  dbeta?: GPUBuffer;
}

/**
 * The backward of batch norm (`kind` 'batch', through the batch statistics: the full backward,
 * since mean and variance depend on every row) or layer norm ('layer'). Batch norm's dx needs the
 * column sums of dy and dy·xhat: a [cols, 2] scratch made here.
 */
export function normBackward(ctx: GpuContext, kind: 'batch' | 'layer', spec: NormBackwardSpec, bufs: NormBackwardBuffers): Dispatch[] {
  const { rows: R, cols: C } = spec;
  const op = `${kind === 'batch' ? 'batchNorm' : 'layerNorm'} backward [${R},${C}]`;
  const statsLen = kind === 'batch' ? C : R;
  check(ctx, op, spec, bufs, { x: R * C, dy: R * C, dx: R * C, mean: statsLen, invstd: statsLen, gamma: C, dgamma: C, dbeta: C });
  if (bufs.dx && (bufs.dx === bufs.dy || bufs.dx === bufs.x)) throw new GpuError(`${op}: dx must differ from x and dy`);
  const acc = spec.accumulate ?? {};
  const label = spec.label ?? op;
  const out: Dispatch[] = [];
  const needSums = kind === 'batch' && !!bufs.dx;
  if (bufs.dgamma || bufs.dbeta || needSums) {
    const sums = needSums ? ctx.storage(2 * C * 4, `${label} sums`) : undefined;
    const k = ctx.kernel('norm.wgsl', 'column_grad_sums', {
      WG, PER_ROW: kind === 'layer', WRITE_DGAMMA: !!bufs.dgamma, WRITE_DBETA: !!bufs.dbeta, WRITE_SUMS: needSums,
      ACCUMULATE_DGAMMA: !!acc.dgamma, ACCUMULATE_DBETA: !!acc.dbeta,
    });
    const bind: Record<string, GPUBuffer> = { params: params(k, spec), x: bufs.x, mean: bufs.mean, invstd: bufs.invstd, dy: bufs.dy };
    // distinct dummies for unwritten outputs: one buffer may not be bound writable twice
    bind.dgamma = bufs.dgamma ?? ctx.dummyBuffer(2);
    bind.dbeta = bufs.dbeta ?? ctx.dummyBuffer(3);
    bind.sums = sums ?? ctx.dummyBuffer(4);
    out.push({ kernel: k, bindGroup: k.bind(bind, `${label} dγ dβ`), workgroups: columnGroups(ctx, op, C), label: `${label} dγ dβ`, flops: 4 * R * C });
    if (sums) {
      const dxk = ctx.kernel('norm.wgsl', 'batch_norm_dx', { WG, HAS_GAMMA: !!bufs.gamma, ACCUMULATE: !!acc.dx });
      out.push({
        kernel: dxk, workgroups: gridStrideGroups(ctx, R * C, WG), label: `${label} dx`, flops: 8 * R * C,
        bindGroup: dxk.bind({ params: params(dxk, spec), x: bufs.x, mean: bufs.mean, invstd: bufs.invstd, dy: bufs.dy, sums, dx: bufs.dx!, gamma: bufs.gamma ?? ctx.dummyBuffer(0) }, `${label} dx`),
      });
    }
  }
  if (kind === 'layer' && bufs.dx) {
    const k = ctx.kernel('norm.wgsl', 'layer_norm_dx', { WG, HAS_GAMMA: !!bufs.gamma, ACCUMULATE: !!acc.dx });
    out.push({
      kernel: k, workgroups: gridStrideGroups(ctx, R, WG), label: `${label} dx`, flops: 10 * R * C,
      bindGroup: k.bind({ params: params(k, spec), x: bufs.x, mean: bufs.mean, invstd: bufs.invstd, dy: bufs.dy, dx: bufs.dx, gamma: bufs.gamma ?? ctx.dummyBuffer(0) }, `${label} dx`),
    });
  }
  return out;
}
