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
// CONV makes the same tile a convolution's product, reading A (and B) from the NHWC tensors
// (see "Convolution operands").
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
// main, main_c4: C = product ⊙ f'(y), where C holds y = f(x) on entry, for f an activation code
// whose derivative is a function of y (relu, sigmoid, tanh): a dense layer's dx written over its
// input, the output of the layer that applied f (src/graph/fuse-activation-grads.ts). 0: off.
override ACT_GRAD: u32 = 0u;
// ACT_GRAD with ACT_GRAD_Y: y from Y (laid out as C, from element params.offY), and C written
// beside it: a dense layer's dx where the layer's weight update runs in its dW product, which
// reads that input after dx is stored.
override ACT_GRAD_Y: bool = false;
override BIAS_GRAD: bool = false;  // also dbias[j] (+)= Σ_k op(B)[k][j] (a bias gradient: dW = Xᵀ·dZ, db = 1ᵀ·dZ)
override WG: u32 = 16u;            // invocations per workgroup (each 4 columns)
override TM: u32 = 16u;            // rows of C per workgroup: 8, 16 or 32 (a multiple of G, ≤ TMAX)
override G: u32 = 8u;              // rows per cooperative A load: 4 or 8, ≤ WG and ≤ the subgroup size

// Convolution as an implicit GEMM (src/kernels/conv2d.ts): op(A) (and for dx op(B)) are read
// straight from the NHWC tensors, never stored as patches. See "Convolution operands" below.
override CONV: u32 = 0u;           // 0 a plain product; 1 forward; 2 dFilter; 3 dx
override CONV_SH: u32 = 1u;        // the convolution's strides (constants: divisions by them are cheap)
override CONV_SW: u32 = 1u;

// Operands read as textures (src/gpu/operand-textures.ts): A4t / B4t hold the operand's floats from
// its first one, which is quad params.texA / texB of the buffer, TEX_WIDTH texels of 4 floats a row.
// On llvmpipe a texel load is one vectorized gather, where a storage load is a loop over the lanes
// with a bounds check per float. They are read-only storage textures, not sampled ones: llvmpipe
// loads a storage texel with a quarter of the instructions of a sampled texture's fetch, which also
// works out mip levels. The host copies the operand into the texture before the dispatch, and uses
// one only where the tile reads the operand as vec4s (picking one float out of a texel costs more
// than a scalar load).
override TEX_A: bool = false;
override TEX_B: bool = false;
override TEX_WIDTH: u32 = 1024u;   // a power of 2
// B (not transposed, VEC_B, no CONV) as panels instead: B4p's layer p holds columns 128p..128p+127
// of all K rows, 32 texels a row. Where B's rows lie a page or more apart, each k of the flat layout
// falls on a page of its own, and a tile's walk down K misses the TLB at every row; a panel keeps a
// workgroup's columns of consecutive rows together.
override B_PANELS: bool = false;
const PANEL_TEXELS: u32 = 32u;     // matches src/gpu/operand-textures.ts PANEL_TEXELS

const TMAX: u32 = 32u;             // loops up to 32 constant trips are unrolled by llvmpipe
const QMAX: u32 = 8u;              // TMAX / smallest G

