import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import type { KernelConstants } from '../gpu/kernel.js';
import { hasMatmulEpilogue, type MatmulEpilogue } from './matmul.js';
import { checkCount, checkSize, gridStrideGroups, elementwiseLanes } from './activation.js';

interface OptimizerSpecBase {
  /** Elements to update. */
  n: number;
  lr: number;
  /** Element offset into param (and accum, m, v): for a slice of a buffer holding several tensors. */
  offset?: number;
  /** Element offset into grad (default: `offset`). */
  gradOffset?: number;
  label?: string;
  /**
   * Weight decay factor (default 0: none). SGD and Adam add it as L2 to the gradient, as PyTorch's
   * `weight_decay` (g += wd·p, after clipping); with `decoupled` (AdamW) the parameter decays
   * before the Adam step, p −= lr·wd·p, with lr this step's learning rate.
   */
  weightDecay?: number;
  /** AdamW: decoupled weight decay (Adam only). */
  decoupled?: boolean;
  /** Read this step's learning rate from control[0] (written on the GPU by a schedule) instead of `lr`. */
  scheduled?: boolean;
  /** Scale the gradient by control[1] (the global-norm clip scale written on the GPU). */
  clipped?: boolean;
}

/** The GPU-written training control buffer: f32 [lr this step, clip scale, global norm, unused]. */
export interface ControlBuffer {
  control?: GPUBuffer;
}

export interface SgdSpec extends OptimizerSpecBase {
  /** With a momentum (TF MomentumOptimizer): accum = momentum·accum + g; p −= lr·accum. Needs `accum`. */
  momentum?: number;
  /** Nesterov momentum (TF use_nesterov): p −= lr·g + lr·momentum·accum. */
  nesterov?: boolean;
}

export interface SgdBuffers extends ControlBuffer {
  param: GPUBuffer;
  grad: GPUBuffer;
  /** Momentum accumulator (same layout as param), required with `momentum`; start it at 0. */
  accum?: GPUBuffer;
}

export interface AdamSpec extends OptimizerSpecBase {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /**
   * t = step[0] + stepOffset (default 1: a counter starting at 0, advanced after each update; 0
   * where it is advanced before the updates, by the loss's kernel).
   */
  stepOffset?: number;
}

export interface AdamBuffers extends ControlBuffer {
  param: GPUBuffer;
  grad: GPUBuffer;
  /** First and second moment estimates (same layout as param), start them at 0. */
  m: GPUBuffer;
  v: GPUBuffer;
  /** u32 step counter (element 0), advanced on the GPU by prepareStepIncrement. */
  step: GPUBuffer;
}

function common(op: string, spec: OptimizerSpecBase, param: GPUBuffer, grad: GPUBuffer, others: Record<string, GPUBuffer>) {
  checkCount(op, 'n', spec.n);
  const off = spec.offset ?? 0;
  const offGrad = spec.gradOffset ?? off;
  for (const [k, v] of Object.entries({ offset: off, gradOffset: offGrad })) {
    if (!Number.isInteger(v) || v < 0) throw new GpuError(`${op}: ${k} must be a non-negative integer, got ${v}`);
  }
  if (!Number.isFinite(spec.lr)) throw new GpuError(`${op}: lr must be finite, got ${spec.lr}`);
  checkSize(op, 'param', param, off + spec.n);
  checkSize(op, 'grad', grad, offGrad + spec.n);
  for (const [k, b] of Object.entries(others)) checkSize(op, k, b, off + spec.n);
  const all = [param, grad, ...Object.values(others)];
  if (new Set(all).size !== all.length) throw new GpuError(`${op}: ${['param', 'grad', ...Object.keys(others)].join(', ')} must be different buffers`);
  return { off, offGrad };
}

