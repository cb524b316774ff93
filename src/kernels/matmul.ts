import type { GpuContext } from '../gpu/context.js';
import { ceilDiv, type Dispatch } from '../gpu/dispatch.js';
import { checkPositive } from './checks.js';
import { GpuError } from '../gpu/context.js';
import { entryStorageBuffers, type Kernel, type KernelConstants } from '../gpu/kernel.js';
import { defaultMatmulVariant, matmulVariant, matmulVariantsOf, tileWorkgroups, type MatmulFamily, type MatmulTile, type MatmulTileQuery, type MatmulVariant } from './matmul-variants.js';
import { activeMatmulTuner } from './matmul-tuner.js';
import { OPERAND_TEXTURE_WIDTH, type TextureCopy } from '../gpu/operand-textures.js';

/** An activation fused into a kernel's epilogue. */
export type Activation = 'none' | 'relu' | 'sigmoid' | 'tanh';
export const ACTIVATION_CODE: Record<Activation, number> = { none: 0, relu: 1, sigmoid: 2, tanh: 3 };
/** The activations whose derivative a product can apply as it stores C over their output (MatmulSpec.activationGrad). */
export const ACTIVATION_GRADS_FROM_Y: readonly Activation[] = ['relu', 'sigmoid', 'tanh'];

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
  /**
   * C holds y = f(x) on entry, and the product is stored as product ⊙ f'(y) over it: a dense
   * layer's dx written over its input, the output of the layer that applied f, with that layer's
   * derivative (src/graph/fuse-activation-grads.ts). relu, sigmoid or tanh (derivatives in terms
   * of y); the subgroup kernel, unsplit, without accumulate or an epilogue.
   */
  activationGrad?: Activation;
  /**
   * With activationGrad: y is read from this buffer (laid out as C, from element `offset`) and C is
   * written beside it, not over it (y is still needed after the product).
   */
  activationGradFrom?: { buffer: GPUBuffer; offset: number };
  label?: string;
  /** Use the portable kernel even where the adapter has subgroups (for tests and comparisons). */
  portable?: boolean;
  /** Use the shared-memory kernel for GPUs (shaders/matmul_tiled.wgsl) whatever the adapter (for tests and comparisons). */
  tiled?: boolean;
  /**
   * A tile variant's id (MATMUL_VARIANTS in matmul-variants.ts) of the kernel used, instead of the
   * tuned or default tile (for tests and comparisons); an error where it is not legal.
   */
  variant?: string;
  /**
   * Another entry point of shaders/matmul_subgroup.wgsl that computes the same tile and then does its
   * own epilogue instead of storing C (e.g. lstm_bwd_step); only where `hasMatmulEpilogue`. Its bias,
   * activation and accumulate options do not apply; `bind` gives its own buffers (C included, if it
   * stores C), with the kernel at hand for its uniforms.
   */
  epilogue?: MatmulEpilogue;
  /**
   * A convolution as an implicit GEMM (src/kernels/conv2d.ts): op(A), and for dx op(B), are read
   * from the NHWC tensors bound as `a` and `b` instead of stored matrices. Subgroup kernel only.
   */
  conv?: MatmulConv;
  /**
   * Read A and B as textures where the subgroup kernel can (see src/gpu/operand-textures.ts); by
   * default on software adapters, where texel loads are much cheaper than storage loads. For
   * tests and comparisons.
   */
  textures?: boolean;
}

/**
 * The convolution whose product a matmul computes (shaders/matmul_subgroup.wgsl, CONV):
 *  - 'forward': y [pixels, outC] = patches(x) · filter; `a` is x, `b` the filter;
 *  - 'dFilter': dFilter [patch, outC] = patches(x)ᵀ · dy (transA); `a` is x, `b` dy;
 *  - 'dx': dx [input pixels, inC] = dy ⊛ᵀ filter (transB, ldb = outC); `a` is dy, `b` the filter.
 */
export interface MatmulConv {
  mode: 'forward' | 'dFilter' | 'dx';
  batch: number; inH: number; inW: number; inC: number;
  kH: number; kW: number; outH: number; outW: number; outC: number;
  strideH: number; strideW: number; padTop: number; padLeft: number;
}

