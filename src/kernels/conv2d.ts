import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import { ceilDiv, type Dispatch } from '../gpu/dispatch.js';
import { ACTIVATION_CODE, hasSubgroupKernel, matmulKernelFor, matmulSplitK, splitKFactor, type Activation, type MatmulConv } from './matmul.js';
import { columnSum } from './reduce.js';
import { checkPositive } from './checks.js';

export type Padding = 'SAME' | 'VALID';

/** One spatial dimension of a sliding window, as TensorFlow computes it. */
export interface WindowDim {
  out: number;
  /** Padding before (top/left) and after (bottom/right); SAME puts the odd one after. */
  padBefore: number;
  padAfter: number;
}

/**
 * TensorFlow's output size and padding for a window of `k` taps moved by `stride` over `size`:
 * SAME: out = ceil(size/stride), pad = max((out−1)·stride + k − size, 0), floor(pad/2) before;
 * VALID: out = ceil((size − k + 1)/stride), no padding.
 */
export function windowDim(op: string, size: number, k: number, stride: number, padding: Padding): WindowDim {
  if (padding === 'SAME') {
    const out = Math.ceil(size / stride);
    const total = Math.max((out - 1) * stride + k - size, 0);
    const padBefore = Math.floor(total / 2);
    return { out, padBefore, padAfter: total - padBefore };
  }
  if (padding === 'VALID') {
    if (k > size) throw new GpuError(`${op}: VALID padding needs the window (${k}) no larger than the input (${size})`);
    return { out: Math.ceil((size - k + 1) / stride), padBefore: 0, padAfter: 0 };
  }
  throw new GpuError(`${op}: padding must be 'SAME' or 'VALID', got ${String(padding)}`);
}

export { checkPositive };

export function strides(stride: number | [number, number] | undefined, dflt: [number, number]): [number, number] {
  if (stride === undefined) return dflt;
  return typeof stride === 'number' ? [stride, stride] : stride;
}

export function checkSize(op: string, what: string, buf: GPUBuffer | undefined, floats: number, shape: string): void {
  if (buf && buf.size < floats * 4) throw new GpuError(`${op}: ${what} holds ${buf.size} bytes, ${shape} needs ${floats * 4}`);
}

/** Lanes per workgroup for `n` items along the lane axis: a power of two covering them, 8…64. */
export function lanesFor(ctx: GpuContext, n: number): number {
  let wg = 8;
  while (wg < n && wg < 64) wg *= 2;
  return Math.min(wg, ctx.limits.maxComputeInvocationsPerWorkgroup);
}

/** Rows per workgroup: `preferred`, or more when that many rows would exceed the workgroup-count limit. */
export function rowsPerGroup(ctx: GpuContext, rows: number, preferred: number): number {
  return Math.max(preferred, ceilDiv(rows, ctx.limits.maxComputeWorkgroupsPerDimension));
}

/** A 2-D convolution: x [batch, inH, inW, inC] ⊛ filter [kH, kW, inC, outC] → y [batch, outH, outW, outC] (NHWC). */
export interface Conv2dSpec {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  kH: number;
  kW: number;
  outC: number;
  /** [strideH, strideW] or one number for both; default 1. */
  stride?: number | [number, number];
  padding: Padding;
  /** Fused into the forward product's epilogue after the bias. Backward takes dy of the PRE-activation output. */
  activation?: Activation;
  label?: string;
  /** The kernel of its products, instead of conv2dKernelFor's choice (for tests and comparisons). */
  kernel?: Conv2dKernel;
  /** A tile variant of the subgroup kernel for its products (matmul-variants.ts), instead of the tuned or default tile (for tests). */
  variant?: string;
}

/**
 * The kernels that compute a convolution's products as implicit GEMMs (no patch matrix stored):
 * 'subgroup', shaders/matmul_subgroup.wgsl reading its operands from the NHWC tensors (CONV), built
 * for software adapters; 'tiled', shaders/conv2d_gemm.wgsl's workgroup-memory tiles, for GPUs.
 */
export type Conv2dKernel = 'subgroup' | 'tiled';