/** The pipeline constants and the control binding of the schedule, clipping and weight decay options. */
function control(ctx: GpuContext, op: string, spec: Pick<OptimizerSpecBase, 'weightDecay' | 'decoupled' | 'scheduled' | 'clipped'>, bufs: ControlBuffer, adam: boolean) {
  const wd = spec.weightDecay ?? 0;
  if (!(wd >= 0) || !Number.isFinite(wd)) throw new GpuError(`${op}: weightDecay must be a finite number ≥ 0, got ${wd}`);
  if (spec.decoupled && !adam) throw new GpuError(`${op}: decoupled weight decay is for Adam (AdamW); SGD's is L2`);
  const needs = spec.scheduled || spec.clipped;
  if (needs && !bufs.control) throw new GpuError(`${op}: a schedule or clipping needs the control buffer`);
  if (bufs.control) checkSize(op, 'control', bufs.control, 2);
  return {
    constants: { SCHEDULED: !!spec.scheduled, CLIPPED: !!spec.clipped, DECAY: wd === 0 ? 0 : spec.decoupled ? 2 : 1 },
    weightDecay: wd,
    control: needs ? bufs.control! : ctx.dummyBuffer(),
  };
}

const UNUSED = { stepOffset: 0, momentum: 0, oneMinusBeta1: 0, oneMinusBeta2: 0, logBeta1: 0, logBeta2: 0, epsilon: 0, weightDecay: 0 };

/** SGD, optionally with (Nesterov) momentum, updating `param` in place. */
export function prepareSgd(ctx: GpuContext, spec: SgdSpec, bufs: SgdBuffers): Dispatch {
  const mom = spec.momentum !== undefined;
  const op = `${mom ? (spec.nesterov ? 'nesterov ' : 'momentum ') : ''}sgd [${spec.n}]`;
  if (spec.nesterov && !mom) throw new GpuError(`${op}: nesterov needs a momentum`);
  if (mom && !bufs.accum) throw new GpuError(`${op}: momentum needs an accum buffer`);
  const { off, offGrad } = common(op, spec, bufs.param, bufs.grad, mom ? { accum: bufs.accum! } : {});
  const c = control(ctx, op, spec, bufs, false);
  const wg = elementwiseLanes(ctx);
  const kernel = mom
    ? ctx.kernel('optimizer.wgsl', 'momentum', { WG: wg, NESTEROV: !!spec.nesterov, ...c.constants })
    : ctx.kernel('optimizer.wgsl', 'sgd', { WG: wg, ...c.constants });
  const params = kernel.params({ ...UNUSED, n: spec.n, off, offGrad, lr: spec.lr, momentum: spec.momentum ?? 0, weightDecay: c.weightDecay });
  const label = spec.label ?? op;
  const resources: Record<string, GPUBuffer> = mom
    ? { params, param: bufs.param, grad: bufs.grad, accum: bufs.accum!, control: c.control }
    : { params, param: bufs.param, grad: bufs.grad, control: c.control };
  return { kernel, bindGroup: kernel.bind(resources, label), workgroups: gridStrideGroups(ctx, spec.n, wg), label, flops: (mom ? 4 : 2) * spec.n };
}

/**
 * Adam exactly as TensorFlow 1.x AdamOptimizer (defaults β1 0.9, β2 0.999, ε 1e-8), updating
 * `param`, `m`, `v` in place; the step t comes from the GPU counter `step` (see AdamSpec.stepOffset).
 */
