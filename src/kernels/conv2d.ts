import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import { ceilDiv, type Dispatch } from '../gpu/dispatch.js';
import { matmulSplitK, type Activation } from './matmul.js';
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
  /** Fused into the forward matmul's epilogue after the bias. Backward takes dy of the PRE-activation output. */
  activation?: Activation;
  label?: string;
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
  /** Rows of the im2col matrix: batch·outH·outW. */
  rows: number;
  /** Columns of the im2col matrix (a filter patch): kH·kW·inC. */
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

/** Bytes of the im2col scratch buffer (`cols`) a convolution needs: batch·outH·outW · kH·kW·inC floats. */
export function conv2dColsBytes(spec: Conv2dSpec): number {
  const g = conv2dGeometry(spec);
  return g.rows * g.patch * 4;
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
  /**
   * im2col scratch, conv2dColsBytes(spec) bytes, owned by the CALLER: forward fills it and
   * backward reads it (dW = colsᵀ·dy), so pass the same buffer to both.
   */
  cols: GPUBuffer;
}

function paramsFor(spec: Conv2dSpec, g: Conv2dGeometry, rows: number) {
  return {
    batch: spec.batch, inH: spec.inH, inW: spec.inW, inC: spec.inC,
    kH: spec.kH, kW: spec.kW, outH: g.outH, outW: g.outW,
    strideH: g.strideH, strideW: g.strideW, padTop: g.padTop, padLeft: g.padLeft,
    patchLen: g.patch, rowsPerGroup: rows,
  };
}

/**
 * im2col alone: x [batch, inH, inW, inC] → cols [batch·outH·outW, kH·kW·inC]. The forward runs it
 * before its matmul; a backward that did not keep the forward's cols runs it again (recompute
 * instead of holding the largest tensor of a CNN from forward to backward).
 */
export function prepareIm2col(ctx: GpuContext, spec: Conv2dSpec, bufs: { x: GPUBuffer; cols: GPUBuffer }): Dispatch {
  const g = conv2dGeometry(spec);
  const label = spec.label ?? `conv2d ${spec.kH}x${spec.kW}x${spec.inC}x${spec.outC}`;
  // Four channels per lane (vec4 loads and stores, ~2.5x faster on lavapipe) when inC allows.
  const v4 = spec.inC % 4 === 0;
  const lanes = v4 ? g.patch / 4 : g.patch;
  const wg = lanesFor(ctx, lanes);
  const rows = rowsPerGroup(ctx, g.rows, 16);
  const kernel = ctx.kernel('conv2d.wgsl', v4 ? 'im2col4' : 'im2col', { WG: wg });
  const params = kernel.params(paramsFor(spec, g, rows), `${label}/im2col params`);
  return {
    kernel,
    bindGroup: kernel.bind(v4 ? { params, x4: bufs.x, cols4: bufs.cols } : { params, x: bufs.x, cols: bufs.cols }, `${label}/im2col`),
    workgroups: [ceilDiv(lanes, wg), ceilDiv(g.rows, rows), 1],
    label: `${label}/im2col`,
  };
}

/**
 * Forward convolution: im2col (x → cols) then y = cols·filter (+ bias) (→ activation), the
 * matmul's fused epilogue. Returns [im2col, matmul]; encode them in order.
 */
export function conv2dForward(ctx: GpuContext, spec: Conv2dSpec, bufs: Conv2dForwardBuffers): Dispatch[] {
  const g = conv2dGeometry(spec);
  const op = `conv2d${spec.label ? ` ${spec.label}` : ''}`;
  const shapeX = `x [${spec.batch}, ${spec.inH}, ${spec.inW}, ${spec.inC}]`;
  checkSize(op, 'x', bufs.x, spec.batch * spec.inH * spec.inW * spec.inC, shapeX);
  checkSize(op, 'filter', bufs.filter, g.patch * spec.outC, `filter [${spec.kH}, ${spec.kW}, ${spec.inC}, ${spec.outC}]`);
  checkSize(op, 'bias', bufs.bias, spec.outC, `bias [${spec.outC}]`);
  checkSize(op, 'y', bufs.y, g.rows * spec.outC, `y [${spec.batch}, ${g.outH}, ${g.outW}, ${spec.outC}]`);
  checkSize(op, 'cols', bufs.cols, g.rows * g.patch, `cols [${g.rows}, ${g.patch}]`);
  const label = spec.label ?? `conv2d ${spec.kH}x${spec.kW}x${spec.inC}x${spec.outC}`;
  const im2col = prepareIm2col(ctx, spec, { x: bufs.x, cols: bufs.cols });
  const mm = matmulSplitK(ctx, { M: g.rows, N: spec.outC, K: g.patch, activation: spec.activation, label: `${label}/matmul` },
    { a: bufs.cols, b: bufs.filter, bias: bufs.bias, c: bufs.y });
  return [im2col, ...mm];
}

