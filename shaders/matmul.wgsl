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
override ACTIVATION: u32 = 0u;    // an activation code of prelude.wgsl: 0 none, 1 relu, 2 sigmoid, 3 tanh
override ACCUMULATE: bool = false; // C += result instead of C = result
override WG: u32 = 64u;           // lanes (columns) per workgroup

const TM: u32 = 8u;               // rows of C per invocation (uniform across the workgroup)

struct Params {
  M: u32, N: u32, K: u32,
  lda: u32, ldb: u32, ldc: u32,   // row strides in elements of A, B, C as stored
  offA: u32, offB: u32, offC: u32, offBias: u32, // element offsets into each buffer
  // Split K (matmulSplitK): workgroup z sums k in [z·kChunk, (z+1)·kChunk) and stores its partial
  // C at offC + z·M·ldc; K when not split.
  kChunk: u32,
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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = params.M;
  let N = params.N;
  let k_begin = wid.z * params.kChunk;
  let k_end = min(params.K, k_begin + params.kChunk);
  let j = wid.x * WG + lid.x;
  let jj = min(j, N - 1u);
  let row0 = wid.y * TM;
  // Rows clamped to the matrix keep every A address uniform and in range; extra rows are not stored.
  let r0 = min(row0 + 0u, M - 1u); let r1 = min(row0 + 1u, M - 1u);
  let r2 = min(row0 + 2u, M - 1u); let r3 = min(row0 + 3u, M - 1u);
  let r4 = min(row0 + 4u, M - 1u); let r5 = min(row0 + 5u, M - 1u);
  let r6 = min(row0 + 6u, M - 1u); let r7 = min(row0 + 7u, M - 1u);

  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  for (var k = k_begin; k < k_end; k++) {
    let b = b_at(k, jj);
    acc0 = fma(vec4f(a_at(r0, k), a_at(r1, k), a_at(r2, k), a_at(r3, k)), vec4f(b), acc0);
    acc1 = fma(vec4f(a_at(r4, k), a_at(r5, k), a_at(r6, k), a_at(r7, k)), vec4f(b), acc1);
  }

  if (j >= N) { return; }
  var add = 0.0;
  if (HAS_BIAS) { add = bias[params.offBias + j]; }
  let z = wid.z;
  store(z, row0 + 0u, j, acc0.x + add); store(z, row0 + 1u, j, acc0.y + add);
  store(z, row0 + 2u, j, acc0.z + add); store(z, row0 + 3u, j, acc0.w + add);
  store(z, row0 + 4u, j, acc1.x + add); store(z, row0 + 5u, j, acc1.y + add);
  store(z, row0 + 6u, j, acc1.z + add); store(z, row0 + 7u, j, acc1.w + add);
}

fn store(z: u32, i: u32, j: u32, x: f32) {
  if (i >= params.M) { return; }
  let idx = params.offC + (z * params.M + i) * params.ldc + j;
  var v = activate(ACTIVATION, x);
  if (ACCUMULATE) { v += C[idx]; }
  C[idx] = v;
}

// Split K's second pass (matmulSplitK): C = activation(Σ_z partial_z + bias) (+= C), the partials
// [splits, M, N] of the first pass bound as A, summed in z order. Lanes run along columns j;
// workgroups in y stride over the rows.
@compute @workgroup_size(WG)
fn sum_partials(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
                @builtin(num_workgroups) groups: vec3u) {
  let j = wid.x * WG + lid.x;
  if (j >= params.N) { return; }
  let splits = (params.K + params.kChunk - 1u) / params.kChunk;
  let plane = params.M * params.N;
  var add = 0.0;
  if (HAS_BIAS) { add = bias[params.offBias + j]; }
  for (var i = wid.y; i < params.M; i += groups.y) {
    var sum = 0.0;
    for (var z = 0u; z < splits; z++) { sum += A[z * plane + i * params.N + j]; }
    store(0u, i, j, sum + add);
  }
}