export function prepareAdam(ctx: GpuContext, spec: AdamSpec, bufs: AdamBuffers): Dispatch {
  const op = `adam [${spec.n}]`;
  const hyper = adamHyper(op, spec);
  const { off, offGrad } = common(op, spec, bufs.param, bufs.grad, { m: bufs.m, v: bufs.v });
  checkSize(op, 'step', bufs.step, 1);
  const c = control(ctx, op, spec, bufs, true);
  const wg = elementwiseLanes(ctx);
  // Four elements per load where the slice is aligned to vec4s (most weight matrices).
  const vec4 = spec.n % 4 === 0 && off % 4 === 0 && offGrad % 4 === 0;
  const q = vec4 ? 4 : 1;
  const kernel = ctx.kernel('optimizer.wgsl', vec4 ? 'adam4' : 'adam', { WG: wg, ...c.constants });
  const params = kernel.params({ ...hyper, n: spec.n / q, off: off / q, offGrad: offGrad / q, momentum: 0, weightDecay: c.weightDecay });
  const label = spec.label ?? op;
  const bindGroup = vec4
    ? kernel.bind({ params, param4: bufs.param, grad4: bufs.grad, m4: bufs.m, v4: bufs.v, step: bufs.step, control: c.control }, label)
    : kernel.bind({ params, param: bufs.param, grad: bufs.grad, m: bufs.m, v: bufs.v, step: bufs.step, control: c.control }, label);
  return { kernel, bindGroup, workgroups: gridStrideGroups(ctx, spec.n / q, wg), label, flops: 12 * spec.n };
}

/** Adam's hyper-parameters as the shaders take them (ln β and 1 − β computed here in float64), checked. */
function adamHyper(op: string, spec: Omit<AdamSpec, 'n'>) {
  const beta1 = spec.beta1 ?? 0.9;
  const beta2 = spec.beta2 ?? 0.999;
  const epsilon = spec.epsilon ?? 1e-8;
  for (const [k, b] of Object.entries({ beta1, beta2 })) {
    if (!(b > 0 && b < 1)) throw new GpuError(`${op}: ${k} must be in (0, 1), got ${b}`);
  }
  const stepOffset = spec.stepOffset ?? 1;
  if (!Number.isInteger(stepOffset) || stepOffset < 0) throw new GpuError(`${op}: stepOffset must be a non-negative integer, got ${stepOffset}`);
  return {
    stepOffset, lr: spec.lr, oneMinusBeta1: 1 - beta1, oneMinusBeta2: 1 - beta2,
    logBeta1: Math.log(beta1), logBeta2: Math.log(beta2), epsilon,
  };
}

/** Where a weight updated in its gradient product's epilogue lies: [rows, cols] at `offset`, as C. */
interface EpilogueLayout {
  rows: number;
  cols: number;
  /**
   * The layer's bias [cols], updated too, from the product's column sums (MatmulSpec.biasGrad),
   * with the weight's hyper-parameters, at its own element offset (default 0).
   */
  biasOffset?: number;
}

/** The bias a weight's epilogue updates too (EpilogueLayout.biasOffset), and its state as the weight's. */
export interface EpilogueBias {
  param: GPUBuffer;
  /** Adam's moments, or SGD's momentum accumulator (as `m`). */
  m?: GPUBuffer;
  v?: GPUBuffer;
}

/** A weight [rows, cols] updated by Adam in its gradient product's epilogue (see adamEpilogue). */
export type AdamEpilogueSpec = Omit<AdamSpec, 'n' | 'gradOffset' | 'clipped'> & EpilogueLayout;

/** A weight [rows, cols] updated by SGD in its gradient product's epilogue (see sgdEpilogue). */
export type SgdEpilogueSpec = Omit<SgdSpec, 'n' | 'gradOffset' | 'clipped'> & EpilogueLayout;

const NO_HYPER = { stepOffset: 0, momentum: 0, oneMinusBeta1: 0, oneMinusBeta2: 0, logBeta1: 0, logBeta2: 0, epsilon: 0 };

/**
 * The matmul entry points that run an update in their epilogue (adamEpilogue, sgdEpilogue): a weight
 * of whole column quads, that with its bias, and a weight in any layout, with or without its bias.
 */
const UPDATE_ENTRIES = { quads: 'optimizer_step', quadsAndBias: 'optimizer_step_bias', floats: 'optimizer_step_scalar' } as const;

/** Whether a weight's columns are whole quads at `offset` (the vec4 epilogue), or are read float by float. */
export function updatesQuads(cols: number, offset = 0): boolean {
  return cols % 4 === 0 && offset % 4 === 0;
}

