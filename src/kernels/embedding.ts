// Embedding lookup and its deterministic gradient (shaders/embedding.wgsl), prepared at compile time.
import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { checkCount, checkSize, gridStrideGroups } from './activation.js';

export interface EmbeddingSpec {
  /** Positions looked up (batch × sequence length). */
  n: number;
  /** Embedding width D. */
  dim: number;
  /** Rows of the table (Keras input_dim): every id must be below it (checked with the data). */
  vocab: number;
  label?: string;
}

const WG = 64;

function check(op: string, s: EmbeddingSpec, bufs: Record<string, GPUBuffer>, sizes: Record<string, number>): void {
  checkCount(op, 'n', s.n);
  checkCount(op, 'dim', s.dim);
  checkCount(op, 'vocab', s.vocab);
  for (const [k, n] of Object.entries(sizes)) checkSize(op, k, bufs[k], n);
}

/** y [n, dim] = table[ids[i]] for ids [n] (u32) and table [vocab, dim]. */
export function embedding(ctx: GpuContext, spec: EmbeddingSpec, bufs: { ids: GPUBuffer; table: GPUBuffer; y: GPUBuffer }): Dispatch {
  const { n, dim, vocab } = spec;
  const op = `embedding [${n}] of [${vocab},${dim}]`;
  check(op, spec, bufs, { ids: n, table: vocab * dim, y: n * dim });
  const k = ctx.kernel('embedding.wgsl', 'gather', { WG });
  const label = spec.label ?? op;
  return {
    kernel: k, workgroups: gridStrideGroups(ctx, n * dim, WG), label, flops: 0,
    bindGroup: k.bind({ params: k.params({ n, dim, vocab }), ids: bufs.ids, table: bufs.table, y: bufs.y }, label),
  };
}

/**
 * dtable (+)= the sum of dy's rows per id, each id's rows added in the order of the positions (no
 * float atomics: the same sums bit for bit on every run). A pass links each position to the next one
 * with its id; one invocation per (first position of an id, column) then walks its chain. Without
 * `accumulate`, dtable is zeroed first (ids absent from the batch get 0). The link scratch is made here.
 */
export function embeddingBackward(
  ctx: GpuContext, spec: EmbeddingSpec & { accumulate?: boolean }, bufs: { ids: GPUBuffer; dy: GPUBuffer; dtable: GPUBuffer },
): Dispatch[] {
  const { n, dim, vocab } = spec;
  const op = `embedding backward [${n}] of [${vocab},${dim}]`;
  check(op, spec, bufs, { ids: n, dy: n * dim, dtable: vocab * dim });
  if (bufs.dy === bufs.dtable) throw new GpuError(`${op}: dy and dtable must be different buffers`);
  const label = spec.label ?? op;
  const next = ctx.storage(n * 4, `${label} next`), head = ctx.storage(n * 4, `${label} head`);
  const out: Dispatch[] = [];
  const link = ctx.kernel('embedding.wgsl', 'link', { WG });
  out.push({
    kernel: link, workgroups: gridStrideGroups(ctx, n, WG), label: `${label} link`, flops: 0,
    bindGroup: link.bind({ params: link.params({ n, dim, vocab }), ids: bufs.ids, next, head }, `${label} link`),
  });
  if (!spec.accumulate) {
    const zero = ctx.kernel('embedding.wgsl', 'zero', { WG });
    out.push({
      kernel: zero, workgroups: gridStrideGroups(ctx, vocab * dim, WG), label: `${label} zero`, flops: 0,
      bindGroup: zero.bind({ params: zero.params({ n, dim, vocab }), dtable: bufs.dtable }, `${label} zero`),
    });
  }
  const sum = ctx.kernel('embedding.wgsl', 'chain_sum', { WG, ACCUMULATE: !!spec.accumulate });
  out.push({
    kernel: sum, workgroups: gridStrideGroups(ctx, n * dim, WG), label: `${label} sums`, flops: n * dim,
    bindGroup: sum.bind({ params: sum.params({ n, dim, vocab }), ids: bufs.ids, dy: bufs.dy, next, head, dtable: bufs.dtable }, `${label} sums`),
  });
  return out;
}