struct Params {
  M: u32, N: u32, K: u32,
  lda: u32, ldb: u32, ldc: u32,
  offA: u32, offB: u32, offC: u32, offBias: u32, offDbias: u32,
  // Split K (src/kernels/matmul.ts matmulSplitK): workgroup z sums k in [z·kChunk, (z+1)·kChunk)
  // (a multiple of 4) and stores its partial C at offC + z·M·ldc; K when not split.
  kChunk: u32,
  // CONV: the convolution's geometry (0 otherwise).
  inH: u32, inW: u32, inC: u32, kW: u32, outH: u32, outW: u32, padTop: u32, padLeft: u32, outC: u32,
  // TEX_A, TEX_B: the quad of A and of B where its texture starts.
  texA: u32, texB: u32,
  // ACT_GRAD_Y: where y starts in Y.
  offY: u32,
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
// A and B as textures (TEX_A, TEX_B; B4p with B_PANELS); a 1x1 dummy where a variant reads none.
@group(0) @binding(17) var A4t: texture_storage_2d<rgba32float, read>;
@group(0) @binding(18) var B4t: texture_storage_2d<rgba32float, read>;
@group(0) @binding(25) var B4p: texture_storage_2d_array<rgba32float, read>;
// ACT_GRAD_Y: the activation's output y, for main and for main_c4 (offY a multiple of 4).
@group(0) @binding(32) var<storage, read> Y: array<f32>;
@group(0) @binding(33) var<storage, read> Y4: array<vec4f>;

// Row k of B (from its first column, offB) at the quad of columns j..j+3 (j a multiple of 4), as panels.
fn b_panel_quad(k: u32, j: u32) -> vec4f {
  return textureLoad(B4p, vec2u((j / 4u) % PANEL_TEXELS, k), j / (4u * PANEL_TEXELS));
}

fn texel(t: texture_storage_2d<rgba32float, read>, q: u32) -> vec4f {
  return textureLoad(t, vec2u(q & (TEX_WIDTH - 1u), q / TEX_WIDTH));
}

// Float e and quad q of A and of B, from the storage buffer or the texture.
fn a_elem(e: u32) -> f32 {
  if (TEX_A) { return texel(A4t, e / 4u - params.texA)[e % 4u]; }
  return A[e];
}
fn a_quad(q: u32) -> vec4f {
  if (TEX_A) { return texel(A4t, q - params.texA); }
  return A4[q];
}
fn b_elem(e: u32) -> f32 {
  if (TEX_B) { return texel(B4t, e / 4u - params.texB)[e % 4u]; }
  return B[e];
}
fn b_quad(q: u32) -> vec4f {
  if (TEX_B) { return texel(B4t, q - params.texB); }
  return B4[q];
}

fn a_at(i: u32, k: u32) -> f32 {
  if (TRANS_A) { return a_elem(params.offA + k * params.lda + i); }
  return a_elem(params.offA + i * params.lda + k);
}

fn b_at(k: u32, j: u32) -> f32 {
  if (TRANS_B) { return b_elem(params.offB + j * params.ldb + k); }
  if (TEX_B && B_PANELS) { return b_panel_quad(k, j & ~3u)[j % 4u]; }
  return b_elem(params.offB + k * params.ldb + j);
}

// Row k of op(B) at columns j0..j0+3 (clamped to the matrix; extra columns are never stored).
fn b_row(k: u32, j0: u32) -> vec4f {
  let last = params.N - 1u;
  return vec4f(b_at(k, min(j0, last)), b_at(k, min(j0 + 1u, last)), b_at(k, min(j0 + 2u, last)), b_at(k, min(j0 + 3u, last)));
}

// ------------------------------------------------------------ Convolution operands (CONV != 0)
// NHWC x [batch, inH, inW, inC], filter [kH, kW, inC, outC], y and dy [batch, outH, outW, outC].
//  - CONV 1, y = x ⊛ filter: row i of C is an output pixel (n, oh, ow), k is a tap (ki, kj, ci);
//    op(A)[i][k] = x[n, oh·sH + ki − padTop, ow·sW + kj − padLeft, ci] (0 outside x); B = filter.
//  - CONV 2, dFilter = patchesᵀ·dy (TRANS_A): row m is a tap (ki, kj, ci), k an output pixel
//    (n, oh, ow); op(A)[m][k] is CONV 1's op(A)[k][m]; B = dy.
//  - CONV 3, dx = dy ⊛ᵀ filter (TRANS_B): row i is an input pixel (n, ih, iw), k is (ki, kj, co);
//    op(A)[i][k] = dy[n, oh, ow, co] where oh·sH = ih + padTop − ki and ow·sW = iw + padLeft − kj
//    (0 where no output pixel is there); op(B)[k][ci] = filter[ki, kj, ci, co].
// k is carried as counters in mixed radix (conv_next) rather than divided out per element: integer
// division is not vectorized on CPU adapters. Each row's coordinates are worked out once, in
// conv_row. Out-of-range coordinates are clamped for the load and the value replaced by 0.

// The radix of k: (fastest digit's limit, next digit's limit).
fn conv_k_limits() -> vec2u {
  if (CONV == 1u) { return vec2u(params.inC, params.kW); }
  if (CONV == 3u) { return vec2u(params.outC, params.kW); }
  return vec2u(params.outW, params.outH);
}

// k as digits (fastest first), by division: once per workgroup, or in the K % 4 tail.
fn conv_digits(k: u32, lim: vec2u) -> vec3u {
  return vec3u(k % lim.x, (k / lim.x) % lim.y, k / (lim.x * lim.y));
}

// The digits of k + step, for step 1, or 4 where the fastest digit's limit is a multiple of 4.
fn conv_next(t: vec3u, lim: vec2u, step: u32) -> vec3u {
  let x = t.x + step;
  let wx = x == lim.x;
  let y = t.y + select(0u, 1u, wx);
  let wy = y == lim.y;
  return vec3u(select(x, 0u, wx), select(y, 0u, wy), t.z + select(0u, 1u, wy));
}

// What a row of op(A) needs of its own coordinates, worked out once:
//   CONV 1 (i an output pixel): (oh·sH − padTop, ow·sW − padLeft, n·inH);
//   CONV 2 (i a tap):           (ki − padTop, kj − padLeft, ci);
//   CONV 3 (i an input pixel):  (ih + padTop, iw + padLeft, n·outH).
fn conv_row(i: u32) -> vec3i {
  if (CONV == 1u) {
    let p = conv_digits(i, vec2u(params.outW, params.outH));
    return vec3i(i32(p.y * CONV_SH) - i32(params.padTop), i32(p.x * CONV_SW) - i32(params.padLeft), i32(p.z * params.inH));
  }
  if (CONV == 2u) {
    let t = conv_digits(i, vec2u(params.inC, params.kW));
    return vec3i(i32(t.z) - i32(params.padTop), i32(t.y) - i32(params.padLeft), i32(t.x));
  }
  let p = conv_digits(i, vec2u(params.inW, params.inH));
  return vec3i(i32(p.y + params.padTop), i32(p.x + params.padLeft), i32(p.z * params.outH));
}

// The element index (into A) of op(A) at a row (conv_row) and a k (digits), and whether it exists.
fn conv_a_index(row: vec3i, t: vec3u) -> vec2u {
  var y: i32; var x: i32; var base: u32; var c: u32; var height: u32; var width: u32; var channels: u32;
  var ok = true;
  if (CONV == 3u) {
    let ys = row.x - i32(t.z);
    let xs = row.y - i32(t.y);
    ok = ys >= 0 && xs >= 0 && u32(ys) % CONV_SH == 0u && u32(xs) % CONV_SW == 0u;
    y = ys / i32(CONV_SH); x = xs / i32(CONV_SW); base = u32(row.z); c = t.x;
    height = params.outH; width = params.outW; channels = params.outC;
  } else {
    if (CONV == 1u) { y = row.x + i32(t.z); x = row.y + i32(t.y); base = u32(row.z); c = t.x; }
    else { y = i32(t.y * CONV_SH) + row.x; x = i32(t.x * CONV_SW) + row.y; base = t.z * params.inH; c = u32(row.z); }
    height = params.inH; width = params.inW; channels = params.inC;
  }
  ok = ok && y >= 0 && y < i32(height) && x >= 0 && x < i32(width);
  let idx = ((base + u32(clamp(y, 0, i32(height) - 1))) * width + u32(clamp(x, 0, i32(width) - 1))) * channels + c;
  return vec2u(params.offA + idx, select(0u, 1u, ok));
}

fn conv_a(row: vec3i, t: vec3u) -> f32 {
  let at = conv_a_index(row, t);
  return select(0.0, a_elem(at.x), at.y != 0u);
}

// Four channels at once (the channel count a multiple of 4, the index at a multiple of 4).
fn conv_a4(row: vec3i, t: vec3u) -> vec4f {
  let at = conv_a_index(row, t);
  return select(vec4f(0.0), a_quad(at.x / 4u), at.y != 0u);
}

// CONV 3: where k's column of B starts, op(B)[k][j] being B[that + j·ldb] (ldb = outC).
fn conv_b_offset(t: vec3u) -> u32 {
  return (t.z * params.kW + t.y) * params.inC * params.outC + t.x;
}

// op(A)[i][k] for any k, by division (the K % 4 tail).
fn a_any(i: u32, k: u32) -> f32 {
  if (CONV == 0u) { return a_at(i, k); }
  return conv_a(conv_row(i), conv_digits(k, conv_k_limits()));
}

// Where row k of op(B) starts, as b_at takes it, for any k (the K % 4 tail).
fn b_k(k: u32) -> u32 {
  if (CONV == 3u) { return conv_b_offset(conv_digits(k, conv_k_limits())); }
  return k;
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
  // CONV: k as digits (conv_next), and what each of this lane's rows of A needs (conv_row). In
  // dFilter's vec4 layout a lane holds k + s%4 of 4 rows; otherwise one row, all 4 k's.
  let conv_vec_at = CONV == 2u && VEC_AT;
  let lim = conv_k_limits();     // the radix of k, fixed for the dispatch
  var tk: vec3u;
  var rows: array<vec3i, QMAX>;
  if (CONV != 0u) {
    tk = conv_digits(select(k_begin, k_begin + s % 4u, conv_vec_at), lim);
    // Written out rather than looped: a loop this long is not unrolled, and an array indexed by
    // a loop counter lives in memory, read lane by lane.
    let first = select(row0 + s, row0 + (s / 4u) * 4u, conv_vec_at);
    let last = select(last_row, M - 4u, conv_vec_at);
    rows[0] = conv_row(min(first, last));
    if (QA > 1u) { rows[1] = conv_row(min(first + G, last)); }
    if (QA > 2u) { rows[2] = conv_row(min(first + 2u * G, last)); }
    if (QA > 3u) { rows[3] = conv_row(min(first + 3u * G, last)); }
    if (QA > 4u) { rows[4] = conv_row(min(first + 4u * G, last)); }
    if (QA > 5u) { rows[5] = conv_row(min(first + 5u * G, last)); }
    if (QA > 6u) { rows[6] = conv_row(min(first + 6u * G, last)); }
    if (QA > 7u) { rows[7] = conv_row(min(first + 7u * G, last)); }
  }
  let K4 = k_begin + ((K - k_begin) & ~3u);
  for (var k = k_begin; k < K4; k += 4u) {
    // CONV: the digits of k+1..k+3 (k + s%4 + 4 for conv_vec_at's lane counters, which step by 4).
    let t1 = conv_next(tk, lim, 1u);
    let t2 = conv_next(t1, lim, 1u);
    let t3 = conv_next(t2, lim, 1u);
    // Where each of k..k+3 starts in B (CONV 3: a tap's column of the filter).
    var kb = vec4u(k, k + 1u, k + 2u, k + 3u);
    if (CONV == 3u) { kb = vec4u(conv_b_offset(tk), conv_b_offset(t1), conv_b_offset(t2), conv_b_offset(t3)); }
    // Rows k..k+3 of op(B) at this invocation's 4 columns.
    var b0: vec4f; var b1: vec4f; var b2: vec4f; var b3: vec4f;
    if (VEC_B && TEX_B && B_PANELS) {
      let j = min(j0, N - 4u);
      b0 = b_panel_quad(k, j); b1 = b_panel_quad(k + 1u, j); b2 = b_panel_quad(k + 2u, j); b3 = b_panel_quad(k + 3u, j);
    } else if (VEC_B) {
      let base = (params.offB + k * params.ldb + min(j0, N - 4u)) / 4u;
      let step = params.ldb / 4u;
      b0 = b_quad(base); b1 = b_quad(base + step); b2 = b_quad(base + 2u * step); b3 = b_quad(base + 3u * step);
    } else if (VEC_BT) {
      // B stored [N, K]: column j of op(B) is row j of B, contiguous along k.
      let step = params.ldb / 4u;
      let base = (params.offB + kb.x) / 4u;
      let c0 = b_quad(base + min(j0, N - 1u) * step);
      let c1 = b_quad(base + min(j0 + 1u, N - 1u) * step);
      let c2 = b_quad(base + min(j0 + 2u, N - 1u) * step);
      let c3 = b_quad(base + min(j0 + 3u, N - 1u) * step);
      b0 = vec4f(c0.x, c1.x, c2.x, c3.x); b1 = vec4f(c0.y, c1.y, c2.y, c3.y);
      b2 = vec4f(c0.z, c1.z, c2.z, c3.z); b3 = vec4f(c0.w, c1.w, c2.w, c3.w);
    } else {
      b0 = b_row(kb.x, j0); b1 = b_row(kb.y, j0); b2 = b_row(kb.z, j0); b3 = b_row(kb.w, j0);
    }
    if (BIAS_GRAD) { *colsum += (b0 + b1) + (b2 + b3); }
    // A, cooperatively: one load per lane per group of G rows.
    for (var q = 0u; q < QA; q++) {
      if (CONV != 0u) {
        if (conv_vec_at || VEC_A) { a[q] = conv_a4(rows[q], tk); }
        else { a[q] = vec4f(conv_a(rows[q], tk), conv_a(rows[q], t1), conv_a(rows[q], t2), conv_a(rows[q], t3)); }
      } else if (VEC_AT) {
        // Lane s holds A[k + s%4][rows 4·(s/4) .. +3 of the group] (a quad clamped into the matrix).
        let i = min(row0 + q * G + (s / 4u) * 4u, M - 4u);
        a[q] = a_quad((params.offA + (k + s % 4u) * params.lda + i) / 4u);
      } else {
        let i = min(row0 + q * G + s, last_row);
        if (VEC_A) { a[q] = a_quad((params.offA + i * params.lda + k) / 4u); }
        else { a[q] = vec4f(a_at(i, k), a_at(i, k + 1u), a_at(i, k + 2u), a_at(i, k + 3u)); }
      }
    }
    if (CONV != 0u) {
      // The next quad's digits: channel quads step by 4 (their count a multiple of 4).
      if (VEC_A && !conv_vec_at) { tk = conv_next(tk, lim, 4u); } else { tk = conv_next(t3, lim, 1u); }
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
    let b = b_row(b_k(k), j0);
    if (BIAS_GRAD) { *colsum += b; }
    for (var q = 0u; q < QA; q++) { a[q].x = a_any(min(row0 + q * G + s, last_row), k); }
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
      if (ACT_GRAD != 0u) {
        var y: f32;
        if (ACT_GRAD_Y) { y = Y[params.offY + i * params.ldc + j0 + c]; } else { y = C[base + c]; }
        x *= activation_grad_from_y(ACT_GRAD, y);
      }
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
    if (ACT_GRAD != 0u) {
      var y: vec4f;
      if (ACT_GRAD_Y) { y = Y4[(params.offY + i * params.ldc + j0) / 4u]; } else { y = C4[at]; }
      v *= activation_grad_from_y4(ACT_GRAD, y);
    }
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

// ----------------------------------------------- Optimizer step (a weight gradient's epilogue)
// optimizer_step: the tile computes a weight gradient dW (e.g. Xᵀ·dZ) and, instead of storing it,
// updates the weight it belongs to, so the gradient never goes through memory and the update needs
// no dispatch of its own (src/kernels/optimizer.ts adamEpilogue, sgdEpilogue). The weight and its state are
// laid out as C would be (offC, ldc: whole column quads, as main_c4) and updated with prelude.wgsl's
// arithmetic, the bits of shaders/optimizer.wgsl. No clipping: a clip scale needs every gradient of
// the step before any update.
// optimizer_step_bias: the same, and the tile's column sums (BIAS_GRAD: the bias gradient) update the
// layer's bias in the first row of workgroups instead of being stored (the bias's own update, with
// the weight's hyper-parameters).
// optimizer_step_scalar: a weight in any layout (columns not in whole quads, e.g. a 10-class output
// layer), float by float; with BIAS_UPDATE it also updates the bias, else BIAS_GRAD stores dbias.
override OPTIMIZER: u32 = 3u;      // 1 SGD, 2 SGD with momentum, 3 Adam
override NESTEROV: bool = false;   // momentum: Nesterov's
override SCHEDULED: bool = false;  // lr = opt_control[0] (the GPU-written learning rate of this step)
override DECAY: u32 = 0u;          // 1: L2 (g += weightDecay·w); 2: decoupled (AdamW)
override BIAS_UPDATE: bool = false; // optimizer_step_scalar: update the bias (as optimizer_step_bias)

// prelude.wgsl: the hyper-parameters (n, offGrad unused; off: the bias's element offset, for the bias update).
@group(0) @binding(19) var<uniform> opt: OptimizerParams;
@group(0) @binding(20) var<storage, read_write> opt_w4: array<vec4f>;
@group(0) @binding(21) var<storage, read_write> opt_m4: array<vec4f>;  // Adam's m, or the momentum accumulator
@group(0) @binding(22) var<storage, read_write> opt_v4: array<vec4f>;  // Adam's v
@group(0) @binding(23) var<storage, read> opt_t: array<u32>;           // the GPU step counter
@group(0) @binding(24) var<storage, read> opt_control: array<f32>;     // [lr this step, …] (SCHEDULED)
// The weight and its state float by float (optimizer_step_scalar).
@group(0) @binding(26) var<storage, read_write> opt_w: array<f32>;
@group(0) @binding(27) var<storage, read_write> opt_m: array<f32>;
@group(0) @binding(28) var<storage, read_write> opt_v: array<f32>;
// The bias and its state (optimizer_step_bias, BIAS_UPDATE), from element opt.off.
@group(0) @binding(29) var<storage, read_write> opt_b: array<f32>;
@group(0) @binding(30) var<storage, read_write> opt_bm: array<f32>;
@group(0) @binding(31) var<storage, read_write> opt_bv: array<f32>;

// This step's learning rate, Adam's bias-corrected one, and the decoupled decay's factor.
struct OptRates { lr: f32, lr_t: f32, keep: f32 }

fn opt_rates() -> OptRates {
  var lr = opt.lr;
  if (SCHEDULED) { lr = opt_control[0]; }
  var lr_t = lr;
  if (OPTIMIZER == 3u) { lr_t = adam_step_size(lr, f32(opt_t[0] + opt.stepOffset), opt.logBeta1, opt.logBeta2); }
  return OptRates(lr, lr_t, decoupled_keep(DECAY == 2u, lr, opt.weightDecay));
}

// Four elements of a tensor and their optimizer state: m (Adam's, or the momentum accumulator) and
// v, zero where the optimizer has none.
struct OptState4 { w: vec4f, m: vec4f, v: vec4f }

// The optimizer's step on four elements from their gradient: prelude.wgsl's arithmetic, lane-wise.
fn opt_step4(s: OptState4, grad: vec4f, k: OptRates) -> OptState4 {
  let g = effective_grad4(grad, s.w, 1.0, DECAY == 1u, opt.weightDecay);
  if (OPTIMIZER == 1u) { return OptState4(sgd_update4(s.w, g, k.lr), s.m, s.v); }
  if (OPTIMIZER == 2u) {
    let r = momentum_update4(s.w, g, s.m, k.lr, opt.momentum, NESTEROV);
    return OptState4(r.w, r.a, s.v);
  }
  let r = adam_update4(s.w, g, s.m, s.v, opt.oneMinusBeta1, opt.oneMinusBeta2, k.lr_t, opt.epsilon, k.keep);
  return OptState4(r.w, r.m, r.v);
}

// The weight's rows of this invocation's tile, whole column quads from quad (offC + row·ldc + j0)/4.
fn update_rows4(row0: u32, j0: u32, acc: ptr<function, array<vec4f, TMAX>>, k: OptRates) {
  // A trip count the compiler cannot unroll: unrolled, every row's loads and stores swamp the
  // epilogue (BENCHMARKS.md, "Fusion passes").
  let rows = min(TM, params.M - row0);
  for (var r = 0u; r < rows; r++) {
    let at = (params.offC + (row0 + r) * params.ldc + j0) / 4u;
    var s = OptState4(opt_w4[at], vec4f(0.0), vec4f(0.0));
    if (OPTIMIZER >= 2u) { s.m = opt_m4[at]; }
    if (OPTIMIZER == 3u) { s.v = opt_v4[at]; }
    s = opt_step4(s, (*acc)[r], k);
    if (OPTIMIZER >= 2u) { opt_m4[at] = s.m; }
    if (OPTIMIZER == 3u) { opt_v4[at] = s.v; }
    opt_w4[at] = s.w;
  }
}

// Columns j0..j0+3 of a row (clamped to the last; those past it are never stored).
fn quad_columns(j0: u32) -> vec4u {
  let last = params.N - 1u;
  return vec4u(j0, min(j0 + 1u, last), min(j0 + 2u, last), min(j0 + 3u, last));
}

// The weight's rows of this invocation's tile, float by float from element offC + row·ldc + j.
fn update_rows_scalar(row0: u32, j0: u32, acc: ptr<function, array<vec4f, TMAX>>, k: OptRates) {
  let cols = quad_columns(j0);
  let valid = min(4u, params.N - j0);
  let rows = min(TM, params.M - row0);
  for (var r = 0u; r < rows; r++) {
    let e = params.offC + (row0 + r) * params.ldc + cols;
    var s = OptState4(vec4f(opt_w[e.x], opt_w[e.y], opt_w[e.z], opt_w[e.w]), vec4f(0.0), vec4f(0.0));
    if (OPTIMIZER >= 2u) { s.m = vec4f(opt_m[e.x], opt_m[e.y], opt_m[e.z], opt_m[e.w]); }
    if (OPTIMIZER == 3u) { s.v = vec4f(opt_v[e.x], opt_v[e.y], opt_v[e.z], opt_v[e.w]); }
    s = opt_step4(s, (*acc)[r], k);
    for (var c = 0u; c < valid; c++) {
      if (OPTIMIZER >= 2u) { opt_m[e[c]] = s.m[c]; }
      if (OPTIMIZER == 3u) { opt_v[e[c]] = s.v[c]; }
      opt_w[e[c]] = s.w[c];
    }
  }
}

// The bias at columns j0..j0+3 from their gradient, the tile's column sums: in the first row of
// workgroups, which sum the whole batch (the product is never split when it fuses a bias gradient).
fn update_bias(wid: vec3u, j0: u32, colsum: vec4f, k: OptRates) {
  if (wid.y != 0u) { return; }
  let e = opt.off + quad_columns(j0);
  var s = OptState4(vec4f(opt_b[e.x], opt_b[e.y], opt_b[e.z], opt_b[e.w]), vec4f(0.0), vec4f(0.0));
  if (OPTIMIZER >= 2u) { s.m = vec4f(opt_bm[e.x], opt_bm[e.y], opt_bm[e.z], opt_bm[e.w]); }
  if (OPTIMIZER == 3u) { s.v = vec4f(opt_bv[e.x], opt_bv[e.y], opt_bv[e.z], opt_bv[e.w]); }
  s = opt_step4(s, colsum, k);
  for (var c = 0u; c < min(4u, params.N - j0); c++) {
    if (OPTIMIZER >= 2u) { opt_bm[e[c]] = s.m[c]; }
    if (OPTIMIZER == 3u) { opt_bv[e[c]] = s.v[c]; }
    opt_b[e[c]] = s.w[c];
  }
}

@compute @workgroup_size(WG)
fn optimizer_step(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
                  @builtin(subgroup_invocation_id) lane: u32) {
  var acc: array<vec4f, TMAX>;
  var colsum = vec4f(0.0);
  tile(wid, lid, lane, &acc, &colsum);
  let j0 = (wid.x * WG + lid.x) * 4u;
  if (j0 >= params.N) { return; }
  store_bias_grad(wid, j0, colsum);
  update_rows4(wid.y * TM, j0, &acc, opt_rates());
}

@compute @workgroup_size(WG)
fn optimizer_step_bias(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
                       @builtin(subgroup_invocation_id) lane: u32) {
  var acc: array<vec4f, TMAX>;
  var colsum = vec4f(0.0);
  tile(wid, lid, lane, &acc, &colsum);
  let j0 = (wid.x * WG + lid.x) * 4u;
  if (j0 >= params.N) { return; }
  let k = opt_rates();
  update_bias(wid, j0, colsum, k);
  update_rows4(wid.y * TM, j0, &acc, k);
}

@compute @workgroup_size(WG)
fn optimizer_step_scalar(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
                         @builtin(subgroup_invocation_id) lane: u32) {
  var acc: array<vec4f, TMAX>;
  var colsum = vec4f(0.0);
  tile(wid, lid, lane, &acc, &colsum);
  let j0 = (wid.x * WG + lid.x) * 4u;
  if (j0 >= params.N) { return; }
  let k = opt_rates();
  if (BIAS_UPDATE) { update_bias(wid, j0, colsum, k); } else { store_bias_grad(wid, j0, colsum); }
  update_rows_scalar(wid.y * TM, j0, &acc, k);
}