/**
 * Which kernel computes an M x N product over K of this convolution: the one matmul would pick for
 * a product of that size (matmulKernelFor: 'subgroup' on adapters with subgroups where it would
 * use the subgroup kernel), else 'tiled'; the spec's `kernel` overrides it. conv2d_gemm walks all
 * of K in each workgroup, so a product that matmul would split over K (splitKFactor: a filter
 * gradient, a small output summed over the batch's pixels, in a dozen workgroups on a GPU) takes
 * the subgroup kernel, which splits it, where the adapter runs it.
 */
export function conv2dKernelFor(ctx: GpuContext, spec: Conv2dSpec, M: number, N: number, K: number): Conv2dKernel {
  if (spec.kernel) return spec.kernel;
  if (matmulKernelFor(ctx, { M, N, K }) === 'subgroup') return 'subgroup';
  return hasSubgroupKernel(ctx) && splitKFactor(ctx, { M, N, K }) > 1 ? 'subgroup' : 'tiled';
}

/** Output size, strides and padding of a sliding window over NHWC input (convolution and pooling). */
export interface WindowGeometry {
  outH: number;
  outW: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padBottom: number;
  padLeft: number;
  padRight: number;
}

export interface Conv2dGeometry extends WindowGeometry {
  /** Output pixels: batch·outH·outW (the rows of the forward product). */
  rows: number;
  /** Taps of a filter patch times input channels: kH·kW·inC (the forward product's K). */
  patch: number;
}

export function conv2dGeometry(spec: Conv2dSpec): Conv2dGeometry {
  const op = `conv2d${spec.label ? ` ${spec.label}` : ''}`;
  const { batch, inH, inW, inC, kH, kW, outC } = spec;
  checkPositive(op, { batch, inH, inW, inC, kH, kW, outC });
  const [strideH, strideW] = strides(spec.stride, [1, 1]);
  checkPositive(op, { strideH, strideW });
  const h = windowDim(op, inH, kH, strideH, spec.padding);
  const w = windowDim(op, inW, kW, strideW, spec.padding);
  return {
    outH: h.out, outW: w.out, strideH, strideW,
    padTop: h.padBefore, padBottom: h.padAfter, padLeft: w.padBefore, padRight: w.padAfter,
    rows: batch * h.out * w.out, patch: kH * kW * inC,
  };
}

export interface Conv2dForwardBuffers {
  /** [batch, inH, inW, inC] */
  x: GPUBuffer;
  /** [kH, kW, inC, outC] */
  filter: GPUBuffer;
  /** [outC], optional */
  bias?: GPUBuffer;
  /** [batch, outH, outW, outC] */
  y: GPUBuffer;
}

/** The three products of a convolution (shaders/conv2d_gemm.wgsl's MODE numbers them). */
const enum GemmMode { Forward = 0, Dx = 1, DFilter = 2 }

/** The tile of one conv2d_gemm.wgsl dispatch: T rows × 4 columns per invocation, WGS invocations (rows), KT k's per tile. */
interface ConvTile { T: number; WGS: number; KT: number }

/**
 * Tile for a product with N columns: 4·T columns per workgroup, T = 16 (64 columns) where N is
 * wide, 8 or 4 where it is narrow (no wasted columns for the tutorial CNN's 32 and 64 channels);
 * 64 rows per workgroup; 16 k's per tile (two barriers per tile; a 16-wide step keeps both tiles
 * within 8 KiB).
 */
function convTile(N: number): ConvTile {
  const T = N > 32 ? 16 : N > 16 ? 8 : 4;
  return { T, WGS: 64, KT: 16 };
}

