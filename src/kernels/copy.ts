import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { checkCount, checkSize, gridStrideGroups, elementwiseLanes } from './activation.js';

export interface CopySpec {
  rows: number;
  cols: number;
  /** Row length of x in elements (default cols). */
  ldX?: number;
  /** Row length of y in elements (default cols). */
  ldY?: number;
  /** Element offset of x's first element (default 0). */
  offX?: number;
  /** Element offset of y's first element (default 0). */
  offY?: number;
  /** Factor on x (default 1: a plain copy). */
  scale?: number;
  /** y += scale·x instead of y = scale·x. */
  accumulate?: boolean;
  label?: string;
}

/**
 * Strided 2-D copy: y[offY + r·ldY + c] (+)= scale · x[offX + r·ldX + c] for r < rows, c < cols.
 * With rows = 1 (or ld = cols) a plain copy of rows·cols elements. `x` and `y` must differ.
 * Runs four floats per lane when cols, ldX, ldY, offX and offY are all multiples of 4.
 */
export function prepareCopy(ctx: GpuContext, spec: CopySpec, bufs: { x: GPUBuffer; y: GPUBuffer }): Dispatch {
  const { rows, cols } = spec;
  const ldX = spec.ldX ?? cols, ldY = spec.ldY ?? cols, offX = spec.offX ?? 0, offY = spec.offY ?? 0;
  const op = `copy [${rows},${cols}]`;
  checkCount(op, 'rows', rows);
  checkCount(op, 'cols', cols);
  if (!Number.isInteger(ldX) || ldX < cols) throw new GpuError(`${op}: ldX must be an integer ≥ cols, got ${ldX}`);
  if (!Number.isInteger(ldY) || ldY < cols) throw new GpuError(`${op}: ldY must be an integer ≥ cols, got ${ldY}`);
  if (!Number.isInteger(offX) || offX < 0) throw new GpuError(`${op}: offX must be a non-negative integer, got ${offX}`);
  if (!Number.isInteger(offY) || offY < 0) throw new GpuError(`${op}: offY must be a non-negative integer, got ${offY}`);
  checkSize(op, 'x', bufs.x, offX + (rows - 1) * ldX + cols);
  checkSize(op, 'y', bufs.y, offY + (rows - 1) * ldY + cols);
  if (bufs.x === bufs.y) throw new GpuError(`${op}: x and y must be different buffers`);
  const v4 = [cols, ldX, ldY, offX, offY].every((v) => v % 4 === 0);
  const u = v4 ? 4 : 1;
  const wg = elementwiseLanes(ctx);
  const kernel = ctx.kernel('copy.wgsl', v4 ? 'copy4' : 'copy', { WG: wg, ACCUMULATE: !!spec.accumulate });
  const params = kernel.params({ rows, cols: cols / u, ldX: ldX / u, ldY: ldY / u, offX: offX / u, offY: offY / u, scale: spec.scale ?? 1 });
  const label = spec.label ?? `copy [${rows},${cols}]${spec.accumulate ? ' +=' : ''}`;
  const bindGroup = kernel.bind(v4 ? { params, x4: bufs.x, y4: bufs.y } : { params, x: bufs.x, y: bufs.y }, label);
  const n = rows * cols;
  return { kernel, bindGroup, workgroups: gridStrideGroups(ctx, n / u, wg), label, flops: spec.accumulate ? 2 * n : n };
}

/** y = a + b elementwise over n elements. `y` must differ from `a` and `b` (`a` and `b` may be the same buffer). */
export function prepareAdd(ctx: GpuContext, spec: { n: number; label?: string }, bufs: { a: GPUBuffer; b: GPUBuffer; y: GPUBuffer }): Dispatch {
  const { n } = spec;
  const op = `add [${n}]`;
  checkCount(op, 'n', n);
  for (const k of ['a', 'b', 'y'] as const) checkSize(op, k, bufs[k], n);
  if (bufs.y === bufs.a || bufs.y === bufs.b) throw new GpuError(`${op}: y must differ from a and b`);
  const v4 = n % 4 === 0;
  const u = v4 ? 4 : 1;
  const wg = elementwiseLanes(ctx);
  const kernel = ctx.kernel('copy.wgsl', v4 ? 'add4' : 'add', { WG: wg });
  const params = kernel.params({ rows: 1, cols: n / u, ldX: 0, ldY: 0, offX: 0, offY: 0, scale: 1 });
  const label = spec.label ?? op;
  const bindGroup = kernel.bind(v4 ? { params, x4: bufs.a, x24: bufs.b, y4: bufs.y } : { params, x: bufs.a, x2: bufs.b, y: bufs.y }, label);
  return { kernel, bindGroup, workgroups: gridStrideGroups(ctx, n / u, wg), label, flops: n };
}

export interface AddBackwardSpec {
  n: number;
  /** da += dy instead of da = dy. */
  accumulateA?: boolean;
  /** db += dy instead of db = dy. */
  accumulateB?: boolean;
  label?: string;
}

/**
 * Gradient of y = a + b: da (+)= dy and db (+)= dy. Either output may be left out (no gradient
 * wanted); with both, one pass reads dy once and writes both. When `da` and `db` are the same
 * buffer (y = a + a) the result is what the two writes in order give: db = dy without
 * accumulateB, otherwise da (+)= 2·dy. Returns zero or one dispatch.
 */
