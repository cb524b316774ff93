// The tile variants of the matrix products: the ONE list the tuner times (src/kernels/matmul-tuner.ts)
// and the tests run against float64. A new variant (another tile of a kernel) is one entry of
// MATMUL_VARIANTS.
import type { KernelConstants } from '../gpu/kernel.js';
import { ceilDiv } from '../gpu/dispatch.js';

/**
 * The kernels (see matmulKernelFor in matmul.ts). Variants of one kernel share its bindings and
 * Params, and each sums every output over k in the same order: the tuner swaps them freely, and the
 * numbers never change. It never swaps kernels, whose orders differ.
 */
export type MatmulFamily = 'subgroup' | 'tiled' | 'portable';

/** What a variant needs to know to pick (or refuse) its tile for one product. */
export interface MatmulTileQuery {
  M: number;
  N: number;
  /** A is used transposed with M, lda and offA multiples of 4 (vec4 loads along m are possible). */
  vecATPossible: boolean;
  /** The adapter's smallest subgroup (lanes 0..G-1 of a cooperative load must exist in every subgroup). */
  subgroupMinSize: number;
  maxInvocationsPerWorkgroup: number;
}

/** A variant's tile for one product: its override constants, and the block of C each workgroup computes. */
export interface MatmulTile {
  constants: KernelConstants;
  /** Rows of C per workgroup. */
  rows: number;
  /** Columns of C per workgroup. */
  cols: number;
}

/** One tile of one kernel: an entry of MATMUL_VARIANTS. */
export interface MatmulVariant {
  /** Stable name: the tuning cache stores it. */
  id: string;
  family: MatmulFamily;
  /** The tile for this product, or undefined where the variant is not legal for it. */
  tile(q: MatmulTileQuery): MatmulTile | undefined;
}

const SUBGROUP_MAX_ROWS = 32; // TMAX in shaders/matmul_subgroup.wgsl
const PORTABLE_ROWS = 8; // TM in shaders/matmul.wgsl
const TILED_LANES = 16; // T in shaders/matmul_tiled.wgsl: 16 x 16 invocations
const TILED_MAX = 8; // TMAX in shaders/matmul_tiled.wgsl

/** Workgroups of a tile over an M x N product. */
export function tileWorkgroups(tile: MatmulTile, M: number, N: number): number {
  return ceilDiv(N, tile.cols) * ceilDiv(M, tile.rows);
}

function nextPow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

/**
 * A subgroup tile of WG invocations x 4 columns and TM rows, with G rows per cooperative A load
 * (default: 8 where every subgroup has 8 lanes, else 4, never more than WG).
 */
function subgroupTile(q: MatmulTileQuery, WG: number, TM: number, G?: number): MatmulTile | undefined {
  const g = G ?? Math.min(8, WG, Math.max(4, q.subgroupMinSize));
  const legal = WG <= q.maxInvocationsPerWorkgroup && g <= WG && g <= Math.max(4, q.subgroupMinSize) && TM % g === 0 && TM <= SUBGROUP_MAX_ROWS;
  if (!legal) return undefined;
  // (VEC_AT measured slower than scalar loads at TM = 16 on lavapipe, faster at 32.)
  return { constants: { WG, TM, G: g, VEC_AT: TM === SUBGROUP_MAX_ROWS && q.vecATPossible }, rows: TM, cols: 4 * WG };
}

function tiledTile(TM: number, TN: number): MatmulTile {
  return { constants: { TM, TN }, rows: TILED_LANES * TM, cols: TILED_LANES * TN };
}

/** The choice made without tuning: the first variant of each kernel. */
const subgroupDefault: MatmulVariant = {
  id: 'subgroup-default',
  family: 'subgroup',
  tile(q) {
    // Each invocation owns 4 columns; narrow outputs get a narrow workgroup.
    const WG = Math.min(16, Math.max(4, nextPow2(Math.ceil(q.N / 4))));
    // Rows per workgroup: a power of two (other trip counts compile to much slower code on
    // llvmpipe), 32 where M is large (each B load then feeds 32 FMAs), 16 (or 8) for small
    // batches, where 32 would waste rows (M = 100 → 7 × 16, 50 → 4 × 16).
    const TM = q.M <= 8 ? 8 : q.M < 128 ? 16 : SUBGROUP_MAX_ROWS;
    return subgroupTile(q, WG, TM);
  },
};

const subgroupFixed = (WG: number, TM: number): MatmulVariant => ({
  id: `subgroup-wg${WG}-tm${TM}`,
  family: 'subgroup',
  tile: (q) => subgroupTile(q, WG, TM),
});

const tiledDefault: MatmulVariant = {
  id: 'tiled-default',
  family: 'tiled',
  // 4 x 4 outputs per invocation (64 x 64 tiles): on an H200 as fast as 8 x 8 or faster from
  // 1024³ to 8192³ (BENCHMARKS.md, "Real GPU check"); the tuner tries the others.
  tile: () => tiledTile(4, 4),
};

const tiledFixed = (TM: number, TN: number): MatmulVariant => ({
  id: `tiled-${TM}x${TN}`,
  family: 'tiled',
  tile: () => (TM <= TILED_MAX && TN <= TILED_MAX ? tiledTile(TM, TN) : undefined),
});

const portableTile = (WG: number): MatmulTile => ({ constants: { WG }, rows: PORTABLE_ROWS, cols: WG });

const portableDefault: MatmulVariant = {
  id: 'portable-default',
  family: 'portable',
  tile: (q) => portableTile(Math.min(64, q.maxInvocationsPerWorkgroup)),
};

const portableFixed = (WG: number): MatmulVariant => ({
  id: `portable-wg${WG}`,
  family: 'portable',
  tile: (q) => (WG <= q.maxInvocationsPerWorkgroup ? portableTile(WG) : undefined),
});

/**
 * Every variant; the first of each kernel is its default (the choice without tuning). Each new
 * pipeline costs a compile when first timed (seconds on lavapipe), so the list stays short.
 */
export const MATMUL_VARIANTS: readonly MatmulVariant[] = [
  subgroupDefault,
  subgroupFixed(8, 32),
  subgroupFixed(16, 16),
  subgroupFixed(16, 32),
  subgroupFixed(32, 16),
  tiledDefault,
  tiledFixed(4, 4),
  tiledFixed(4, 8),
  tiledFixed(8, 4),
  tiledFixed(8, 8),
  portableDefault,
  portableFixed(32),
];

/** The variant named `id`, or undefined. */
export function matmulVariant(id: string): MatmulVariant | undefined {
  return MATMUL_VARIANTS.find((v) => v.id === id);
}

/** The default variant of a kernel (its first entry). */
export function defaultMatmulVariant(family: MatmulFamily): MatmulVariant {
  return MATMUL_VARIANTS.find((v) => v.family === family)!;
}

/** The variants of a kernel in list order. */
export function matmulVariantsOf(family: MatmulFamily): MatmulVariant[] {
  return MATMUL_VARIANTS.filter((v) => v.family === family);
}
