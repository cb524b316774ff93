import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import { ceilDiv, type Dispatch } from '../gpu/dispatch.js';

export type Activation = 'none' | 'relu' | 'sigmoid' | 'tanh';
export const ACTIVATION_CODE: Record<Activation, number> = { none: 0, relu: 1, sigmoid: 2, tanh: 3 };

/** C[M,N] = op(A)·op(B) (+ bias[N]) (→ activation) (+= C). Shapes are of op(A) [M,K] and op(B) [K,N]. */
export interface MatmulSpec {
  M: number;
  N: number;
  K: number;
  /** A is stored [K, M] and used transposed. */
  transA?: boolean;
  /** B is stored [N, K] and used transposed. */
  transB?: boolean;
  activation?: Activation;
  /** Add C's old contents (gradient accumulation). */
  accumulate?: boolean;
  /** Row strides of A, B, C as stored (defaults: dense). */
  lda?: number;
  ldb?: number;
  ldc?: number;
  /** Element offsets into the buffers, for operands that are slices of larger buffers. */
  offA?: number;
  offB?: number;
  offC?: number;
  offBias?: number;
  label?: string;
}

export interface MatmulBuffers {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
  bias?: GPUBuffer;
}

const ROWS_PER_INVOCATION = 8; // TM in shaders/matmul.wgsl

/** Prepares one matmul dispatch (pipeline, uniforms, bind group); encode it as often as needed. */
export function matmul(ctx: GpuContext, spec: MatmulSpec, bufs: MatmulBuffers): Dispatch {
  const { M, N, K } = spec;
  for (const [k, v] of Object.entries({ M, N, K })) {
    if (!Number.isInteger(v) || v < 1) throw new GpuError(`matmul${spec.label ? ` ${spec.label}` : ''}: ${k} must be a positive integer, got ${v}`);
  }
  const transA = !!spec.transA;
  const transB = !!spec.transB;
  const wg = Math.min(64, ctx.limits.maxComputeInvocationsPerWorkgroup);
  const kernel = ctx.kernel('matmul.wgsl', 'main', {
    TRANS_A: transA,
    TRANS_B: transB,
    HAS_BIAS: !!bufs.bias,
    ACTIVATION: ACTIVATION_CODE[spec.activation ?? 'none'],
    ACCUMULATE: !!spec.accumulate,
    WG: wg,
  });
  const params = kernel.params({
    M, N, K,
    lda: spec.lda ?? (transA ? M : K),
    ldb: spec.ldb ?? (transB ? K : N),
    ldc: spec.ldc ?? N,
    offA: spec.offA ?? 0,
    offB: spec.offB ?? 0,
    offC: spec.offC ?? 0,
    offBias: spec.offBias ?? 0,
  });
  const label = spec.label ?? `matmul ${M}x${K}x${N}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}`;
  const bindGroup = kernel.bind({ params, A: bufs.a, B: bufs.b, bias: bufs.bias ?? ctx.dummyBuffer(), C: bufs.c }, label);
  return { kernel, bindGroup, workgroups: [ceilDiv(N, wg), ceilDiv(M, ROWS_PER_INVOCATION), 1], label, flops: 2 * M * N * K };
}
