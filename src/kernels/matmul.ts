import type { GpuContext } from '../gpu/context.js';
import { ceilDiv, type Dispatch } from '../gpu/dispatch.js';
import { checkPositive } from './checks.js';
import { GpuError } from '../gpu/context.js';
import type { Kernel, KernelConstants } from '../gpu/kernel.js';

/** An activation fused into a kernel's epilogue. */
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
  /**
   * Also write the column sums of op(B) over K to `bufs.dbias` (+= with `accumulate`): a dense
   * layer's bias gradient alongside dW = Xᵀ·dZ, in the same pass over dZ. Only where
   * `fusesBiasGrad` says so (a serial sum: short K).
   */
  biasGrad?: boolean;
  offDbias?: number;
  label?: string;
  /** Use the portable kernel even where the adapter has subgroups (for tests and comparisons). */
  portable?: boolean;
  /**
   * Another entry point of shaders/matmul_subgroup.wgsl that computes the same tile and then does its
   * own epilogue instead of storing C (e.g. lstm_bwd_step); only where `hasMatmulEpilogues`. Its bias,
   * activation and accumulate options do not apply; `bind` gives its own buffers (C included, if it
   * stores C), with the kernel at hand for its uniforms.
   */
  epilogue?: MatmulEpilogue;
}

/** See MatmulSpec.epilogue. */
export interface MatmulEpilogue {
  /** The entry point of shaders/matmul_subgroup.wgsl that runs instead of `main`. */
  entry: string;
  /** Override constants of that entry point beyond the tile's own. */
  constants?: KernelConstants;
  /** The epilogue's buffers by binding name, given the compiled kernel (for its uniforms). */
  bind: (kernel: Kernel) => Record<string, GPUBuffer>;
}

/** Whether `matmul` takes an epilogue (MatmulSpec.epilogue): where it uses the subgroup kernel. */
export function hasMatmulEpilogues(ctx: GpuContext): boolean {
  return ctx.device.features.has('subgroups');
}

/** The buffers a matmul reads and writes. */
export interface MatmulBuffers {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
  bias?: GPUBuffer;
  /** The column sums of op(B), with `biasGrad`. */
  dbias?: GPUBuffer;
}

const PORTABLE_ROWS = 8; // TM in shaders/matmul.wgsl
const SUBGROUP_MAX_ROWS = 32; // TMAX in shaders/matmul_subgroup.wgsl
/** Longest K whose column sums the matmul takes on: the rows one block of columnSum's tree sums serially. */
export const BIAS_GRAD_MAX_K = 256;

/** Whether `matmul` can fuse the column sums of op(B) (see MatmulSpec.biasGrad) for this K. */
export function fusesBiasGrad(ctx: GpuContext, K: number): boolean {
  return ctx.device.features.has('subgroups') && K <= BIAS_GRAD_MAX_K;
}

