// C = op(A) · op(B) (+ bias) (→ activation) (+= C) for GPUs: the classic shared-memory tiling.
// Same semantics and Params as matmul.wgsl (split K included); src/kernels/matmul.ts uses it on
// adapters that are not software rasterizers (matmulKernelFor), where matmul_subgroup.wgsl's design
// (no shared memory, a few lanes per workgroup, each walking K alone: right for llvmpipe) leaves
// most of a GPU idle (BENCHMARKS.md, "Real GPU check").
//
// A workgroup of 16 x 16 invocations computes a (16·TM) x (16·TN) tile of C. Per step of BK = 8
// along k, the workgroup stages op(A)'s (16·TM) x 8 and op(B)'s 8 x (16·TN) blocks in workgroup
// memory (zero outside the matrices), then each invocation accumulates its TM x TN outputs, rows
// and columns strided by 16 so that neighbouring invocations read neighbouring words.

override TRANS_A: bool = false;    // A stored [K, M] when true, else [M, K]
override TRANS_B: bool = false;    // B stored [N, K] when true, else [K, N]
override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u;     // an activation code of prelude.wgsl: 0 none, 1 relu, 2 sigmoid, 3 tanh
override ACCUMULATE: bool = false;
override TM: u32 = 4u;             // rows of C per invocation: 4 or 8
override TN: u32 = 4u;             // columns of C per invocation: 4 or 8

const T: u32 = 16u;                // invocations per side of the workgroup
const BK: u32 = 8u;                // k's staged per step
const TMAX: u32 = 8u;
const BMAX: u32 = 128u;            // 16 · TMAX

struct Params {
  M: u32, N: u32, K: u32,
  lda: u32, ldb: u32, ldc: u32,
  offA: u32, offB: u32, offC: u32, offBias: u32,
  // Split K: workgroup z sums k in [z·kChunk, (z+1)·kChunk) and stores its partial C at
  // offC + z·M·ldc; K when not split.
  kChunk: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

var<workgroup> a_tile: array<f32, BK * BMAX>; // [k][row]
var<workgroup> b_tile: array<f32, BK * BMAX>; // [k][column]

// op(A)[i][k] and op(B)[k][j], zero outside the matrix (k_end: this workgroup's end of K).
fn a_at(i: u32, k: u32, k_end: u32) -> f32 {
  if (i >= params.M || k >= k_end) { return 0.0; }
  if (TRANS_A) { return A[params.offA + k * params.lda + i]; }
  return A[params.offA + i * params.lda + k];
}

fn b_at(k: u32, j: u32, k_end: u32) -> f32 {
  if (j >= params.N || k >= k_end) { return 0.0; }
  if (TRANS_B) { return B[params.offB + j * params.ldb + k]; }
  return B[params.offB + k * params.ldb + j];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) flat: u32) {
  let BM = T * TM;
  let BN = T * TN;
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  let k_begin = wid.z * params.kChunk;
  let k_end = min(params.K, k_begin + params.kChunk);

  var acc: array<f32, 64>; // TMAX · TMAX, [r·TN + c]
  for (var k0 = k_begin; k0 < k_end; k0 += BK) {
    // Stage the blocks: BM·BK and BK·BN floats, 256 invocations loading in turn. Along the
    // stored matrix's rows for coalescing: A's tile index runs along k when A is [M, K], along
    // rows when it is [K, M] (likewise B).
    for (var e = flat; e < BM * BK; e += T * T) {
      var i: u32; var k: u32;
      if (TRANS_A) { k = e / BM; i = e % BM; } else { i = e / BK; k = e % BK; }
      a_tile[k * BM + i] = a_at(row0 + i, k0 + k, k_end);
    }
    for (var e = flat; e < BN * BK; e += T * T) {
      var j: u32; var k: u32;
      if (TRANS_B) { j = e / BK; k = e % BK; } else { k = e / BN; j = e % BN; }
      b_tile[k * BN + j] = b_at(k0 + k, col0 + j, k_end);
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      var a: array<f32, TMAX>;
      var b: array<f32, TMAX>;
      for (var r = 0u; r < TM; r++) { a[r] = a_tile[k * BM + lid.y + r * T]; }
      for (var c = 0u; c < TN; c++) { b[c] = b_tile[k * BN + lid.x + c * T]; }
      for (var r = 0u; r < TM; r++) {
        for (var c = 0u; c < TN; c++) { acc[r * TN + c] = fma(a[r], b[c], acc[r * TN + c]); }
      }
    }
    workgroupBarrier();
  }

  for (var r = 0u; r < TM; r++) {
    let i = row0 + lid.y + r * T;
    if (i >= params.M) { break; }
    for (var c = 0u; c < TN; c++) {
      let j = col0 + lid.x + c * T;
      if (j >= params.N) { break; }
      var add = 0.0;
      if (HAS_BIAS) { add = bias[params.offBias + j]; }
      var v = activate(ACTIVATION, acc[r * TN + c] + add);
      let idx = params.offC + (wid.z * params.M + i) * params.ldc + j;
      if (ACCUMULATE) { v += C[idx]; }
      C[idx] = v;
    }
  }
}
