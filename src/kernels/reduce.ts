import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import { ceilDiv, type Dispatch } from '../gpu/dispatch.js';
import { checkPositive } from './checks.js';

/** Rows summed serially by one invocation in one pass (shaders/reduce.wgsl blockRows). */
const BLOCK_ROWS = 256;


/** Lanes per workgroup for `cols` columns: enough to cover them, at most 64. */
function lanesFor(ctx: GpuContext, cols: number): number {
  let wg = 8;
  while (wg < cols && wg < 64) wg *= 2;
  return Math.min(wg, ctx.limits.maxComputeInvocationsPerWorkgroup);
}

/**
 * out[j] (+)= Σ_i x[i*cols + j] for x stored [rows, cols] (bias gradients: the column sums of dY).
 *
 * A tree of blocked passes: each pass sums blocks of at most 256 rows into partial sums, so
 * 55,000 rows take two passes (55,000 → 215 → 1) and no serial sum is longer than 256 values.
 * The partial-sum scratch buffers are made here, at prepare time (≤ ceil(rows/256)·cols floats),
 * and belong to the returned dispatches; the last pass writes `out` (adding to it when
 * `accumulate`). Encode the dispatches in order, in one pass or consecutive ones.
 */
export function columnSum(
  ctx: GpuContext,
  spec: { rows: number; cols: number; accumulate?: boolean; label?: string },
  bufs: { x: GPUBuffer; out: GPUBuffer },
): Dispatch[] {
  const { rows, cols } = spec;
  const name = `columnSum${spec.label ? ` ${spec.label}` : ''}`;
  checkPositive(name, { rows, cols });
  if (bufs.x.size < rows * cols * 4) throw new GpuError(`${name}: x holds ${bufs.x.size} bytes, [${rows}, ${cols}] needs ${rows * cols * 4}`);
  if (bufs.out.size < cols * 4) throw new GpuError(`${name}: out holds ${bufs.out.size} bytes, ${cols} columns need ${cols * 4}`);
  const maxGroups = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (ceilDiv(rows, BLOCK_ROWS) > maxGroups) throw new GpuError(`${name}: ${rows} rows exceed ${BLOCK_ROWS}·${maxGroups}, the most one pass can take`);
  const wg = lanesFor(ctx, cols);
  if (ceilDiv(cols, wg) > maxGroups) throw new GpuError(`${name}: ${cols} columns exceed ${wg}·${maxGroups}, the most one pass can take`);
  const label = spec.label ?? `columnSum ${rows}x${cols}`;
  const dispatches: Dispatch[] = [];
  let src = bufs.x;
  let n = rows;
  let level = 0;
  for (;;) {
    const blocks = ceilDiv(n, BLOCK_ROWS);
    const last = blocks === 1;
    const dst = last ? bufs.out : ctx.storage(blocks * cols * 4, `${label} partial sums ${level}`);
    const kernel = ctx.kernel('reduce.wgsl', 'main', { WG: wg, ACCUMULATE: last && !!spec.accumulate });
    const params = kernel.params({ rows: n, cols, blockRows: BLOCK_ROWS });
    const passLabel = last && level === 0 ? label : `${label} pass ${level + 1}`;
    dispatches.push({
      kernel,
      bindGroup: kernel.bind({ params, x: src, out: dst }, passLabel),
      workgroups: [ceilDiv(cols, wg), blocks, 1],
      label: passLabel,
      flops: n * cols,
    });
    if (last) return dispatches;
    src = dst;
    n = blocks;
    level++;
  }
}
