// Learning-rate schedules and global-norm gradient clipping on the GPU (shaders/train_control.wgsl).
// Both write the control buffer f32 [lr, clip scale, global norm, 0] that the optimizer kernels read
// (see src/kernels/optimizer.ts: `scheduled`, `clipped`), so a step needs no CPU write.
import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { checkSize } from './activation.js';

/** The learning-rate schedules the GPU computes from the step counter. */
export const SCHEDULES = ['constant', 'step', 'exponential', 'cosine'] as const;
/** One of SCHEDULES. */
export type ScheduleKind = (typeof SCHEDULES)[number];

/**
 * A learning-rate schedule over the 0-based step t (the GPU step counter before the step's increment).
 * With `warmup` W > 0, steps t < W use lr·(t+1)/W, and the schedule then runs on s = t − W:
 * - constant: lr
 * - step: lr·decayRate^floor(s/decaySteps) (the rate drops by `decayRate` every `decaySteps` steps)
 * - exponential: lr·decayRate^(s/decaySteps) (TF exponential_decay, not staircase)
 * - cosine: minLr + (lr − minLr)·(1 + cos(π·min(s, decaySteps)/decaySteps))/2, then minLr
 */
export interface Schedule {
  kind: ScheduleKind;
  /** step: steps between drops; exponential: steps per factor `decayRate`; cosine: steps from lr to minLr. */
  decaySteps?: number;
  /** step, exponential: the factor, in (0, 1] for a decay. */
  decayRate?: number;
  /** cosine: the final learning rate (default 0), below lr. */
  minLr?: number;
  /** Linear warm-up steps in front of the schedule (default 0). */
  warmup?: number;
}

/** Throws a GpuError naming the bad field of a schedule for base rate `lr`, else returns it complete. */
export function checkSchedule(s: Schedule, lr: number, what = 'schedule'): Required<Schedule> {
  if (!(SCHEDULES as readonly string[]).includes(s.kind)) throw new GpuError(`${what}: kind ${JSON.stringify(s.kind)} is not one of ${SCHEDULES.join(', ')}`);
  const warmup = s.warmup ?? 0;
  if (!Number.isSafeInteger(warmup) || warmup < 0 || warmup > 0xffffffff) throw new GpuError(`${what}: warmup must be a whole number of steps ≥ 0, got ${warmup}`);
  const needsSteps = s.kind !== 'constant';
  const decaySteps = s.decaySteps ?? (needsSteps ? NaN : 1);
  if (!Number.isSafeInteger(decaySteps) || decaySteps < 1 || decaySteps > 0xffffffff) throw new GpuError(`${what}: ${s.kind} needs decaySteps, a whole number ≥ 1, got ${s.decaySteps}`);
  const needsRate = s.kind === 'step' || s.kind === 'exponential';
  const decayRate = s.decayRate ?? (needsRate ? NaN : 1);
  if (!(decayRate > 0) || !Number.isFinite(decayRate)) throw new GpuError(`${what}: ${s.kind} needs decayRate, a number > 0, got ${s.decayRate}`);
  const minLr = s.minLr ?? 0;
  if (!(minLr >= 0 && minLr <= lr)) throw new GpuError(`${what}: minLr must be in [0, lr ${lr}], got ${minLr}`);
  return { kind: s.kind, warmup, decaySteps, decayRate, minLr };
}

/** The schedule's learning rate at 0-based step t, in float64: the formula the GPU kernel follows. */
export function scheduledLr(lr: number, s: Schedule, t: number): number {
  const c = checkSchedule(s, lr);
  if (t < c.warmup) return (lr * (t + 1)) / c.warmup;
  const k = t - c.warmup;
  switch (c.kind) {
    case 'constant': return lr;
    case 'step': return lr * c.decayRate ** Math.floor(k / c.decaySteps);
    case 'exponential': return lr * c.decayRate ** (k / c.decaySteps);
    case 'cosine': return c.minLr + ((lr - c.minLr) * (1 + Math.cos((Math.PI * Math.min(k, c.decaySteps)) / c.decaySteps))) / 2;
  }
}

/** Elements of the control buffer: [lr, clip scale, global norm, unused]. */
export const CONTROL_SIZE = 4;

export interface LrScheduleBuffers {
  /** u32 step counter (element 0). */
  step: GPUBuffer;
  /** f32 control buffer; element 0 is written. */
  control: GPUBuffer;
}