const CONV_MODE = { forward: 1, dFilter: 2, dx: 3 } as const;

/** Floats of the tensors a convolution's product reads as A and as B. */
function convOperandFloats(c: MatmulConv): { a: number; b: number } {
  const x = c.batch * c.inH * c.inW * c.inC, dy = c.batch * c.outH * c.outW * c.outC, filter = c.kH * c.kW * c.inC * c.outC;
  if (c.mode === 'forward') return { a: x, b: filter };
  if (c.mode === 'dFilter') return { a: x, b: dy };
  return { a: dy, b: filter };
}

/** Whether op(A) is read four channels at a time (the channel count it walks a multiple of 4). */
function convVecA(c: MatmulConv): boolean {
  return (c.mode === 'dx' ? c.outC : c.inC) % 4 === 0;
}

/** The subgroup kernel's Params: the product's, and the convolution's geometry (zeros without one). */
function subgroupParams(spec: MatmulSpec, p: MatmulParams, offDbias: number): Record<string, number> {
  const c = spec.conv;
  return {
    ...p, offDbias, texA: Math.floor(p.offA / 4), texB: Math.floor(p.offB / 4), offY: spec.activationGradFrom?.offset ?? 0,
    inH: c?.inH ?? 0, inW: c?.inW ?? 0, inC: c?.inC ?? 0, kW: c?.kW ?? 0, outH: c?.outH ?? 0, outW: c?.outW ?? 0,
    padTop: c?.padTop ?? 0, padLeft: c?.padLeft ?? 0, outC: c?.outC ?? 0,
  };
}

/** See MatmulSpec.epilogue. */
export interface MatmulEpilogue {
  /** The entry point of shaders/matmul_subgroup.wgsl that runs instead of `main`. */
  entry: string;
  /** Override constants of that entry point beyond the tile's own. */
  constants?: KernelConstants;
  /** The epilogue's buffers by binding name, given the compiled kernel (for its uniforms). */
  bind: (kernel: Kernel) => Record<string, GPUBuffer>;
  /**
   * The epilogue takes each element of C alone, where `main` would store it (e.g. an optimizer
   * step on the weight whose gradient C is). Then any tile computes it, so the product is tuned
   * as the plain product (on scratch buffers, never running the epilogue), and A may be a texture.
   */
  elementwise?: boolean;
  /**
   * The epilogue updates, in place of C, a tensor laid out as C would be: [M, N] at offC with row
   * stride ldc, read and written as whole column quads (`quads`: N, ldc and offC multiples of 4) or
   * float by float. With `bias`, also a bias [N] from the column sums (needs MatmulSpec.biasGrad).
   * The product checks its shape against M and N.
   */
  updates?: { rows: number; cols: number; quads: boolean; bias?: boolean };
  /** FLOPs of the epilogue's own arithmetic, added to the product's. */
  flops?: number;
}

/**
 * Whether the subgroup kernel (shaders/matmul_subgroup.wgsl) runs here: it needs the adapter's
 * 'subgroups' feature and WGSL's read-only storage textures (its operand textures).
 */
export function hasSubgroupKernel(ctx: GpuContext): boolean {
  return ctx.device.features.has('subgroups') && ctx.readOnlyStorageTextures;
}

/**
 * Whether `matmul` takes the epilogue entry point `entry` (MatmulSpec.epilogue) here: where the
 * subgroup kernel runs, and the device allows as many storage buffers as the entry binds (a device
 * made with the default limits allows 8, fewer than the LSTM backward step and the optimizer
 * update bind).
 */