/** Prepares one matmul dispatch (pipeline, uniforms, bind group); encode it as often as needed. */
export function matmul(ctx: GpuContext, spec: MatmulSpec, bufs: MatmulBuffers): Dispatch {
  const { M, N, K } = spec;
  const name = `matmul${spec.label ? ` ${spec.label}` : ''}`;
  checkPositive(name, { M, N, K });
  if (spec.biasGrad && !bufs.dbias) throw new GpuError(`${name}: biasGrad needs a dbias buffer`);
  if (spec.biasGrad && (spec.portable || !fusesBiasGrad(ctx, K))) {
    throw new GpuError(`${name}: biasGrad is fused only by the subgroup kernel and for K ≤ ${BIAS_GRAD_MAX_K} (K = ${K}); use columnSum`);
  }
  const transA = !!spec.transA;
  const transB = !!spec.transB;
  const p = {
    M, N, K,
    lda: spec.lda ?? (transA ? M : K),
    ldb: spec.ldb ?? (transB ? K : N),
    ldc: spec.ldc ?? N,
    offA: spec.offA ?? 0,
    offB: spec.offB ?? 0,
    offC: spec.offC ?? 0,
    offBias: spec.offBias ?? 0,
  };
  const common = {
    TRANS_A: transA,
    TRANS_B: transB,
    HAS_BIAS: !!bufs.bias,
    ACTIVATION: ACTIVATION_CODE[spec.activation ?? 'none'],
    ACCUMULATE: !!spec.accumulate,
  };
  const label = spec.label ?? `matmul ${M}x${K}x${N}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}`;
  const bias = bufs.bias ?? ctx.dummyBuffer();
  const flops = 2 * M * N * K;

  if (spec.epilogue && (spec.portable || !hasMatmulEpilogues(ctx))) throw new GpuError(`${name}: an epilogue (${spec.epilogue.entry}) needs the subgroup kernel`);
  if (ctx.device.features.has('subgroups') && !spec.portable) {
    // Each invocation owns 4 columns; narrow outputs get a narrow workgroup.
    const wg = Math.min(16, Math.max(4, nextPow2(Math.ceil(N / 4))));
    // Rows per workgroup: a power of two (other trip counts compile to much slower code on
    // llvmpipe), 32 where M is large (each B load then feeds 32 FMAs), 16 (or 8) for small
    // batches, where 32 would waste rows (M = 100 → 7 × 16, 50 → 4 × 16).
    const tm = M <= 8 ? 8 : M < 128 ? 16 : SUBGROUP_MAX_ROWS;
    // (VEC_AT measured slower than scalar loads at TM = 16 on lavapipe, faster at 32.)
    const vecAT = tm === SUBGROUP_MAX_ROWS && transA && M % 4 === 0 && p.lda % 4 === 0 && p.offA % 4 === 0;
    // Rows per cooperative A load: lanes 0..G-1 must exist in every subgroup.
    const sgMin = (ctx.device as { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo?.subgroupMinSize ?? 4;
    const g = Math.min(8, wg, Math.max(4, sgMin));
    // Whole column quads of C: stored as vec4s.
    const vecC = N % 4 === 0 && p.ldc % 4 === 0 && p.offC % 4 === 0;
    const tiling = {
      TRANS_A: transA,
      TRANS_B: transB,
      BIAS_GRAD: !!spec.biasGrad,
      VEC_A: !transA && p.lda % 4 === 0 && p.offA % 4 === 0,
      VEC_AT: vecAT,
      VEC_B: !transB && N % 4 === 0 && p.ldb % 4 === 0 && p.offB % 4 === 0,
      VEC_BT: transB && p.ldb % 4 === 0 && p.offB % 4 === 0,
      WG: wg,
      TM: tm,
      G: g,
    };
    const workgroups: [number, number, number] = [ceilDiv(N, 4 * wg), ceilDiv(M, tm), 1];
    if (spec.epilogue) {
      const kernel = ctx.kernel('matmul_subgroup.wgsl', spec.epilogue.entry, { ...tiling, ...spec.epilogue.constants });
      const bindGroup = kernel.bind({ params: kernel.params({ ...p, offDbias: 0 }, undefined, 'params'), A: bufs.a, B: bufs.b, A4: bufs.a, B4: bufs.b, ...spec.epilogue.bind(kernel) }, label);
      return { kernel, bindGroup, workgroups, label, flops };
    }
    const kernel = ctx.kernel('matmul_subgroup.wgsl', vecC ? 'main_c4' : 'main', { ...common, ...tiling });
    const out: Record<string, GPUBuffer> = vecC ? { C4: bufs.c } : { C: bufs.c };
    out.dbias = spec.biasGrad ? bufs.dbias! : ctx.dummyBuffer(1);
    const bindGroup = kernel.bind({ params: kernel.params({ ...p, offDbias: spec.offDbias ?? 0 }), A: bufs.a, B: bufs.b, A4: bufs.a, B4: bufs.b, bias, ...out }, label);
    return { kernel, bindGroup, workgroups, label, flops: flops + (spec.biasGrad ? K * N : 0) };
  }

  const wg = Math.min(64, ctx.limits.maxComputeInvocationsPerWorkgroup);
  const kernel = ctx.kernel('matmul.wgsl', 'main', { ...common, WG: wg });
  const bindGroup = kernel.bind({ params: kernel.params(p), A: bufs.a, B: bufs.b, bias, C: bufs.c }, label);
  return { kernel, bindGroup, workgroups: [ceilDiv(N, wg), ceilDiv(M, PORTABLE_ROWS), 1], label, flops };
}

function nextPow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}