/** One single-invocation dispatch writing this step's learning rate into control[0]. */
export function prepareLrSchedule(ctx: GpuContext, spec: { lr: number; schedule: Schedule; label?: string }, bufs: LrScheduleBuffers): Dispatch {
  if (!(spec.lr > 0) || !Number.isFinite(spec.lr)) throw new GpuError(`learning-rate schedule: lr must be a positive number, got ${spec.lr}`);
  const s = checkSchedule(spec.schedule, spec.lr);
  checkSize('learning-rate schedule', 'step', bufs.step, 1);
  checkSize('learning-rate schedule', 'control', bufs.control, CONTROL_SIZE);
  const kernel = ctx.kernel('train_control.wgsl', 'learning_rate', { KIND: SCHEDULES.indexOf(s.kind) });
  const label = spec.label ?? `learning rate (${s.kind}${s.warmup ? `, warm-up ${s.warmup}` : ''})`;
  const sched = kernel.params({ lr: spec.lr, minLr: s.minLr, log2Rate: Math.log2(s.decayRate), warmup: s.warmup, decaySteps: s.decaySteps });
  return { kernel, bindGroup: kernel.bind({ sched, step: bufs.step, control: bufs.control }, label), workgroups: [1, 1, 1], label };
}

/** One gradient (a slice of a buffer) that clipping reads. */
export interface ClipSource {
  buffer: GPUBuffer;
  /** Element offset in `buffer`. */
  offset: number;
  n: number;
  label?: string;
}

/** Workgroups per gradient for its partial sums (64 threads each). */
function groupsFor(n: number): number {
  return Math.max(1, Math.min(64, Math.ceil(n / (64 * 16))));
}

/** Partial sums clipping needs for these gradients (the size of its `partials` buffer, in f32). */
export function clipPartials(sizes: readonly number[]): number {
  return sizes.reduce((a, n) => a + groupsFor(n), 0);
}

/**
 * Clipping by global norm: one sum-of-squares dispatch per gradient into `partials`, then one
 * dispatch summing them that writes the scale clipNorm / max(norm, clipNorm) into control[1] and the
 * norm into control[2]. Encode them in order, after every gradient is complete and before the updates.
 */
export function prepareGlobalNormClip(ctx: GpuContext, spec: { clipNorm: number; label?: string }, grads: readonly ClipSource[],
  bufs: { partials: GPUBuffer; control: GPUBuffer }): Dispatch[] {
  const op = 'clip by global norm';
  if (!(spec.clipNorm > 0) || !Number.isFinite(spec.clipNorm)) throw new GpuError(`${op}: clipNorm must be a positive number, got ${spec.clipNorm}`);
  if (!grads.length) throw new GpuError(`${op}: no gradients`);
  const count = clipPartials(grads.map((g) => g.n));
  checkSize(op, 'partials', bufs.partials, count);
  checkSize(op, 'control', bufs.control, CONTROL_SIZE);
  const sumK = ctx.kernel('train_control.wgsl', 'sum_squares');
  const scaleK = ctx.kernel('train_control.wgsl', 'clip_scale');
  const out: Dispatch[] = [];
  let first = 0;
  for (const g of grads) {
    if (!Number.isInteger(g.n) || g.n < 1 || !Number.isInteger(g.offset) || g.offset < 0) throw new GpuError(`${op}: bad gradient slice (n ${g.n}, offset ${g.offset})`);
    checkSize(op, g.label ?? 'grad', g.buffer, g.offset + g.n);
    const groups = groupsFor(g.n);
    const label = `${spec.label ?? op}: Σg² ${g.label ?? ''}`.trimEnd();
    const norm = sumK.params({ n: g.n, off: g.offset, first, count, clipNorm: spec.clipNorm });
    out.push({ kernel: sumK, bindGroup: sumK.bind({ norm, grad: g.buffer, partials: bufs.partials }, label), workgroups: [groups, 1, 1], label, flops: 2 * g.n });
    first += groups;
  }
  const label = spec.label ?? op;
  const norm = scaleK.params({ n: 0, off: 0, first: 0, count, clipNorm: spec.clipNorm });
  out.push({ kernel: scaleK, bindGroup: scaleK.bind({ norm, partials: bufs.partials, control: bufs.control }, label), workgroups: [1, 1, 1], label, flops: count });
  return out;
}