export function hasMatmulEpilogue(ctx: GpuContext, entry: string): boolean {
  return hasSubgroupKernel(ctx) && entryStorageBuffers('matmul_subgroup.wgsl', entry) <= ctx.limits.maxStorageBuffersPerShaderStage;
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

/** Longest K whose column sums the matmul takes on: the rows one block of columnSum's tree sums serially. */
export const BIAS_GRAD_MAX_K = 256;

/** Whether `matmul` can fuse the column sums of op(B) (see MatmulSpec.biasGrad) for this K. */
export function fusesBiasGrad(ctx: GpuContext, K: number): boolean {
  return hasSubgroupKernel(ctx) && K <= BIAS_GRAD_MAX_K;
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
  if (spec.biasGrad && !bufs.dbias && !spec.epilogue?.updates?.bias) throw new GpuError(`${name}: biasGrad needs a dbias buffer (or an epilogue that updates the bias)`);
  if (spec.biasGrad && (spec.portable || !fusesBiasGrad(ctx, K))) {
    throw new GpuError(`${name}: biasGrad is fused only by the subgroup kernel and for K ≤ ${BIAS_GRAD_MAX_K} (K = ${K}); use columnSum`);
  }
  if (spec.epilogue && (spec.portable || spec.tiled || !hasSubgroupKernel(ctx))) throw new GpuError(`${name}: an epilogue (${spec.epilogue.entry}) needs the subgroup kernel`);
  if (spec.epilogue && !hasMatmulEpilogue(ctx, spec.epilogue.entry)) {
    const needs = entryStorageBuffers('matmul_subgroup.wgsl', spec.epilogue.entry);
    throw new GpuError(`${name}: the ${spec.epilogue.entry} epilogue binds ${needs} storage buffers, and this device allows ${ctx.limits.maxStorageBuffersPerShaderStage} (ask requestDevice for requiredLimits.maxStorageBuffersPerShaderStage ≥ ${needs}, or leave the epilogue out)`);
  }
  if (spec.biasGrad && spec.tiled) throw new GpuError(`${name}: biasGrad is fused only by the subgroup kernel`);
  if (spec.conv && (spec.portable || spec.tiled || !hasSubgroupKernel(ctx) || spec.epilogue || spec.biasGrad)) {
    throw new GpuError(`${name}: a convolution's implicit GEMM needs the subgroup kernel, without an epilogue or a fused bias gradient`);
  }
  if (spec.activationGradFrom && !spec.activationGrad) throw new GpuError(`${name}: activationGradFrom says where y is for activationGrad, which is not given`);
  if (spec.activationGrad) {
    if (!ACTIVATION_GRADS_FROM_Y.includes(spec.activationGrad)) throw new GpuError(`${name}: activationGrad takes ${ACTIVATION_GRADS_FROM_Y.join(', ')} (derivatives in terms of y), not ${spec.activationGrad}`);
    if (spec.portable || spec.tiled || !hasSubgroupKernel(ctx) || spec.epilogue || spec.conv || spec.accumulate || split.splits > 1) {
      throw new GpuError(`${name}: activationGrad needs the subgroup kernel, unsplit, without accumulate, an epilogue or a convolution; apply the derivative in a pass of its own (prepareActivationBackward)`);
    }
  }
  const transA = !!spec.transA;
  const transB = !!spec.transB;
  const p: MatmulParams = {
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
  const family = matmulKernelFor(ctx, spec);
  const query = tileQuery(ctx, spec, p);
  if (spec.variant !== undefined) {
    const forced = matmulVariant(spec.variant);
    if (!forced || forced.family !== family) {
      throw new GpuError(`${name}: the ${family} kernel has no tile variant "${spec.variant}" (it has: ${matmulVariantsOf(family).map((v) => v.id).join(', ')})`);
    }
    const tile = forced.tile(query);
    if (!tile) throw new GpuError(`${name}: tile variant ${spec.variant} is not legal for this product on this adapter; leave out variant for the default`);
    return prepare(ctx, spec, p, bufs, family, tile, split).dispatch;
  }
  let candidates = tileCandidates(family, query);
  // An epilogue's tile is part of its contract with the caller (e.g. the LSTM step's gates per column quad).
  const tuner = spec.epilogue && !spec.epilogue.elementwise ? undefined : activeMatmulTuner(ctx);
  if (tuner) candidates = candidates.filter((c, i) => i === 0 || tuner.considers(c.variant.id));
  if (!tuner || candidates.length < 2) return prepare(ctx, spec, p, bufs, family, candidates[0].tile, split).dispatch;

  const tex = family === 'subgroup' ? textureRanges(ctx, spec, p, bufs) : {};
  // An elementwise epilogue, or an activation's derivative, costs every tile the same: its product
  // is timed, and keyed, as the plain one.
  const plain: MatmulSpec = { ...spec, epilogue: undefined, activationGrad: undefined };
  const key = productKey(family, plain, p, split, !!bufs.bias, tex);
  const ids = candidates.map((c) => c.variant.id);
  const tileOf = (id: string) => candidates.find((c) => c.variant.id === id)!.tile;
  const known = tuner.choice(key, ids);
  const prepared = prepare(ctx, spec, p, bufs, family, tileOf(known ?? ids[0]), split);
  if (known === undefined) {
    tuner.defer({
      key,
      candidates: ids,
      scratch: () => scratchProduct(ctx, plain, p, bufs, split, (scratch, id) => prepare(ctx, plain, p, scratch, family, tileOf(id), split).dispatch),
      // Every variant of a kernel takes the same Params: switching costs a bind group, nothing more.
      retarget: [(id) => {
        const again = prepare(ctx, spec, p, bufs, family, tileOf(id), split, prepared.params);
        Object.assign(prepared.dispatch, { kernel: again.dispatch.kernel, bindGroup: again.dispatch.bindGroup, workgroups: again.dispatch.workgroups, copies: again.dispatch.copies });
      }],
    });
  }
  return prepared.dispatch;
}

/** Strides, offsets and K's chunk of a product: the kernels' Params (defaults filled in). */
type MatmulParams = {
  M: number; N: number; K: number;
  lda: number; ldb: number; ldc: number;
  offA: number; offB: number; offC: number; offBias: number;
  kChunk: number;
};

function tileQuery(ctx: GpuContext, spec: MatmulSpec, p: Pick<MatmulParams, 'M' | 'N' | 'lda' | 'offA'>): MatmulTileQuery {
  return {
    M: p.M,
    N: p.N,
    vecATPossible: spec.conv
      ? spec.conv.mode === 'dFilter' && convVecA(spec.conv)
      : !!spec.transA && p.M % 4 === 0 && p.lda % 4 === 0 && p.offA % 4 === 0,
    // Lanes 0..G-1 of a cooperative load must exist in every subgroup.
    subgroupMinSize: (ctx.device as { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo?.subgroupMinSize ?? 4,
    maxInvocationsPerWorkgroup: Math.min(ctx.limits.maxComputeInvocationsPerWorkgroup, ctx.limits.maxComputeWorkgroupSizeX),
  };
}

/** The legal variants of the kernel for this product, the default first, one per distinct pipeline. */
function tileCandidates(family: MatmulFamily, query: MatmulTileQuery): { variant: MatmulVariant; tile: MatmulTile }[] {
  const seen = new Set<string>();
  const out: { variant: MatmulVariant; tile: MatmulTile }[] = [];
  for (const variant of matmulVariantsOf(family)) {
    const tile = variant.tile(query);
    if (!tile) continue;
    const pipeline = JSON.stringify(tile.constants);
    if (seen.has(pipeline)) continue;
    seen.add(pipeline);
    out.push({ variant, tile });
  }
  return out;
}

/** Whatever selects a pipeline or its work besides the tile: the tuning cache's key of a product (with the adapter). */
function productKey(family: MatmulFamily, spec: MatmulSpec, p: MatmulParams, split: KSplit, hasBias: boolean, textures: TextureRanges): string {
  const a4 = p.lda % 4 === 0 && p.offA % 4 === 0;
  const b4 = p.ldb % 4 === 0 && p.offB % 4 === 0;
  const c4 = p.N % 4 === 0 && p.ldc % 4 === 0 && p.offC % 4 === 0;
  return [
    family, `${p.M}x${p.N}x${p.K}`, `${spec.transA ? 'At' : 'A'}${spec.transB ? 'Bt' : 'B'}`,
    spec.activation ?? 'none', hasBias ? 'bias' : '', spec.accumulate ? 'acc' : '', spec.biasGrad ? 'dbias' : '',
    `vec${+a4}${+b4}${+c4}`, split.splits > 1 ? `split${split.splits}` : '', spec.conv ? convKey(spec.conv) : '',
    // Named as storage textures, so that tiles timed when they were sampled ones are timed again.
    textures.a || textures.b ? `storage-tex${+!!textures.a}${+!!textures.b}${textures.bPanels ? 'p' : ''}` : '',
  ].join('|');
}

function convKey(c: MatmulConv): string {
  return `conv-${c.mode}:${c.batch}x${c.inH}x${c.inW}x${c.inC}*${c.kH}x${c.kW}x${c.outC}/${c.strideH},${c.strideW}+${c.padTop},${c.padLeft}`;
}

/** Builds the product with one tile of its kernel; `params` reuses a Params buffer of the same kernel. */
function prepare(ctx: GpuContext, spec: MatmulSpec, p: MatmulParams, bufs: MatmulBuffers, family: MatmulFamily, tile: MatmulTile, split: KSplit, params?: GPUBuffer): { dispatch: Dispatch; params: GPUBuffer } {
  const { M, N, K } = p;
  const transA = !!spec.transA;
  const transB = !!spec.transB;
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
  const workgroups: [number, number, number] = [ceilDiv(N, tile.cols), ceilDiv(M, tile.rows), split.splits];

  if (family === 'tiled') {
    const kernel = ctx.kernel('matmul_tiled.wgsl', 'main', { ...common, ...tile.constants });
    params ??= kernel.params(p);
    const bindGroup = kernel.bind({ params, A: bufs.a, B: bufs.b, bias, C: bufs.c }, label);
    return { params, dispatch: { kernel, bindGroup, workgroups, label, flops } };
  }
  if (family === 'subgroup') {
    // Whole column quads of C: stored as vec4s.
    const vecC = N % 4 === 0 && p.ldc % 4 === 0 && p.offC % 4 === 0;
    const tiling = {
      TRANS_A: transA,
      TRANS_B: transB,
      BIAS_GRAD: !!spec.biasGrad,
      VEC_A: spec.conv ? spec.conv.mode !== 'dFilter' && convVecA(spec.conv) : !transA && p.lda % 4 === 0 && p.offA % 4 === 0,
      VEC_B: !transB && N % 4 === 0 && p.ldb % 4 === 0 && p.offB % 4 === 0,
      VEC_BT: transB && p.ldb % 4 === 0 && p.offB % 4 === 0,
      ...tile.constants,
      ...(spec.conv ? { CONV: CONV_MODE[spec.conv.mode], CONV_SH: spec.conv.strideH, CONV_SW: spec.conv.strideW } : {}),
    };
    // Textures only where this tile reads the operand as vec4s (see the kernel's comment).
    const ranges = textureRanges(ctx, spec, p, bufs);
    const texture = (range?: TextureRange) => range && ctx.operandTextures.get(range.buffer, range.offset, range.floats);
    const panels = ranges.bPanels ? ctx.operandTextures.panels(bufs.b, p.offB, K, N, p.ldb) : undefined;
    const tex = { a: tiling.VEC_A || tile.constants.VEC_AT ? texture(ranges.a) : undefined, b: panels ?? (tiling.VEC_B || tiling.VEC_BT ? texture(ranges.b) : undefined) };
    const texturing = { TEX_A: !!tex.a, TEX_B: !!tex.b, TEX_WIDTH: OPERAND_TEXTURE_WIDTH, B_PANELS: !!panels };
    const operands = {
      A: bufs.a, B: bufs.b, A4: bufs.a, B4: bufs.b,
      A4t: tex.a?.view ?? ctx.operandTextures.dummyView(),
      B4t: (!panels && tex.b?.view) || ctx.operandTextures.dummyView(),
      B4p: panels?.view ?? ctx.operandTextures.dummyArrayView(),
    };
    const copies = [tex.a?.copy, tex.b?.copy].filter((c): c is TextureCopy => c !== undefined);
    const biasGradFlops = spec.biasGrad ? K * N : 0;
    const dbias = (spec.biasGrad && bufs.dbias) || ctx.dummyBuffer(1);
    if (spec.epilogue) {
      const epilogue = spec.epilogue;
      const u = epilogue.updates;
      if (u && !(u.rows === M && u.cols === N && (vecC || !u.quads))) {
        throw new GpuError(`${label}: the ${epilogue.entry} epilogue updates a [${u.rows}, ${u.cols}] tensor laid out as C${u.quads ? ' in whole column quads' : ''}; this product's C is [${M}, ${N}] (ldc ${p.ldc}, offC ${p.offC})`);
      }
      if (u?.bias && (!spec.biasGrad || split.splits > 1)) {
        throw new GpuError(`${label}: the ${epilogue.entry} epilogue updates a bias from the column sums of op(B): give the product biasGrad, unsplit`);
      }
      const kernel = ctx.kernel('matmul_subgroup.wgsl', epilogue.entry, { ...tiling, ...texturing, ...epilogue.constants });
      params ??= kernel.params(subgroupParams(spec, p, spec.offDbias ?? 0), undefined, 'params');
      const sums: Record<string, GPUBuffer> = kernel.bindings.some((b) => b.name === 'dbias') ? { dbias } : {};
      const bindGroup = kernel.bind({ params, ...operands, ...sums, ...epilogue.bind(kernel) }, label);
      return { params, dispatch: { kernel, bindGroup, workgroups, label, flops: flops + biasGradFlops + (epilogue.flops ?? 0), copies } };
    }
    const from = spec.activationGrad && spec.activationGradFrom;
    const derivative: KernelConstants = spec.activationGrad ? { ACT_GRAD: ACTIVATION_CODE[spec.activationGrad], ACT_GRAD_Y: !!from } : {};
    // Y read as vec4s with C: its offset in whole quads too.
    const c4 = vecC && (!from || from.offset % 4 === 0);
    const kernel = ctx.kernel('matmul_subgroup.wgsl', c4 ? 'main_c4' : 'main', { ...common, ...tiling, ...texturing, ...derivative });
    const out: Record<string, GPUBuffer> = c4 ? { C4: bufs.c, Y4: from ? from.buffer : ctx.dummyBuffer() } : { C: bufs.c, Y: from ? from.buffer : ctx.dummyBuffer() };
    out.dbias = dbias;
    params ??= kernel.params(subgroupParams(spec, p, spec.offDbias ?? 0));
    const bindGroup = kernel.bind({ params, ...operands, bias, ...out }, label);
    return { params, dispatch: { kernel, bindGroup, workgroups, label, flops: flops + biasGradFlops, copies } };
  }

  const kernel = ctx.kernel('matmul.wgsl', 'main', { ...common, ...tile.constants });
  params ??= kernel.params(p);
  const bindGroup = kernel.bind({ params, A: bufs.a, B: bufs.b, bias, C: bufs.c }, label);
  return { params, dispatch: { kernel, bindGroup, workgroups, label, flops } };
}

/**
 * The product on zeroed scratch buffers of the same layout (strides, offsets, split-K layers), for
 * timing its variants without touching the graph's buffers; release() frees every buffer made for it.
 */
function scratchProduct(ctx: GpuContext, spec: MatmulSpec, p: MatmulParams, bufs: MatmulBuffers, split: KSplit, build: (scratch: MatmulBuffers, id: string) => Dispatch): { dispatchOf(id: string): Dispatch; release(): void } {
  const floats = (rows: number, cols: number, ld: number, off: number) => off + (rows - 1) * ld + cols;
  const conv = spec.conv && convOperandFloats(spec.conv);
  const scratch: MatmulBuffers = {
    a: ctx.storage(4 * (conv ? conv.a : spec.transA ? floats(p.K, p.M, p.lda, p.offA) : floats(p.M, p.K, p.lda, p.offA)), 'tuning A'),
    b: ctx.storage(4 * (conv ? conv.b : spec.transB ? floats(p.N, p.K, p.ldb, p.offB) : floats(p.K, p.N, p.ldb, p.offB)), 'tuning B'),
    c: ctx.storage(4 * floats(split.splits * p.M, p.N, p.ldc, p.offC), 'tuning C'),
    bias: bufs.bias && ctx.storage(4 * (p.offBias + p.N), 'tuning bias'),
    dbias: spec.biasGrad ? ctx.storage(4 * ((spec.offDbias ?? 0) + p.N), 'tuning dbias') : undefined,
  };
  const made = Object.values(scratch).filter((b): b is GPUBuffer => !!b);
  return {
    dispatchOf(id) {
      let d!: Dispatch;
      made.push(...ctx.collectBuffers(() => { d = build(scratch, id); }));
      return d;
    },
    release() {
      for (const b of made) ctx.release(b);
    },
  };
}

/**
 * Which kernel computes a product:
 *  - 'subgroup' (shaders/matmul_subgroup.wgsl) where it runs (hasSubgroupKernel), built for
 *    software adapters;
 *  - 'tiled' (shaders/matmul_tiled.wgsl), workgroup-memory tiles for GPUs: by default on a GPU
 *    for products at least 64 wide both ways (a 64 x 64 tile's worth);
 *  - 'portable' (shaders/matmul.wgsl) otherwise.
 * Epilogues, fused bias gradients and activations' derivatives exist only in the subgroup kernel.
 * The context's matmulKernel option, and the spec's portable and tiled flags, override the choice.
 * Each kernel's tile is its default variant (matmul-variants.ts) unless a MatmulTuner chose another.
 */
export function matmulKernelFor(ctx: GpuContext, spec: MatmulSpec): MatmulFamily {
  if (spec.portable) return 'portable';
  if (spec.tiled) return 'tiled';
  const subgroup = hasSubgroupKernel(ctx) ? 'subgroup' : 'portable';
  if (spec.epilogue || spec.biasGrad || spec.conv || spec.activationGrad) return subgroup;
  if (ctx.matmulKernel === 'tiled') return 'tiled';
  if (ctx.matmulKernel === 'subgroup') return subgroup;
  return !ctx.softwareAdapter && spec.M >= 64 && spec.N >= 64 ? 'tiled' : subgroup;
}

/** A buffer range that a texture can hold. */
interface TextureRange {
  buffer: GPUBuffer;
  offset: number;
  floats: number;
}

/** The operands read as textures, and whether B is read as panels. */
interface TextureRanges {
  a?: TextureRange;
  b?: TextureRange;
  bPanels?: boolean;
}

/**
 * B is read as panels (the shader's B_PANELS) where its rows lie this many bytes apart or more, so
 * that each row is on a page of its own, and there are at least PANELS_FROM_ROWS of them: too many
 * pages for the TLB as a tile walks down K. Measured on llvmpipe (BENCHMARKS.md): 1.5x and more at
 * 512 rows and up, no gain at 256 or fewer.
 */
const PANELS_FROM_ROW_BYTES = 4096;
const PANELS_FROM_ROWS = 512;

/**
 * The operands the subgroup kernel may read as textures (see MatmulSpec.textures): each whose
 * floats, from its offset to its last, fit one (operand-textures.ts). A recurrent step's epilogue
 * reads as A the previous step's output, rewritten before every dispatch, so A stays a buffer for
 * any epilogue but an elementwise one. Textures are made only for the operands a tile then reads
 * from them. B, not transposed and no convolution's, is read as panels where its rows lie
 * PANELS_FROM_ROW_BYTES or more apart, there are PANELS_FROM_ROWS or more, and the panels fit.
 */
function textureRanges(ctx: GpuContext, spec: MatmulSpec, p: MatmulParams, bufs: MatmulBuffers): TextureRanges {
  if (!(spec.textures ?? ctx.softwareAdapter)) return {};
  const { M, N, K } = p;
  const conv = spec.conv && convOperandFloats(spec.conv);
  const a = { buffer: bufs.a, offset: p.offA, floats: conv ? conv.a : spec.transA ? (K - 1) * p.lda + M : (M - 1) * p.lda + K };
  const b = { buffer: bufs.b, offset: p.offB, floats: conv ? conv.b : spec.transB ? (N - 1) * p.ldb + K : (K - 1) * p.ldb + N };
  const fits = (r: TextureRange) => ctx.operandTextures.fits(r.buffer, r.offset, r.floats);
  const bPanels = !spec.transB && !conv && p.ldb * 4 >= PANELS_FROM_ROW_BYTES && K >= PANELS_FROM_ROWS && ctx.operandTextures.fitsPanels(bufs.b, p.offB, K, N, p.ldb);
  return { a: (!spec.epilogue || spec.epilogue.elementwise) && fits(a) ? a : undefined, b: bPanels || fits(b) ? b : undefined, bPanels };
}

/** Workgroups of one unsplit matmul dispatch with its kernel's default tile: its output tiles. */
function matmulTiles(ctx: GpuContext, spec: MatmulSpec): number {
  return tileWorkgroups(defaultMatmulVariant(matmulKernelFor(ctx, spec)).tile(specTileQuery(ctx, spec))!, spec.M, spec.N);
}

/**
 * The tile variants a MatmulTuner would time for this product on this adapter: the ids of those
 * legal here, one per distinct pipeline, the kernel's default first (for tools that time each).
 */
export function matmulTileVariants(ctx: GpuContext, spec: MatmulSpec): string[] {
  return tileCandidates(matmulKernelFor(ctx, spec), specTileQuery(ctx, spec)).map((c) => c.variant.id);
}

function specTileQuery(ctx: GpuContext, spec: MatmulSpec): MatmulTileQuery {
  return tileQuery(ctx, spec, { M: spec.M, N: spec.N, lda: spec.lda ?? (spec.transA ? spec.M : spec.K), offA: spec.offA ?? 0 });
}

/** Lanes (columns) per workgroup of matmul.wgsl's entry points: main, and split K's sum_partials. */
function portableLanes(ctx: GpuContext): number {
  return Math.min(64, ctx.limits.maxComputeInvocationsPerWorkgroup);
}

/** Most bytes of partial products a split-K matmul keeps (its scratch buffer). */
export const SPLIT_K_MAX_PARTIAL_BYTES = 32 * 2 ** 20;


/**
 * When splitting K pays: `workgroups`, the count a product should reach, and `minChunk`, the
 * fewest k's a layer sums. A GPU needs thousands of small workgroups in flight to hide memory
 * latency, and each of our workgroups walks its K serially (a weight gradient of 25x32 over
 * K = 39,200 is two workgroups: BENCHMARKS.md, "Real GPU check"), so it splits down to 64 k's. A
 * software adapter runs workgroups on a few CPU threads, where a split only adds a pass: it asks
 * for just enough workgroups to keep its threads busy, and long layers.
 */
export function splitKPolicy(ctx: GpuContext): SplitKPolicy {
  return ctx.softwareAdapter
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
 * epilogue, a fused bias gradient or an activation's derivative needs the whole sum in the tile).
 */
export function splitKFactor(ctx: GpuContext, spec: MatmulSpec): number {
  if (spec.epilogue || spec.biasGrad || spec.activationGrad) return 1;
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
  if (wanted > 1 && (spec.epilogue || spec.biasGrad || spec.activationGrad)) throw new GpuError(`${name}: K cannot be split with an epilogue, a fused bias gradient or an activation's derivative`);
  // Chunks of whole quads of k (the kernels' vec4 loads along k start at a chunk's first k).
  const kChunk = 4 * ceilDiv(ceilDiv(K, wanted), 4);
  const splits = ceilDiv(K, kChunk);
  if (splits <= 1) return [matmul(ctx, spec, bufs)];
  const label = spec.label ?? `matmul ${M}x${K}x${N}`;
  const partials = ctx.storage(splits * M * N * 4, `${label}/partials`);
  const partial = matmulDispatch(ctx, {
    M, N, K, transA: spec.transA, transB: spec.transB, lda: spec.lda, ldb: spec.ldb, offA: spec.offA, offB: spec.offB,
    portable: spec.portable, tiled: spec.tiled, variant: spec.variant, conv: spec.conv, label: `${label}/partials`,
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
