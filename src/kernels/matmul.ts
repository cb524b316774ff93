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
  /** Use the shared-memory kernel for GPUs (shaders/matmul_tiled.wgsl) whatever the adapter (for tests and comparisons). */
  tiled?: boolean;
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
  return matmulDispatch(ctx, spec, bufs, { kChunk: spec.K, splits: 1 });
}

/** How a split-K matmul divides K: `splits` workgroup layers of `kChunk` k's each (a multiple of 4). */
interface KSplit {
  kChunk: number;
  splits: number;
}

function matmulDispatch(ctx: GpuContext, spec: MatmulSpec, bufs: MatmulBuffers, split: KSplit): Dispatch {
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
    kChunk: split.kChunk,
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

  if (spec.epilogue && (spec.portable || spec.tiled || !hasMatmulEpilogues(ctx))) throw new GpuError(`${name}: an epilogue (${spec.epilogue.entry}) needs the subgroup kernel`);
  if (spec.biasGrad && spec.tiled) throw new GpuError(`${name}: biasGrad is fused only by the subgroup kernel`);
  const kernelKind = matmulKernelFor(ctx, spec);
  if (kernelKind === 'tiled') {
    const { tm, tn } = tiledTile(M, N);
    const kernel = ctx.kernel('matmul_tiled.wgsl', 'main', { ...common, TM: tm, TN: tn });
    const bindGroup = kernel.bind({ params: kernel.params(p), A: bufs.a, B: bufs.b, bias, C: bufs.c }, label);
    return { kernel, bindGroup, workgroups: [ceilDiv(N, 16 * tn), ceilDiv(M, 16 * tm), split.splits], label, flops };
  }
  if (kernelKind === 'subgroup') {
    const { wg, tm } = subgroupTile(M, N);
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
    const workgroups: [number, number, number] = [ceilDiv(N, 4 * wg), ceilDiv(M, tm), split.splits];
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

  const wg = portableLanes(ctx);
  const kernel = ctx.kernel('matmul.wgsl', 'main', { ...common, WG: wg });
  const bindGroup = kernel.bind({ params: kernel.params(p), A: bufs.a, B: bufs.b, bias, C: bufs.c }, label);
  return { kernel, bindGroup, workgroups: [ceilDiv(N, wg), ceilDiv(M, PORTABLE_ROWS), split.splits], label, flops };
}

/**
 * Which kernel computes a product:
 *  - 'subgroup' (shaders/matmul_subgroup.wgsl) where the adapter has subgroups, built for
 *    software adapters;
 *  - 'tiled' (shaders/matmul_tiled.wgsl), workgroup-memory tiles for GPUs: by default on a GPU
 *    for products at least 64 wide both ways (a 64 x 64 tile's worth);
 *  - 'portable' (shaders/matmul.wgsl) otherwise.
 * Epilogues and fused bias gradients exist only in the subgroup kernel. The context's
 * matmulKernel option, and the spec's portable and tiled flags, override the choice.
 */
export function matmulKernelFor(ctx: GpuContext, spec: MatmulSpec): 'subgroup' | 'tiled' | 'portable' {
  if (spec.portable) return 'portable';
  if (spec.tiled) return 'tiled';
  const subgroup = ctx.device.features.has('subgroups') ? 'subgroup' : 'portable';
  if (spec.epilogue || spec.biasGrad) return subgroup;
  if (ctx.matmulKernel === 'tiled') return 'tiled';
  if (ctx.matmulKernel === 'subgroup') return subgroup;
  return !isSoftwareAdapter(ctx) && spec.M >= 64 && spec.N >= 64 ? 'tiled' : subgroup;
}

/** The tiled kernel's rows and columns per invocation: 8 x 8 (128 x 128 tiles) for large products, else 4 x 4. */
function tiledTile(M: number, N: number): { tm: number; tn: number } {
  const big = M >= 1024 && N >= 1024;
  return { tm: big ? 8 : 4, tn: big ? 8 : 4 };
}

/** The subgroup kernel's tile: WG invocations of 4 columns each, TM rows. */
function subgroupTile(M: number, N: number): { wg: number; tm: number } {
  // Each invocation owns 4 columns; narrow outputs get a narrow workgroup.
  const wg = Math.min(16, Math.max(4, nextPow2(Math.ceil(N / 4))));
  // Rows per workgroup: a power of two (other trip counts compile to much slower code on
  // llvmpipe), 32 where M is large (each B load then feeds 32 FMAs), 16 (or 8) for small
  // batches, where 32 would waste rows (M = 100 → 7 × 16, 50 → 4 × 16).
  const tm = M <= 8 ? 8 : M < 128 ? 16 : SUBGROUP_MAX_ROWS;
  return { wg, tm };
}

/** Workgroups of one unsplit matmul dispatch: its output tiles. */
function matmulTiles(ctx: GpuContext, spec: MatmulSpec): number {
  const kind = matmulKernelFor(ctx, spec);
  if (kind === 'tiled') {
    const { tm, tn } = tiledTile(spec.M, spec.N);
    return ceilDiv(spec.N, 16 * tn) * ceilDiv(spec.M, 16 * tm);
  }
  if (kind === 'subgroup') {
    const { wg, tm } = subgroupTile(spec.M, spec.N);
    return ceilDiv(spec.N, 4 * wg) * ceilDiv(spec.M, tm);
  }
  return ceilDiv(spec.N, portableLanes(ctx)) * ceilDiv(spec.M, PORTABLE_ROWS);
}

/** Lanes (columns) per workgroup of matmul.wgsl's entry points: main, and split K's sum_partials. */
function portableLanes(ctx: GpuContext): number {
  return Math.min(64, ctx.limits.maxComputeInvocationsPerWorkgroup);
}

/** Most bytes of partial products a split-K matmul keeps (its scratch buffer). */
export const SPLIT_K_MAX_PARTIAL_BYTES = 32 * 2 ** 20;

const isSoftwareAdapter = (ctx: GpuContext) => /llvmpipe|lavapipe|swiftshader|software/i.test(ctx.adapterDescription);

/**
 * When splitting K pays: `workgroups`, the count a product should reach, and `minChunk`, the
 * fewest k's a layer sums. A GPU needs thousands of small workgroups in flight to hide memory
 * latency, and each of our workgroups walks its K serially (a weight gradient of 25x32 over
 * K = 39,200 is two workgroups: BENCHMARKS.md, "Real GPU check"), so it splits down to 64 k's. A
 * software adapter runs workgroups on a few CPU threads, where a split only adds a pass: it asks
 * for just enough workgroups to keep its threads busy, and long layers.
 */
export function splitKPolicy(ctx: GpuContext): SplitKPolicy {
  return isSoftwareAdapter(ctx)
    ? { workgroups: 16, minChunk: 256, overEpilogue: false }
    : { workgroups: 1024, minChunk: 64, overEpilogue: true };
}

/** See splitKPolicy. */
export interface SplitKPolicy {
  /** Workgroups a product should reach before splitting K stops paying. */
  workgroups: number;
  /** Fewest k's a layer of the split sums. */
  minChunk: number;
  /**
   * Whether a product that wants splitting should be split even where that costs it a fused
   * epilogue (a separate pass for what the epilogue did): on a GPU the serial walk over K costs
   * more than the extra pass (the LSTM's backward step: dz·W_hᵀ, K = 4H, in 14 workgroups); on a
   * software adapter the epilogue's saved pass over memory wins.
   */
  overEpilogue: boolean;
}

/**
 * How many layers split K for this product: enough to bring its workgroups to splitKPolicy's count,
 * each layer summing at least its minChunk k's, the partials within SPLIT_K_MAX_PARTIAL_BYTES;
 * 1 (no split) where the product already has the workgroups, or where it cannot be split (an
 * epilogue, or a fused bias gradient, needs the whole sum in the tile).
 */
export function splitKFactor(ctx: GpuContext, spec: MatmulSpec): number {
  if (spec.epilogue || spec.biasGrad) return 1;
  const policy = splitKPolicy(ctx);
  const wanted = Math.ceil(policy.workgroups / matmulTiles(ctx, spec));
  const byChunk = Math.floor(spec.K / policy.minChunk);
  const byMemory = Math.floor(SPLIT_K_MAX_PARTIAL_BYTES / (spec.M * spec.N * 4));
  return Math.max(1, Math.min(wanted, byChunk, byMemory));
}

/**
 * C = op(A)·op(B) (+ bias) (→ activation) (+= C), as `matmul`, with K split across workgroup
 * layers where the product has too few output tiles to fill the adapter (a weight gradient: a
 * small output summed over a long batch): each layer writes its partial product to a scratch
 * buffer, and a second dispatch sums the layers in order and applies the bias, activation and
 * accumulation. `splits` forces the number of layers (tests); by default splitKFactor decides,
 * and where it says 1 this is `matmul`'s one dispatch. Encode the dispatches in order.
 */
export function matmulSplitK(ctx: GpuContext, spec: MatmulSpec & { splits?: number }, bufs: MatmulBuffers): Dispatch[] {
  const { M, N, K } = spec;
  const name = `matmul${spec.label ? ` ${spec.label}` : ''}`;
  checkPositive(name, { M, N, K });
  const wanted = spec.splits ?? splitKFactor(ctx, spec);
  if (!Number.isInteger(wanted) || wanted < 1) throw new GpuError(`${name}: splits must be a positive integer, got ${wanted}`);
  if (wanted > 1 && (spec.epilogue || spec.biasGrad)) throw new GpuError(`${name}: K cannot be split with an epilogue or a fused bias gradient`);
  // Chunks of whole quads of k (the kernels' vec4 loads along k start at a chunk's first k).
  const kChunk = 4 * ceilDiv(ceilDiv(K, wanted), 4);
  const splits = ceilDiv(K, kChunk);
  if (splits <= 1) return [matmul(ctx, spec, bufs)];
  const label = spec.label ?? `matmul ${M}x${K}x${N}`;
  const partials = ctx.storage(splits * M * N * 4, `${label}/partials`);
  const partial = matmulDispatch(ctx, {
    M, N, K, transA: spec.transA, transB: spec.transB, lda: spec.lda, ldb: spec.ldb, offA: spec.offA, offB: spec.offB,
    portable: spec.portable, tiled: spec.tiled, label: `${label}/partials`,
  }, { a: bufs.a, b: bufs.b, c: partials }, { kChunk, splits });
  const wg = portableLanes(ctx);
  const kernel = ctx.kernel('matmul.wgsl', 'sum_partials', {
    HAS_BIAS: !!bufs.bias, ACTIVATION: ACTIVATION_CODE[spec.activation ?? 'none'], ACCUMULATE: !!spec.accumulate, WG: wg,
  });
  const params = kernel.params({
    M, N, K, lda: 0, ldb: 0, ldc: spec.ldc ?? N, offA: 0, offB: 0, offC: spec.offC ?? 0, offBias: spec.offBias ?? 0, kChunk,
  });
  const sum: Dispatch = {
    kernel,
    bindGroup: kernel.bind({ params, A: partials, bias: bufs.bias ?? ctx.dummyBuffer(), C: bufs.c }, `${label}/sum`),
    workgroups: [ceilDiv(N, wg), Math.min(M, ctx.limits.maxComputeWorkgroupsPerDimension), 1],
    label: `${label}/sum`,
    flops: splits * M * N,
  };
  return [partial, sum];
}

function nextPow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}
