// C = op(A) · op(B) (+ bias) (→ activation) (+= C), op = identity or transpose.
//
// Register-tiled for both real GPUs and CPU "GPUs" (llvmpipe/lavapipe, SwiftShader), which run
// invocations as SIMD lanes: a load whose address differs per lane becomes a gather there, while
// a load whose address is the same for every lane is one scalar load and a broadcast.
// So each invocation owns ONE column j of C (lanes run along columns: the B load is the only
// per-lane load, and it is contiguous for a GPU) and TM rows of C that are the same for all lanes
// of the workgroup (the TM loads of A per k are uniform). Per k: 1 per-lane load, TM uniform
// loads, TM FMAs. No shared memory and no barriers: llvmpipe implements barriers by switching
// coroutines, which costs more than the loads they would save.
// Out-of-range rows/columns are clamped for loading (keeping addresses uniform and the loop free
// of divergent branches) and masked at the store.

override TRANS_A: bool = false;   // A is stored [K, M] (row-major) when true, else [M, K]
override TRANS_B: bool = false;   // B is stored [N, K] when true, else [K, N]
override HAS_BIAS: bool = false;  // add bias[j] before the activation
override ACTIVATION: u32 = 0u;    // 0 none, 1 relu, 2 sigmoid, 3 tanh
override ACCUMULATE: bool = false; // C += result instead of C = result
override WG: u32 = 64u;           // lanes (columns) per workgroup

const TM: u32 = 8u;               // rows of C per invocation (uniform across the workgroup)

struct Params {
  M: u32, N: u32, K: u32,
  lda: u32, ldb: u32, ldc: u32,   // row strides in elements of A, B, C as stored
  offA: u32, offB: u32, offC: u32, offBias: u32, // element offsets into each buffer
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

fn a_at(i: u32, k: u32) -> f32 {
  if (TRANS_A) { return A[params.offA + k * params.lda + i]; }
  return A[params.offA + i * params.lda + k];
}

fn b_at(k: u32, j: u32) -> f32 {
  if (TRANS_B) { return B[params.offB + j * params.ldb + k]; }
  return B[params.offB + k * params.ldb + j];
}

fn activate(x: f32) -> f32 {
  switch ACTIVATION {
    case 1u: { return max(x, 0.0); }
    case 2u: { return 1.0 / (1.0 + exp(-x)); }
    case 3u: { return tanh(x); }
    default: { return x; }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  let j = wid.x * WG + lid.x;
  let jj = min(j, N - 1u);
  let row0 = wid.y * TM;
  var rows: array<u32, TM>;
  for (var r = 0u; r < TM; r++) { rows[r] = min(row0 + r, M - 1u); }

  var acc: array<f32, TM>;
  for (var k = 0u; k < K; k++) {
    let b = b_at(k, jj);
    for (var r = 0u; r < TM; r++) { acc[r] = fma(a_at(rows[r], k), b, acc[r]); }
  }

  if (j >= N) { return; }
  var add = 0.0;
  if (HAS_BIAS) { add = bias[params.offBias + j]; }
  for (var r = 0u; r < TM; r++) {
    let i = row0 + r;
    if (i < M) {
      let idx = params.offC + i * params.ldc + j;
      var v = activate(acc[r] + add);
      if (ACCUMULATE) { v += C[idx]; }
      C[idx] = v;
    }
  }
}