function gemmDispatch(
  ctx: GpuContext, spec: Conv2dSpec, g: Conv2dGeometry,
  mode: GemmMode, M: number, N: number, K: number,
  bufs: { src: GPUBuffer; b: GPUBuffer; bias?: GPUBuffer; c: GPUBuffer },
  opts: { activation?: Activation; accumulate?: boolean; label: string },
): Dispatch {
  const tile = convTile(N);
  const srcChannels = mode === GemmMode.Dx ? spec.outC : spec.inC;
  const vecC = N % 4 === 0;
  const rowGroups = ceilDiv(M, tile.WGS);
  if (rowGroups > ctx.limits.maxComputeWorkgroupsPerDimension) {
    throw new GpuError(`${opts.label}: ${M} rows need ${rowGroups} workgroups, over the adapter's ${ctx.limits.maxComputeWorkgroupsPerDimension} per dimension`);
  }
  const kernel = ctx.kernel('conv2d_gemm.wgsl', vecC ? 'main_c4' : 'main', {
    MODE: mode,
    VEC_SRC: mode !== GemmMode.DFilter && srcChannels % 4 === 0,
    VEC_B: mode !== GemmMode.Dx && N % 4 === 0,
    HAS_BIAS: !!bufs.bias,
    ACTIVATION: ACTIVATION_CODE[opts.activation ?? 'none'],
    ACCUMULATE: !!opts.accumulate,
    T: tile.T, WGS: tile.WGS, KT: tile.KT,
  });
  const params = kernel.params({
    batch: spec.batch, inH: spec.inH, inW: spec.inW, inC: spec.inC,
    kH: spec.kH, kW: spec.kW, outH: g.outH, outW: g.outW,
    strideH: g.strideH, strideW: g.strideW, padTop: g.padTop, padLeft: g.padLeft,
    outC: spec.outC, M, N, K,
  }, `${opts.label} params`);
  const out: Record<string, GPUBuffer> = vecC ? { C4: bufs.c } : { C: bufs.c };
  return {
    kernel,
    bindGroup: kernel.bind({ params, src: bufs.src, src4: bufs.src, B: bufs.b, B4: bufs.b, bias: bufs.bias ?? ctx.dummyBuffer(), ...out }, opts.label),
    workgroups: [ceilDiv(N, 4 * tile.T), rowGroups, 1],
    label: opts.label,
    flops: 2 * M * N * K,
  };
}

/**
 * One product of a convolution with the kernel conv2dKernelFor picks: the subgroup kernel's
 * implicit GEMM (K split across workgroups where it pays, as matmulSplitK does), or conv2d_gemm.
 */
function convProduct(
  ctx: GpuContext, spec: Conv2dSpec, g: Conv2dGeometry,
  mode: GemmMode, M: number, N: number, K: number,
  bufs: { src: GPUBuffer; b: GPUBuffer; bias?: GPUBuffer; c: GPUBuffer },
  opts: { activation?: Activation; accumulate?: boolean; label: string },
): Dispatch[] {
  if (conv2dKernelFor(ctx, spec, M, N, K) === 'tiled') return [gemmDispatch(ctx, spec, g, mode, M, N, K, bufs, opts)];
  const conv: MatmulConv = {
    mode: mode === GemmMode.Forward ? 'forward' : mode === GemmMode.Dx ? 'dx' : 'dFilter',
    batch: spec.batch, inH: spec.inH, inW: spec.inW, inC: spec.inC, kH: spec.kH, kW: spec.kW,
    outH: g.outH, outW: g.outW, outC: spec.outC, strideH: g.strideH, strideW: g.strideW, padTop: g.padTop, padLeft: g.padLeft,
  };
  return matmulSplitK(ctx, {
    M, N, K, conv, transA: mode === GemmMode.DFilter, transB: mode === GemmMode.Dx, ldb: mode === GemmMode.Dx ? spec.outC : undefined,
    activation: opts.activation, accumulate: opts.accumulate, label: opts.label, variant: spec.variant,
  }, { a: bufs.src, b: bufs.b, bias: bufs.bias, c: bufs.c });
}

/**
 * Forward convolution: y = x ⊛ filter (+ bias) (→ activation), an implicit GEMM (conv2dKernelFor's
 * kernel) that reads the patches of x as it tiles them: no im2col buffer.
 */
export function conv2dForward(ctx: GpuContext, spec: Conv2dSpec, bufs: Conv2dForwardBuffers): Dispatch[] {
  const g = conv2dGeometry(spec);
  const op = `conv2d${spec.label ? ` ${spec.label}` : ''}`;
  const shapeX = `x [${spec.batch}, ${spec.inH}, ${spec.inW}, ${spec.inC}]`;
  checkSize(op, 'x', bufs.x, spec.batch * spec.inH * spec.inW * spec.inC, shapeX);
  checkSize(op, 'filter', bufs.filter, g.patch * spec.outC, `filter [${spec.kH}, ${spec.kW}, ${spec.inC}, ${spec.outC}]`);
  checkSize(op, 'bias', bufs.bias, spec.outC, `bias [${spec.outC}]`);
  checkSize(op, 'y', bufs.y, g.rows * spec.outC, `y [${spec.batch}, ${g.outH}, ${g.outW}, ${spec.outC}]`);
  const label = spec.label ?? `conv2d ${spec.kH}x${spec.kW}x${spec.inC}x${spec.outC}`;
  return convProduct(ctx, spec, g, GemmMode.Forward, g.rows, spec.outC, g.patch,
    { src: bufs.x, b: bufs.filter, bias: bufs.bias, c: bufs.y }, { activation: spec.activation, label });
}