/**
 * Whether a product can run the update of a [rows, cols] weight at `offset` in its epilogue on this
 * device (see hasMatmulEpilogue), with its bias's update too where `withBias`.
 */
export function hasUpdateEpilogue(ctx: GpuContext, layout: { cols: number; offset?: number; withBias?: boolean } = { cols: 4 }): boolean {
  return hasMatmulEpilogue(ctx, updateEntry(layout.cols, layout.offset ?? 0, !!layout.withBias));
}

function updateEntry(cols: number, offset: number, withBias: boolean): string {
  if (!updatesQuads(cols, offset)) return UPDATE_ENTRIES.floats;
  return withBias ? UPDATE_ENTRIES.quadsAndBias : UPDATE_ENTRIES.quads;
}

/**
 * Adam as the epilogue of the product that computes the weight's gradient (shaders/matmul_subgroup.wgsl
 * optimizer_step): give it as MatmulSpec.epilogue of a product whose C is the gradient, [rows, cols],
 * laid out as the weight is (offC = spec.offset, ldc = cols). The gradient is never stored, and the
 * update is the arithmetic of prepareAdam: four columns at a time where cols and offset are
 * multiples of 4, else float by float (optimizer_step_scalar). With `bufs.bias`, the product's
 * column sums (MatmulSpec.biasGrad) update the bias too. No clipping (a clip scale needs every
 * gradient of the step first). Nothing that runs after the product may read the weight (or the
 * bias) expecting its old value.
 */
export function adamEpilogue(ctx: GpuContext, spec: AdamEpilogueSpec, bufs: Omit<AdamBuffers, 'grad'> & { bias?: EpilogueBias }): MatmulEpilogue {
  const op = `adam epilogue [${spec.rows}, ${spec.cols}]`;
  const hyper = adamHyper(op, spec);
  return optimizerEpilogue(ctx, op, spec, 'prepareAdam', { OPTIMIZER: 3 }, { ...hyper, momentum: 0 },
    { param: bufs.param, m: bufs.m, v: bufs.v }, bufs.step, bufs, true, 12);
}

/** SGD, with (Nesterov) momentum or not, as adamEpilogue is Adam: the arithmetic of prepareSgd. */
export function sgdEpilogue(ctx: GpuContext, spec: SgdEpilogueSpec, bufs: Omit<SgdBuffers, 'grad'> & { bias?: EpilogueBias }): MatmulEpilogue {
  const mom = spec.momentum !== undefined;
  const op = `${mom ? (spec.nesterov ? 'nesterov ' : 'momentum ') : ''}sgd epilogue [${spec.rows}, ${spec.cols}]`;
  if (spec.nesterov && !mom) throw new GpuError(`${op}: nesterov needs a momentum`);
  if (mom && !bufs.accum) throw new GpuError(`${op}: momentum needs an accum buffer`);
  return optimizerEpilogue(ctx, op, spec, 'prepareSgd', { OPTIMIZER: mom ? 2 : 1, NESTEROV: !!spec.nesterov },
    { ...NO_HYPER, lr: spec.lr, momentum: spec.momentum ?? 0 }, mom ? { param: bufs.param, accum: bufs.accum! } : { param: bufs.param }, undefined, bufs, false, mom ? 4 : 2);
}

/** The epilogue's bindings for each buffer it writes, by the name its errors give it: quads, floats, the bias's. */
const STATE_BINDING: Record<string, [string, string, string]> = {
  param: ['opt_w4', 'opt_w', 'opt_b'], m: ['opt_m4', 'opt_m', 'opt_bm'], accum: ['opt_m4', 'opt_m', 'opt_bm'], v: ['opt_v4', 'opt_v', 'opt_bv'],
};

