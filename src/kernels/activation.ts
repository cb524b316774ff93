import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import { ceilDiv, type Dispatch } from '../gpu/dispatch.js';
import { ACTIVATION_CODE, type Activation } from './matmul.js';
import { checkPositive } from './checks.js';

/**
 * The elementwise activations: the matmul-fused ones, and gelu (exact erf form), which is not fused
 * into matmul because its backward needs the pre-activation x, not y.
 */
export type ElementwiseActivation = Activation | 'gelu';
const CODE: Record<ElementwiseActivation, number> = { ...ACTIVATION_CODE, gelu: 4 };

/** Workgroup size of the elementwise kernels (activation, dropout, optimizer). */
export const ELEMENTWISE_WG = 64;
/**
 * Most workgroups an elementwise dispatch uses; the kernels loop (grid stride) over the rest.
 * On lavapipe fewer, longer-running workgroups are faster (measured: relu over 550,000 elements
 * 1.7–2.1 ms with 512 groups vs 3.7–4.1 ms with 4096 and 4.5–5.5 ms with one element per
 * invocation); 512 × 64 invocations still fill a discrete GPU reasonably.
 */
export const ELEMENTWISE_MAX_GROUPS = 512;

/** Workgroup count for a grid-stride kernel over `items` items with `wg` invocations per workgroup. */
export function gridStrideGroups(ctx: GpuContext, items: number, wg = ELEMENTWISE_WG): [number, number, number] {
  const cap = Math.min(ELEMENTWISE_MAX_GROUPS, ctx.limits.maxComputeWorkgroupsPerDimension);
  return [Math.max(1, Math.min(ceilDiv(items, wg), cap)), 1, 1];
}

/** Throws a GpuError naming `op` unless `v` is a positive integer. */
export function checkCount(op: string, name: string, v: number): void {
  checkPositive(op, { [name]: v });
}

/** Throws a GpuError naming `op` unless `buf` holds at least `elems` 4-byte elements. */
export function checkSize(op: string, name: string, buf: GPUBuffer, elems: number): void {
  if (buf.size < elems * 4) throw new GpuError(`${op}: buffer ${name} has ${buf.size} bytes, needs ${elems * 4} (${elems} elements)`);
}

/** Lanes per workgroup of the element-wise kernels: ELEMENTWISE_WG, or fewer where the adapter allows fewer. */
export function elementwiseLanes(ctx: GpuContext): number {
  return Math.min(ELEMENTWISE_WG, ctx.limits.maxComputeInvocationsPerWorkgroup);
}

export interface ActivationSpec {
  /** Number of elements. */
  n: number;
  activation: ElementwiseActivation;
  label?: string;
}

/** y = f(x) elementwise. When `x` and `y` are the same buffer it runs in place (y = f(y)). */
export function prepareActivation(ctx: GpuContext, spec: ActivationSpec, bufs: { x: GPUBuffer; y: GPUBuffer }): Dispatch {
  const op = `activation ${spec.activation}`;
  checkCount(op, 'n', spec.n);
  checkSize(op, 'x', bufs.x, spec.n);
  checkSize(op, 'y', bufs.y, spec.n);
  const wg = elementwiseLanes(ctx);
  const inPlace = bufs.x === bufs.y;
  const kernel = ctx.kernel('activation.wgsl', inPlace ? 'forward_inplace' : 'forward', { OP: CODE[spec.activation], WG: wg });
  const params = kernel.params({ n: spec.n, cols: 1 });
  const label = spec.label ?? `${spec.activation} [${spec.n}]${inPlace ? ' in place' : ''}`;
  const bindGroup = kernel.bind(inPlace ? { params, y: bufs.y } : { params, x: bufs.x, y: bufs.y }, label);
  return { kernel, bindGroup, workgroups: gridStrideGroups(ctx, spec.n, wg), label, flops: spec.n };
}

export interface ActivationBackwardSpec extends ActivationSpec {
  /** dx += dy ⊙ f' (gradient accumulation) instead of dx = dy ⊙ f'. */
  accumulate?: boolean;
}

/**
 * dx = dy ⊙ f'(x), computed from the forward OUTPUT y = f(x) (relu: y > 0, sigmoid: y(1−y),
 * tanh: 1−y²), so it needs the buffer `y` of the forward pass, not x. Except gelu, whose
 * derivative is no function of y: for gelu, pass the forward INPUT x as `y`. With `accumulate`, dx += ….
 * When `dy` and `dx` are the same buffer it runs in place (no accumulate then).
 */
export function prepareActivationBackward(
  ctx: GpuContext, spec: ActivationBackwardSpec, bufs: { y: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer },
): Dispatch {
  const op = `activation ${spec.activation} backward`;
  checkCount(op, 'n', spec.n);
  for (const [k, b] of Object.entries(bufs)) checkSize(op, k, b, spec.n);
  const inPlace = bufs.dy === bufs.dx;
  if (inPlace && spec.accumulate) throw new GpuError(`${op}: accumulate needs dx to be a different buffer from dy`);
  if (bufs.y === bufs.dx) throw new GpuError(`${op}: y and dx must be different buffers`);
  const wg = elementwiseLanes(ctx);
  const kernel = ctx.kernel('activation.wgsl', inPlace ? 'backward_inplace' : 'backward', {
    OP: CODE[spec.activation], ACCUMULATE: !!spec.accumulate, WG: wg,
  });
  const params = kernel.params({ n: spec.n, cols: 1 });
  const label = spec.label ?? `${spec.activation} backward [${spec.n}]${spec.accumulate ? ' +=' : ''}`;
  const bindGroup = kernel.bind(inPlace ? { params, y: bufs.y, dx: bufs.dx } : { params, y: bufs.y, dy: bufs.dy, dx: bufs.dx }, label);
  return { kernel, bindGroup, workgroups: gridStrideGroups(ctx, spec.n, wg), label, flops: 2 * spec.n };
}

export interface BiasAddSpec {
  rows: number;
  cols: number;
  /** Activation applied after the bias add (default none: a plain bias add). */
  activation?: Activation;
  label?: string;
}

/** y[i,j] = f(x[i,j] + b[j]) for x, y [rows, cols] and b [cols]. In place when `x` and `y` are the same buffer. */
export function prepareBiasAdd(ctx: GpuContext, spec: BiasAddSpec, bufs: { x: GPUBuffer; b: GPUBuffer; y: GPUBuffer }): Dispatch {
  const act = spec.activation ?? 'none';
  const op = `bias add${act === 'none' ? '' : ` + ${act}`}`;
  checkCount(op, 'rows', spec.rows);
  checkCount(op, 'cols', spec.cols);
  const n = spec.rows * spec.cols;
  checkSize(op, 'x', bufs.x, n);
  checkSize(op, 'y', bufs.y, n);
  checkSize(op, 'b', bufs.b, spec.cols);
  const inPlace = bufs.x === bufs.y;
  const wg = elementwiseLanes(ctx);
  const kernel = ctx.kernel('activation.wgsl', inPlace ? 'bias_inplace' : 'bias', { OP: CODE[act], WG: wg });
  const params = kernel.params({ n, cols: spec.cols });
  const label = spec.label ?? `${op} [${spec.rows},${spec.cols}]${inPlace ? ' in place' : ''}`;
  const bindGroup = kernel.bind(inPlace ? { params, b: bufs.b, y: bufs.y } : { params, x: bufs.x, b: bufs.b, y: bufs.y }, label);
  return { kernel, bindGroup, workgroups: gridStrideGroups(ctx, n, wg), label, flops: 2 * n };
}