export interface Conv2dBackwardBuffers {
  /** Gradient of the loss w.r.t. the conv's pre-activation output, [batch, outH, outW, outC]. */
  dy: GPUBuffer;
  /** [kH, kW, inC, outC] (for dx). */
  filter: GPUBuffer;
  /** The forward's input [batch, inH, inW, inC] (for dFilter). */
  x: GPUBuffer;
  /** Outputs, each optional: leave one out to skip it (e.g. dx of the first layer). */
  dx?: GPUBuffer;
  dFilter?: GPUBuffer;
  dBias?: GPUBuffer;
}

/**
 * Backward convolution: dFilter = patches(x)ᵀ·dy and dx = dy ⊛ᵀ filter (a gather: each input
 * pixel sums the outputs its taps fed; no atomics), both implicit GEMMs that gather as they tile
 * (no im2col or col2im buffer), and dBias = column sums of dy.
 * `dy` is the gradient of the pre-activation output: with a fused relu the caller masks it first.
 * With `accumulate`, every gradient is added to its output's contents instead of overwriting them;
 * `accumulateDx` (default: `accumulate`) sets it for dx alone, for an input that other ops read too.
 * Returns the dispatches in the order they must be encoded.
 */
export function conv2dBackward(ctx: GpuContext, spec: Conv2dSpec & { accumulate?: boolean; accumulateDx?: boolean }, bufs: Conv2dBackwardBuffers): Dispatch[] {
  const g = conv2dGeometry(spec);
  const op = `conv2d backward${spec.label ? ` ${spec.label}` : ''}`;
  const accumulate = !!spec.accumulate;
  const accumulateDx = spec.accumulateDx ?? accumulate;
  const nx = spec.batch * spec.inH * spec.inW * spec.inC;
  const shapeX = `[${spec.batch}, ${spec.inH}, ${spec.inW}, ${spec.inC}]`;
  checkSize(op, 'dy', bufs.dy, g.rows * spec.outC, `dy [${spec.batch}, ${g.outH}, ${g.outW}, ${spec.outC}]`);
  checkSize(op, 'filter', bufs.filter, g.patch * spec.outC, `filter [${spec.kH}, ${spec.kW}, ${spec.inC}, ${spec.outC}]`);
  checkSize(op, 'dFilter', bufs.dFilter, g.patch * spec.outC, `dFilter [${spec.kH}, ${spec.kW}, ${spec.inC}, ${spec.outC}]`);
  checkSize(op, 'dBias', bufs.dBias, spec.outC, `dBias [${spec.outC}]`);
  checkSize(op, 'dx', bufs.dx, nx, `dx ${shapeX}`);
  if (bufs.dFilter) checkSize(op, 'x', bufs.x, nx, `x ${shapeX}`);
  const label = spec.label ?? `conv2d ${spec.kH}x${spec.kW}x${spec.inC}x${spec.outC}`;
  const out: Dispatch[] = [];

  if (bufs.dFilter) {
    // dFilter[patch, outC] = patchesᵀ[patch, rows] · dy[rows, outC]
    out.push(...convProduct(ctx, spec, g, GemmMode.DFilter, g.patch, spec.outC, g.rows,
      { src: bufs.x, b: bufs.dy, c: bufs.dFilter }, { accumulate, label: `${label}/dFilter` }));
  }
  if (bufs.dBias) {
    out.push(...columnSum(ctx, { rows: g.rows, cols: spec.outC, accumulate, label: `${label}/dBias` }, { x: bufs.dy, out: bufs.dBias }));
  }
  if (bufs.dx) {
    // dx[pixels, inC] = Σ over (ki, kj, co) of dy at the output pixel tap (ki, kj) saw · filter[ki, kj, ci, co]
    out.push(...convProduct(ctx, spec, g, GemmMode.Dx, spec.batch * spec.inH * spec.inW, spec.inC, spec.kH * spec.kW * spec.outC,
      { src: bufs.dy, b: bufs.filter, c: bufs.dx }, { accumulate: accumulateDx, label: `${label}/dx` }));
  }
  return out;
}