export function prepareAddBackward(
  ctx: GpuContext, spec: AddBackwardSpec, bufs: { dy: GPUBuffer; da?: GPUBuffer; db?: GPUBuffer },
): Dispatch[] {
  const { n } = spec;
  const op = `add backward [${n}]`;
  checkCount(op, 'n', n);
  checkSize(op, 'dy', bufs.dy, n);
  if (bufs.da) checkSize(op, 'da', bufs.da, n);
  if (bufs.db) checkSize(op, 'db', bufs.db, n);
  if (bufs.da === bufs.dy || bufs.db === bufs.dy) throw new GpuError(`${op}: da and db must differ from dy`);
  const base = spec.label ?? op;
  const { da, db } = bufs;
  if (!da && !db) return [];
  if (!da || !db || da === db) {
    const same = da === db;
    const y = (da ?? db)!;
    const accumulate = same ? (spec.accumulateB ? !!spec.accumulateA : false) : !!(da ? spec.accumulateA : spec.accumulateB);
    const scale = same && spec.accumulateB ? 2 : 1;
    return [prepareCopy(ctx, { rows: 1, cols: n, scale, accumulate, label: base }, { x: bufs.dy, y })];
  }
  const v4 = n % 4 === 0;
  const u = v4 ? 4 : 1;
  const wg = elementwiseLanes(ctx);
  const kernel = ctx.kernel('copy.wgsl', v4 ? 'fanout4' : 'fanout', { WG: wg, ACCUMULATE: !!spec.accumulateA, ACCUMULATE2: !!spec.accumulateB });
  const params = kernel.params({ rows: 1, cols: n / u, ldX: 0, ldY: 0, offX: 0, offY: 0, scale: 1 });
  const bindGroup = kernel.bind(v4 ? { params, x4: bufs.dy, y4: da, y24: db } : { params, x: bufs.dy, y: da, y2: db }, base);
  const flops = (spec.accumulateA ? n : 0) + (spec.accumulateB ? n : 0);
  return [{ kernel, bindGroup, workgroups: gridStrideGroups(ctx, n / u, wg), label: base, flops }];
}

export interface ConcatSpec {
  /** Rows R: the product of all dimensions but the last. */
  rows: number;
  /** Last-axis length C_i of each input, in order. */
  cols: readonly number[];
  /** Element offset of each input (forward) or input gradient (backward) in its buffer (default 0s). */
  offsets?: readonly number[];
  /** Element offset of y (forward) or dy (backward) in its buffer (default 0). */
  yOffset?: number;
  label?: string;
}

function concatOffsets(op: string, spec: ConcatSpec): { offsets: number[]; total: number } {
  checkCount(op, 'rows', spec.rows);
  if (spec.cols.length === 0) throw new GpuError(`${op}: needs at least one input`);
  const offsets: number[] = [];
  let total = 0;
  spec.cols.forEach((c, i) => {
    checkCount(op, `cols[${i}]`, c);
    offsets.push(total);
    total += c;
  });
  if (spec.offsets && spec.offsets.length !== spec.cols.length) throw new GpuError(`${op}: ${spec.offsets.length} offsets for ${spec.cols.length} inputs`);
  return { offsets, total };
}

/**
 * Concatenation along the last axis: xs[i] [R, C_i] → y [R, ΣC_i], input i at columns
 * ΣC_<i … One strided copy per input; encode them all (any order).
 */
export function prepareConcat(ctx: GpuContext, spec: ConcatSpec, bufs: { xs: readonly GPUBuffer[]; y: GPUBuffer }): Dispatch[] {
  const op = `concat [${spec.rows}, ${spec.cols.join('+')}]`;
  const { offsets, total } = concatOffsets(op, spec);
  if (bufs.xs.length !== spec.cols.length) throw new GpuError(`${op}: ${spec.cols.length} column counts but ${bufs.xs.length} input buffers`);
  const base = spec.label ?? 'concat';
  return bufs.xs.map((x, i) => prepareCopy(ctx,
    { rows: spec.rows, cols: spec.cols[i], ldX: spec.cols[i], offX: spec.offsets?.[i] ?? 0, ldY: total, offY: (spec.yOffset ?? 0) + offsets[i], label: `${base}/in${i}` },
    { x, y: bufs.y }));
}

export interface ConcatBackwardSpec extends ConcatSpec {
  /** dx_i += … instead of dx_i = …: one flag for all inputs or one per input. */
  accumulate?: boolean | readonly boolean[];
}

/**
 * Gradient of concat: dx_i (+)= dy[:, ΣC_<i … ΣC_≤i) (the input's column range of dy). An
 * undefined dxs[i] gets no dispatch (no gradient wanted). Encode them all (any order).
 */
export function prepareConcatBackward(
  ctx: GpuContext, spec: ConcatBackwardSpec, bufs: { dy: GPUBuffer; dxs: readonly (GPUBuffer | undefined)[] },
): Dispatch[] {
  const op = `concat backward [${spec.rows}, ${spec.cols.join('+')}]`;
  const { offsets, total } = concatOffsets(op, spec);
  if (bufs.dxs.length !== spec.cols.length) throw new GpuError(`${op}: ${spec.cols.length} column counts but ${bufs.dxs.length} gradient buffers`);
  const acc = spec.accumulate;
  if (Array.isArray(acc) && acc.length !== spec.cols.length) throw new GpuError(`${op}: ${acc.length} accumulate flags for ${spec.cols.length} inputs`);
  const base = spec.label ?? 'concat backward';
  const out: Dispatch[] = [];
  bufs.dxs.forEach((dx, i) => {
    if (!dx) return;
    const accumulate = Array.isArray(acc) ? !!acc[i] : !!acc;
    out.push(prepareCopy(ctx,
      { rows: spec.rows, cols: spec.cols[i], ldX: total, offX: (spec.yOffset ?? 0) + offsets[i], ldY: spec.cols[i], offY: spec.offsets?.[i] ?? 0, accumulate, label: `${base}/dx${i}` },
      { x: bufs.dy, y: dx }));
  });
  return out;
}