/** The epilogue of optimizer_step for one optimizer: layout and buffers checked, unused bindings given dummies. */
function optimizerEpilogue(
  ctx: GpuContext, op: string, spec: Omit<OptimizerSpecBase, 'n' | 'gradOffset'> & EpilogueLayout, kernelFn: string,
  constants: KernelConstants, hyper: Record<string, number>, written: Record<string, GPUBuffer>, step: GPUBuffer | undefined,
  bufs: ControlBuffer & { bias?: EpilogueBias }, adam: boolean, flopsPerElement: number,
): MatmulEpilogue {
  const { rows, cols } = spec;
  checkCount(op, 'rows', rows);
  checkCount(op, 'cols', cols);
  if (!Number.isFinite(spec.lr)) throw new GpuError(`${op}: lr must be finite, got ${spec.lr}`);
  const off = spec.offset ?? 0;
  if (spec.clipped) throw new GpuError(`${op}: clipping needs every gradient of the step before any update; use ${kernelFn} after the clip`);
  const n = rows * cols;
  for (const [name, b] of Object.entries(written)) checkSize(op, name, b, off + n);
  if (new Set(Object.values(written)).size !== Object.keys(written).length) throw new GpuError(`${op}: ${Object.keys(written).join(', ')} must be different buffers`);
  if (step) checkSize(op, 'step', step, 1);
  const quads = updatesQuads(cols, off);
  const layout = quads ? 0 : 1;
  const state = Object.fromEntries(Object.entries(written).map(([name, b]) => [STATE_BINDING[name][layout], b]));
  // The bias's state as the weight's: the same names, in the bias's bindings.
  const bias = bufs.bias;
  const biasOff = spec.biasOffset ?? 0;
  const biasState: Record<string, GPUBuffer> = {};
  if (bias) {
    const given = { param: bias.param, ...(written.m ? { m: bias.m } : {}), ...(written.accum ? { accum: bias.m } : {}), ...(written.v ? { v: bias.v } : {}) };
    for (const [name, b] of Object.entries(given)) {
      if (!b) throw new GpuError(`${op}: the bias's update needs its ${name} buffer, as the weight's`);
      checkSize(op, `bias ${name}`, b, biasOff + cols);
      biasState[STATE_BINDING[name][2]] = b;
    }
    if (new Set([...Object.values(written), ...Object.values(biasState)]).size !== Object.keys(written).length + Object.keys(biasState).length) {
      throw new GpuError(`${op}: the bias and its state must be buffers of their own, apart from the weight's`);
    }
  }
  const entry = updateEntry(cols, off, !!bias);
  const c = control(ctx, op, spec, bufs, adam);
  // One uniform for every tile the product may switch to (all compile the same struct).
  let uniform: GPUBuffer | undefined;
  return {
    entry,
    constants: { ...constants, SCHEDULED: c.constants.SCHEDULED, DECAY: c.constants.DECAY, ...(entry === UPDATE_ENTRIES.floats ? { BIAS_UPDATE: !!bias } : {}) },
    elementwise: true,
    updates: { rows, cols, quads, bias: !!bias },
    flops: flopsPerElement * (n + (bias ? cols : 0)),
    bind(kernel) {
      uniform ??= kernel.params({ ...hyper, n: 0, off: biasOff, offGrad: 0, weightDecay: c.weightDecay }, `${op} hyper-parameters`, 'opt');
      // Unused state: writable dummies of their own (WebGPU refuses two writable bindings of one
      // buffer; 1 is the unused bias gradient's), the read-only one for the counter. Only the
      // bindings the entry point has are bound.
      const unused = { opt_m4: 2, opt_v4: 3, opt_m: 2, opt_v: 3, opt_b: 4, opt_bm: 5, opt_bv: 6 };
      const dummies = Object.fromEntries(Object.entries(unused).map(([name, i]) => [name, ctx.dummyBuffer(i)]));
      const all: Record<string, GPUBuffer> = { opt: uniform, ...dummies, ...state, ...biasState, opt_t: step ?? ctx.dummyBuffer(), opt_control: c.control };
      return Object.fromEntries(kernel.bindings.filter((b) => b.name in all).map((b) => [b.name, all[b.name]]));
    },
  };
}