export interface Conv2dBackwardBuffers {
  /** Gradient of the loss w.r.t. the conv's pre-activation output, [batch, outH, outW, outC]. */
  dy: GPUBuffer;
  /** [kH, kW, inC, outC] (for dx). */
  filter: GPUBuffer;
  /** The im2col of the forward pass (the same buffer as the forward's `cols`), for dFilter. */
  cols: GPUBuffer;
  /** Outputs, each optional: leave one out to skip it (e.g. dx of the first layer). */
  dx?: GPUBuffer;
  dFilter?: GPUBuffer;
  dBias?: GPUBuffer;
  /**
   * Scratch for dy·filterᵀ ([rows, patch], conv2dColsBytes(spec) bytes), needed for dx. When left
   * out, one is made here at prepare time. It may be the `cols` buffer itself to save memory:
   * dFilter's matmul is encoded before it overwrites cols (so cols then no longer holds the
   * forward's im2col after backward has run).
   */
  dCols?: GPUBuffer;
}

/**
 * Backward convolution: dFilter = colsᵀ·dy, dBias = column sums of dy, dx = col2im(dy·filterᵀ),
 * col2im being a gather (each input pixel sums the patch entries it fed; no atomics).
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
  checkSize(op, 'dy', bufs.dy, g.rows * spec.outC, `dy [${spec.batch}, ${g.outH}, ${g.outW}, ${spec.outC}]`);
  checkSize(op, 'filter', bufs.filter, g.patch * spec.outC, `filter [${spec.kH}, ${spec.kW}, ${spec.inC}, ${spec.outC}]`);
  checkSize(op, 'dFilter', bufs.dFilter, g.patch * spec.outC, `dFilter [${spec.kH}, ${spec.kW}, ${spec.inC}, ${spec.outC}]`);
  checkSize(op, 'dBias', bufs.dBias, spec.outC, `dBias [${spec.outC}]`);
  checkSize(op, 'dx', bufs.dx, spec.batch * spec.inH * spec.inW * spec.inC, `dx [${spec.batch}, ${spec.inH}, ${spec.inW}, ${spec.inC}]`);
  if (bufs.dFilter) checkSize(op, 'cols', bufs.cols, g.rows * g.patch, `cols [${g.rows}, ${g.patch}]`);
  checkSize(op, 'dCols', bufs.dCols, g.rows * g.patch, `dCols [${g.rows}, ${g.patch}]`);
  const label = spec.label ?? `conv2d ${spec.kH}x${spec.kW}x${spec.inC}x${spec.outC}`;
  const out: Dispatch[] = [];

  if (bufs.dFilter) {
    // dFilter[patch, outC] = colsᵀ[patch, rows] · dy[rows, outC]
    out.push(...matmulSplitK(ctx, { M: g.patch, N: spec.outC, K: g.rows, transA: true, accumulate, label: `${label}/dFilter` },
      { a: bufs.cols, b: bufs.dy, c: bufs.dFilter }));
  }
  if (bufs.dBias) {
    out.push(...columnSum(ctx, { rows: g.rows, cols: spec.outC, accumulate, label: `${label}/dBias` }, { x: bufs.dy, out: bufs.dBias }));
  }
  if (bufs.dx) {
    const dCols = bufs.dCols ?? ctx.storage(g.rows * g.patch * 4, `${label}/dCols`);
    // dCols[rows, patch] = dy[rows, outC] · filterᵀ[outC, patch]
    out.push(...matmulSplitK(ctx, { M: g.rows, N: g.patch, K: spec.outC, transB: true, label: `${label}/dCols` },
      { a: bufs.dy, b: bufs.filter, c: dCols }));
    const v4 = spec.inC % 4 === 0;
    const lanes = v4 ? spec.inC / 4 : spec.inC;
    const wg = lanesFor(ctx, lanes);
    const pixels = spec.batch * spec.inH * spec.inW;
    const rows = rowsPerGroup(ctx, pixels, 16);
    const kernel = ctx.kernel('conv2d.wgsl', v4 ? 'col2im4' : 'col2im', { WG: wg, ACCUMULATE: accumulateDx });
    const params = kernel.params(paramsFor(spec, g, rows), `${label}/col2im params`);
    out.push({
      kernel,
      bindGroup: kernel.bind(v4 ? { params, dcols4: dCols, dx4: bufs.dx } : { params, dcols: dCols, dx: bufs.dx }, `${label}/col2im`),
      workgroups: [ceilDiv(lanes, wg), ceilDiv(pixels, rows), 1],
      label: `${label}/col2im`,
      flops: g.rows * g.patch,
    });
  }
  return out;
}
