// C = op(A) · op(B) (+ bias) (→ activation) (+= C) using subgroup shuffles: the fast path on
// adapters with the 'subgroups' feature. Same semantics and Params as matmul.wgsl.
//
// Why this shape: on CPU adapters (lavapipe's llvmpipe runs a subgroup as one 8-wide SIMD
// vector) every memory load inside a loop is executed lane by lane (per lane: buffer pointer and
// size, bounds check, scalar load, insert; a vec4 load shares the pointer fetch), even when the
// address is uniform, while arithmetic and shuffles with a uniform index are single vector
// instructions. So loads are what costs, and this kernel makes each loaded float feed as many
// FMAs as it can:
//  - a workgroup computes TM rows × (4·WG) columns of C; each invocation owns 4 adjacent
//    columns for all TM rows (8, 16 or 32, chosen by the host: small batches waste fewer rows
//    with 16; other trip counts compile to much slower code), so each float of B it loads feeds
//    TM FMAs;
//  - k advances 4 at a time through a straight-line body: B as 4 vec4 (rows k..k+3 along n,
//    VEC_B; or, B transposed, runs along k of the 4 columns' rows, VEC_BT, whose 4x4 transpose
//    is free as it only renames SIMD registers), and A cooperatively: in each group of G rows,
//    lane s loads row s's 4 k's as one vec4 (VEC_A; transposed, VEC_AT, lane s loads k + s%4 of
//    4 rows along m) and every lane reads it with subgroupShuffle, so each A element is loaded
//    once per subgroup. llvmpipe writes loop-carried values back under the loop's execution mask
//    (a blend), and the TM·4 accumulator registers spill: 4 k's per iteration pay that once per
//    4 FMAs. K % 4 leftover k's run in a scalar tail.
// No shared memory and no barriers (llvmpipe implements barriers by switching coroutines).
// On a GPU the same structure gives coalesced B loads and register tiling.
enable subgroups;

override TRANS_A: bool = false;    // A stored [K, M] when true, else [M, K]
override TRANS_B: bool = false;    // B stored [N, K] when true, else [K, N]
override VEC_A: bool = false;      // !TRANS_A and lda, offA multiples of 4: A rows read as vec4 along k
override VEC_AT: bool = false;     // TRANS_A and M, lda, offA, TM multiples of 4: A read as vec4 along m
override VEC_B: bool = false;      // !TRANS_B and N, ldb, offB multiples of 4: B rows read as vec4 along n
override VEC_BT: bool = false;     // TRANS_B and ldb, offB multiples of 4: B rows read as vec4 along k
override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u;     // an activation code of prelude.wgsl: 0 none, 1 relu, 2 sigmoid, 3 tanh
override ACCUMULATE: bool = false;
override BIAS_GRAD: bool = false;  // also dbias[j] (+)= Σ_k op(B)[k][j] (a bias gradient: dW = Xᵀ·dZ, db = 1ᵀ·dZ)
override WG: u32 = 16u;            // invocations per workgroup (each 4 columns)
override TM: u32 = 16u;            // rows of C per workgroup: 8, 16 or 32 (a multiple of G, ≤ TMAX)
override G: u32 = 8u;              // rows per cooperative A load: 4 or 8, ≤ WG and ≤ the subgroup size

const TMAX: u32 = 32u;             // loops up to 32 constant trips are unrolled by llvmpipe
const QMAX: u32 = 8u;              // TMAX / smallest G

struct Params {
  M: u32, N: u32, K: u32,
  lda: u32, ldb: u32, ldc: u32,
  offA: u32, offB: u32, offC: u32, offBias: u32, offDbias: u32,
  // Split K (src/kernels/matmul.ts matmulSplitK): workgroup z sums k in [z·kChunk, (z+1)·kChunk)
  // (a multiple of 4) and stores its partial C at offC + z·M·ldc; K when not split.
  kChunk: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
// The same buffers as A and B, read four floats at a time when VEC_A / VEC_B / VEC_BT allow it.
@group(0) @binding(5) var<storage, read> A4: array<vec4f>;
@group(0) @binding(6) var<storage, read> B4: array<vec4f>;
// C as vec4s, for main_c4 (N, ldc and offC multiples of 4): one store per 4 floats instead of 4,
// which matters where K is short and the epilogue is a large share of the work.
@group(0) @binding(7) var<storage, read_write> C4: array<vec4f>;
// BIAS_GRAD: the column sums of op(B), which the tile loads anyway; the first row of workgroups
// stores them. The sum over k is serial, so the host fuses it only for short K (a batch).
@group(0) @binding(8) var<storage, read_write> dbias: array<f32>;

fn a_at(i: u32, k: u32) -> f32 {
  if (TRANS_A) { return A[params.offA + k * params.lda + i]; }
  return A[params.offA + i * params.lda + k];
}

fn b_at(k: u32, j: u32) -> f32 {
  if (TRANS_B) { return B[params.offB + j * params.ldb + k]; }
  return B[params.offB + k * params.ldb + j];
}

// Row k of op(B) at columns j0..j0+3 (clamped to the matrix; extra columns are never stored).
fn b_row(k: u32, j0: u32) -> vec4f {
  let last = params.N - 1u;
  return vec4f(b_at(k, min(j0, last)), b_at(k, min(j0 + 1u, last)), b_at(k, min(j0 + 2u, last)), b_at(k, min(j0 + 3u, last)));
}

// This invocation's TM x 4 block of op(A)·op(B) (before bias, activation and accumulation), at
// rows wid.y·TM.. and columns j0..j0+3 with j0 = (wid.x·WG + lid.x)·4, over the k of chunk wid.z.
fn tile(wid: vec3u, lid: vec3u, lane: u32, acc: ptr<function, array<vec4f, TMAX>>, colsum: ptr<function, vec4f>) {
  let M = params.M;
  let N = params.N;
  let k_begin = wid.z * params.kChunk;
  let K = min(params.K, k_begin + params.kChunk);
  let j0 = (wid.x * WG + lid.x) * 4u;
  let row0 = wid.y * TM;
  let last_row = M - 1u;
  let s = lane % G;              // this lane's row within each group of G rows
  let QA = (TM + G - 1u) / G;    // groups of rows

  var a: array<vec4f, QMAX>;
  let K4 = k_begin + ((K - k_begin) & ~3u);
  for (var k = k_begin; k < K4; k += 4u) {
    // Rows k..k+3 of op(B) at this invocation's 4 columns.
    var b0: vec4f; var b1: vec4f; var b2: vec4f; var b3: vec4f;
    if (VEC_B) {
      let base = (params.offB + k * params.ldb + min(j0, N - 4u)) / 4u;
      let step = params.ldb / 4u;
      b0 = B4[base]; b1 = B4[base + step]; b2 = B4[base + 2u * step]; b3 = B4[base + 3u * step];
    } else if (VEC_BT) {
      // B stored [N, K]: column j of op(B) is row j of B, contiguous along k.
      let step = params.ldb / 4u;
      let base = (params.offB + k) / 4u;
      let c0 = B4[base + min(j0, N - 1u) * step];
      let c1 = B4[base + min(j0 + 1u, N - 1u) * step];
      let c2 = B4[base + min(j0 + 2u, N - 1u) * step];
      let c3 = B4[base + min(j0 + 3u, N - 1u) * step];
      b0 = vec4f(c0.x, c1.x, c2.x, c3.x); b1 = vec4f(c0.y, c1.y, c2.y, c3.y);
      b2 = vec4f(c0.z, c1.z, c2.z, c3.z); b3 = vec4f(c0.w, c1.w, c2.w, c3.w);
    } else {
      b0 = b_row(k, j0); b1 = b_row(k + 1u, j0); b2 = b_row(k + 2u, j0); b3 = b_row(k + 3u, j0);
    }
    if (BIAS_GRAD) { *colsum += (b0 + b1) + (b2 + b3); }
    // A, cooperatively: one load per lane per group of G rows.
    for (var q = 0u; q < QA; q++) {
      if (VEC_AT) {
        // Lane s holds A[k + s%4][rows 4·(s/4) .. +3 of the group] (a quad clamped into the matrix).
        let i = min(row0 + q * G + (s / 4u) * 4u, M - 4u);
        a[q] = A4[(params.offA + (k + s % 4u) * params.lda + i) / 4u];
      } else {
        let i = min(row0 + q * G + s, last_row);
        if (VEC_A) { a[q] = A4[(params.offA + i * params.lda + k) / 4u]; }
        else { a[q] = vec4f(a_at(i, k), a_at(i, k + 1u), a_at(i, k + 2u), a_at(i, k + 3u)); }
      }
    }
    for (var r = 0u; r < TM; r++) {
      var av: vec4f;
      if (VEC_AT) {
        let src = ((r % G) / 4u) * 4u;
        let x = a[r / G][r % 4u];
        av = vec4f(subgroupShuffle(x, src), subgroupShuffle(x, src + 1u), subgroupShuffle(x, src + 2u), subgroupShuffle(x, src + 3u));
      } else {
        av = subgroupShuffle(a[r / G], r % G);
      }
      (*acc)[r] = fma(vec4f(av.w), b3, fma(vec4f(av.z), b2, fma(vec4f(av.y), b1, fma(vec4f(av.x), b0, (*acc)[r]))));
    }
  }
  for (var k = K4; k < K; k++) {
    let b = b_row(k, j0);
    if (BIAS_GRAD) { *colsum += b; }
    for (var q = 0u; q < QA; q++) { a[q].x = a_at(min(row0 + q * G + s, last_row), k); }
    for (var r = 0u; r < TM; r++) { (*acc)[r] = fma(vec4f(subgroupShuffle(a[r / G].x, r % G)), b, (*acc)[r]); }
  }
}

// Bias at columns j0..j0+3 (clamped; extra columns are never stored).
fn bias_at(j0: u32) -> vec4f {
  if (!HAS_BIAS) { return vec4f(0.0); }
  let last = params.N - 1u;
  return vec4f(bias[params.offBias + j0], bias[params.offBias + min(j0 + 1u, last)],
               bias[params.offBias + min(j0 + 2u, last)], bias[params.offBias + min(j0 + 3u, last)]);
}

// BIAS_GRAD: the first row of workgroups stores the column sums at columns j0.. (j0 < N).
fn store_bias_grad(wid: vec3u, j0: u32, colsum: vec4f) {
  if (!BIAS_GRAD || wid.y != 0u) { return; }
  for (var c = 0u; c < min(4u, params.N - j0); c++) {
    var x = colsum[c];
    if (ACCUMULATE) { x += dbias[params.offDbias + j0 + c]; }
    dbias[params.offDbias + j0 + c] = x;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(subgroup_invocation_id) lane: u32) {
  var acc: array<vec4f, TMAX>;
  var colsum = vec4f(0.0);
  tile(wid, lid, lane, &acc, &colsum);
  let N = params.N;
  let j0 = (wid.x * WG + lid.x) * 4u;
  let row0 = wid.y * TM;

  if (j0 >= N) { return; }
  store_bias_grad(wid, j0, colsum);
  let add = bias_at(j0);
  let ncols = min(4u, N - j0);
  for (var r = 0u; r < TM; r++) {
    let i = row0 + r;
    if (i >= params.M) { break; }
    let v = activate4(ACTIVATION, acc[r] + add);
    let base = params.offC + (wid.z * params.M + i) * params.ldc + j0;
    for (var c = 0u; c < ncols; c++) {
      var x = v[c];
      if (ACCUMULATE) { x += C[base + c]; }
      C[base + c] = x;
    }
  }
}

// main with C stored as vec4s (N, ldc and offC multiples of 4, so every column quad is whole).
@compute @workgroup_size(WG)
fn main_c4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
           @builtin(subgroup_invocation_id) lane: u32) {
  var acc: array<vec4f, TMAX>;
  var colsum = vec4f(0.0);
  tile(wid, lid, lane, &acc, &colsum);
  let j0 = (wid.x * WG + lid.x) * 4u;
  let row0 = wid.y * TM;
  if (j0 >= params.N) { return; }
  store_bias_grad(wid, j0, colsum);
  let add = bias_at(j0);
  for (var r = 0u; r < TM; r++) {
    let i = row0 + r;
    if (i >= params.M) { break; }
    var v = activate4(ACTIVATION, acc[r] + add);
    let at = (params.offC + (wid.z * params.M + i) * params.ldc + j0) / 4u;
    if (ACCUMULATE) { v += C4[at]; }
    C4[at] = v;
  }
}

// ------------------------------------------------------------------ LSTM steps (matmul epilogues)
// One LSTM time step in one dispatch (src/kernels/recurrent.ts): the tile computes the step's
// recurrent product and, instead of storing it, each invocation runs the step's cell on its TM x 4
// elements with shaders/recurrent.wgsl's arithmetic in the same order (lstm_fwd, lstm_bwd), so the
// results are those of the matmul followed by the cell kernel.
//  - lstm_fwd_step: z_t += h_{t-1}·W_h, then the cell of step t. B is W_h with its columns
//    interleaved ([H, 4H], column 4j+g = gate g of unit j: recurrent.wgsl's interleave_wh), so an
//    invocation's 4 columns are the 4 gates of one unit.
//  - lstm_bwd_step: dh_t = dz_{t+1}·W_hᵀ ([B, 4H]·[4H, H], B = W_h transposed), then the cell
//    backward of step t.
// A (h_{t-1}, or dz_{t+1}) is a copy in a [B, ·] buffer of its own, written by the step before
// (lstm_next_a), because WebGPU refuses one buffer bound both read-only (A) and writable in a dispatch.
override LSTM_GATES_IN_DZ: bool = false; // lstm_bwd_step: the gates are in dz (one buffer) and are overwritten by their gradients

struct LstmStep {
  B: u32, H: u32,
  t: u32,           // the step whose cell runs
  hasDy: u32,       // backward: 1 adds dy[dyOff + n·H + j] to dh_t
  dyOff: u32,
  forgetBias: f32,  // forward: added to the forget gate's pre-activation
}

@group(0) @binding(9) var<uniform> lstm: LstmStep;
@group(0) @binding(10) var<storage, read_write> lstm_z: array<f32>;      // gates [T, B, 4H]: x·W_x + b in, activations out
@group(0) @binding(11) var<storage, read_write> lstm_dz: array<f32>;     // gate gradients [T, B, 4H]
@group(0) @binding(12) var<storage, read_write> lstm_c: array<f32>;      // cell states [T+1, B, H]
@group(0) @binding(13) var<storage, read> lstm_dy: array<f32>;
@group(0) @binding(14) var<storage, read_write> lstm_dc: array<f32>;     // dL/dc_t in, dL/dc_{t-1} out [B, H]
@group(0) @binding(15) var<storage, read_write> lstm_next_a: array<f32>; // this step's h_t [B, H] or dz_t [B, 4H] again: the next step's A
@group(0) @binding(16) var<storage, read_write> lstm_h: array<f32>;      // states [T+1, B, H]

@compute @workgroup_size(WG)
fn lstm_fwd_step(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
                 @builtin(subgroup_invocation_id) lane: u32) {
  var acc: array<vec4f, TMAX>;
  var colsum = vec4f(0.0);
  tile(wid, lid, lane, &acc, &colsum);
  let B = lstm.B;
  let H = lstm.H;
  let BH = B * H;
  let j = wid.x * WG + lid.x; // the unit whose 4 gates are this invocation's 4 columns
  let row0 = wid.y * TM;
  if (j >= H) { return; }
  for (var r = 0u; r < TM; r++) {
    let n = row0 + r;
    if (n >= B) { break; }
    let zo = (lstm.t * B + n) * 4u * H + j;
    let so = lstm.t * BH + n * H + j;
    let pre = acc[r];
    let i = sigmoid(pre.x + lstm_z[zo]);
    let a = tanh_accurate(pre.y + lstm_z[zo + H]);
    let f = sigmoid(pre.z + lstm_z[zo + 2u * H] + lstm.forgetBias);
    let o = sigmoid(pre.w + lstm_z[zo + 3u * H]);
    lstm_z[zo] = i;
    lstm_z[zo + H] = a;
    lstm_z[zo + 2u * H] = f;
    lstm_z[zo + 3u * H] = o;
    let c = f * lstm_c[so] + i * a;
    lstm_c[so + BH] = c;
    let h = o * tanh_accurate(c);
    lstm_h[so + BH] = h;
    lstm_next_a[n * H + j] = h;
  }
}

@compute @workgroup_size(WG)
fn lstm_bwd_step(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
                 @builtin(subgroup_invocation_id) lane: u32) {
  var acc: array<vec4f, TMAX>;
  var colsum = vec4f(0.0);
  tile(wid, lid, lane, &acc, &colsum);
  let B = lstm.B;
  let H = lstm.H;
  let BH = B * H;
  let j0 = (wid.x * WG + lid.x) * 4u;
  let row0 = wid.y * TM;
  if (j0 >= H) { return; }
  let ncols = min(4u, H - j0);
  for (var r = 0u; r < TM; r++) {
    let n = row0 + r;
    if (n >= B) { break; }
    for (var c = 0u; c < ncols; c++) {
      let j = j0 + c;
      let idx = n * H + j;
      var dh = acc[r][c];
      if (lstm.hasDy != 0u) { dh += lstm_dy[lstm.dyOff + idx]; }
      let zo = (lstm.t * B + n) * 4u * H + j;
      let so = lstm.t * BH + idx;
      var i: f32; var a: f32; var f: f32; var o: f32;
      if (LSTM_GATES_IN_DZ) {
        i = lstm_dz[zo]; a = lstm_dz[zo + H]; f = lstm_dz[zo + 2u * H]; o = lstm_dz[zo + 3u * H];
      } else {
        i = lstm_z[zo]; a = lstm_z[zo + H]; f = lstm_z[zo + 2u * H]; o = lstm_z[zo + 3u * H];
      }
      let tc = tanh_accurate(lstm_c[so + BH]);
      let dct = lstm_dc[idx] + dh * o * (1.0 - tc * tc);
      let di = dct * a * i * (1.0 - i);
      let da = dct * i * (1.0 - a * a);
      let df = dct * lstm_c[so] * f * (1.0 - f);
      let dO = dh * tc * o * (1.0 - o);
      lstm_dz[zo] = di; lstm_dz[zo + H] = da; lstm_dz[zo + 2u * H] = df; lstm_dz[zo + 3u * H] = dO;
      let co = n * 4u * H + j;
      lstm_next_a[co] = di; lstm_next_a[co + H] = da; lstm_next_a[co + 2u * H] = df; lstm_next_a[co + 3u * H] = dO;
      lstm_dc[idx] = dct * f;
    }
  }
}
