// NHWC convolution as an implicit GEMM: the three products of a convolution, each a tiled
// C[M, N] = A[M, K] · B[K, N] whose A operand is never stored. Each workgroup gathers its tile of A
// (patch elements of x, or of dy) into workgroup memory while loading it, so there is no im2col or
// col2im buffer and each input element is read once per tile instead of written and read again.
//
//   MODE 0, y = x ⊛ filter:  M = batch·outH·outW (n, oh, ow), K = kH·kW·inC (ki, kj, ci), N = outC;
//           A(m, k) = x[n, oh·sH + ki − padTop, ow·sW + kj − padLeft, ci] (0 outside: padding),
//           B = filter as [K, outC]; bias and the activation in the epilogue.
//   MODE 1, dx = dy ⊛ᵀ filter: M = batch·inH·inW (n, ih, iw), K = kH·kW·outC (ki, kj, co), N = inC;
//           A(m, k) = dy[n, oh, ow, co] where oh·sH = ih + padTop − ki (likewise ow), 0 where no
//           output pixel is there; B(k, ci) = filter[ki, kj, ci, co].
//   MODE 2, dFilter = patchesᵀ · dy: M = kH·kW·inC (ki, kj, ci), K = batch·outH·outW, N = outC;
//           A(m, k) = the forward's A(k, m), B = dy as [K, outC].
//
// Workgroup: WGS invocations = WGS rows of C (BM) × 4·T columns (BN). Invocation t owns T rows
// (row group t / T) × 4 columns (quad t % T) of the tile, accumulated in registers.
// Per tile of KT k's:
//  - A: invocation t gathers row t of the tile, KT consecutive k's, into As as vec4s of 4 k's.
//    The row's coordinates are worked out once per dispatch and the k coordinates are counters
//    stepped along (no division per element): on llvmpipe (lanes run in SIMD; each storage load
//    is issued lane by lane, integer division is not vectorized) the loads are the cost.
//    VEC_SRC: the 4 k's are 4 channels of one tap, one vec4 load.
//  - B: the tile's KT × 4T values, as vec4s along n, spread over the workgroup.
//  - then 4 k's per step: 4 vec4 of B and T vec4 of A feed 16·T FMAs.
// Out-of-range rows, columns and k's are clamped for loading (addresses stay in range) and zeroed
// (k) or not stored (rows, columns).
//
// Where it runs (src/kernels/conv2d.ts conv2dKernelFor): where matmul would use its workgroup-memory
// tiles (a GPU, products at least 64 wide both ways). On a software adapter the subgroup kernel
// computes the same products (shaders/matmul_subgroup.wgsl, CONV): there every invocation reading
// its T rows of A from workgroup memory itself (issued lane by lane) made this kernel slower than
// even im2col + matmul.

override MODE: u32 = 0u;
override VEC_SRC: bool = false;   // MODE 0: inC % 4 == 0; MODE 1: outC % 4 == 0 (channel quads of src)
override VEC_B: bool = false;     // MODE 0, 2: N % 4 == 0 (B rows read as vec4)
override HAS_BIAS: bool = false;  // MODE 0: add bias[n] before the activation
override ACTIVATION: u32 = 0u;    // an activation code of prelude.wgsl
override ACCUMULATE: bool = false; // C += result
override T: u32 = 16u;            // rows of C per invocation = column quads per workgroup (≤ TMAX)
override WGS: u32 = 64u;          // invocations = rows of C per workgroup, a multiple of T
override KT: u32 = 16u;           // k's per tile, a multiple of 4

const TMAX: u32 = 16u;

struct Params {
  batch: u32, inH: u32, inW: u32, inC: u32,
  kH: u32, kW: u32, outH: u32, outW: u32,
  strideH: u32, strideW: u32, padTop: u32, padLeft: u32,
  outC: u32, M: u32, N: u32, K: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// The gathered operand: x (MODE 0, 2) or dy (MODE 1); src4 is the same buffer.
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> src4: array<vec4f>;
// The dense operand: the filter (MODE 0, 1) or dy (MODE 2); B4 is the same buffer.
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read> B4: array<vec4f>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> C: array<f32>;
// C as vec4s, for main_c4 (N % 4 == 0).
@group(0) @binding(7) var<storage, read_write> C4: array<vec4f>;

var<workgroup> As: array<vec4f, WGS * KT / 4u>; // [KT/4][WGS]: A(row, 4q .. 4q+3)
var<workgroup> Bs: array<vec4f, KT * T>;        // [KT][T]: B(k, 4c .. 4c+3)

// This invocation's row of A, fixed for the dispatch (see rowSetup).
var<private> rowA: i32;
var<private> rowB: i32;
var<private> rowC: u32;

// The k counters: c0 fastest (limit L0), then c1 (limit L1), then c2.
//   MODE 0: (ci, kj, ki); MODE 1: (co, kj, ki); MODE 2: (ow, oh, n).
fn limits() -> vec2u {
  if (MODE == 0u) { return vec2u(params.inC, params.kW); }
  if (MODE == 1u) { return vec2u(params.outC, params.kW); }
  return vec2u(params.outW, params.outH);
}

// Row m's coordinates: MODE 0: (oh·sH − padTop, ow·sW − padLeft, n·inH); MODE 1: (ih + padTop,
// iw + padLeft, n); MODE 2: (ki − padTop, kj − padLeft, ci).
fn rowSetup(m: u32) {
  let p = params;
  if (MODE == 0u) {
    let ow = m % p.outW;
    let oh = (m / p.outW) % p.outH;
    let n = m / (p.outW * p.outH);
    rowA = i32(oh * p.strideH) - i32(p.padTop);
    rowB = i32(ow * p.strideW) - i32(p.padLeft);
    rowC = n * p.inH;
  } else if (MODE == 1u) {
    let iw = m % p.inW;
    let ih = (m / p.inW) % p.inH;
    rowA = i32(ih + p.padTop);
    rowB = i32(iw + p.padLeft);
    rowC = m / (p.inW * p.inH);
  } else {
    let ci = m % p.inC;
    let kj = (m / p.inC) % p.kW;
    let ki = m / (p.inC * p.kW);
    rowA = i32(ki) - i32(p.padTop);
    rowB = i32(kj) - i32(p.padLeft);
    rowC = ci;
  }
}

struct Tap { base: u32, ok: bool }

// Where the element at counters (c0, c1, c2) lies in src and whether it exists (not padding).
// MODE 0, 1: the base of the tap (c1, c2), to which c0 (the channel) is added; MODE 2: the element.
fn tapAt(c0: u32, c1: u32, c2: u32) -> Tap {
  let p = params;
  if (MODE == 0u) {
    let ih = rowA + i32(c2);
    let iw = rowB + i32(c1);
    let ok = ih >= 0 && ih < i32(p.inH) && iw >= 0 && iw < i32(p.inW);
    let sh = u32(clamp(ih, 0, i32(p.inH) - 1));
    let sw = u32(clamp(iw, 0, i32(p.inW) - 1));
    return Tap(((rowC + sh) * p.inW + sw) * p.inC, ok);
  }
  if (MODE == 1u) {
    let dh = rowA - i32(c2);
    let dw = rowB - i32(c1);
    let oh = u32(max(dh, 0)) / p.strideH;
    let ow = u32(max(dw, 0)) / p.strideW;
    let ok = dh >= 0 && dw >= 0 && oh * p.strideH == u32(dh) && ow * p.strideW == u32(dw) && oh < p.outH && ow < p.outW;
    return Tap(((rowC * p.outH + min(oh, p.outH - 1u)) * p.outW + min(ow, p.outW - 1u)) * p.outC, ok);
  }
  let ih = i32(c1 * p.strideH) + rowA;
  let iw = i32(c0 * p.strideW) + rowB;
  let ok = ih >= 0 && ih < i32(p.inH) && iw >= 0 && iw < i32(p.inW);
  let sh = u32(clamp(ih, 0, i32(p.inH) - 1));
  let sw = u32(clamp(iw, 0, i32(p.inW) - 1));
  return Tap(((min(c2, p.batch - 1u) * p.inH + sh) * p.inW + sw) * p.inC + rowC, ok);
}

// Row k (clamped) of the dense B at columns n0 .. n0+3 (clamped; extra columns are never stored).
fn bQuad(k: u32, n0: u32) -> vec4f {
  let p = params;
  let kk = min(k, p.K - 1u);
  var v: vec4f;
  if (MODE == 1u) {
    // B(k, ci) = filter[(tap·inC + ci)·outC + co] with k = tap·outC + co.
    let tap = kk / p.outC;
    let co = kk - tap * p.outC;
    let base = tap * p.inC;
    let last = p.N - 1u;
    v = vec4f(B[(base + min(n0, last)) * p.outC + co], B[(base + min(n0 + 1u, last)) * p.outC + co],
              B[(base + min(n0 + 2u, last)) * p.outC + co], B[(base + min(n0 + 3u, last)) * p.outC + co]);
  } else if (VEC_B) {
    v = B4[(kk * p.N + min(n0, p.N - 4u)) / 4u];
  } else {
    let last = p.N - 1u;
    let row = kk * p.N;
    v = vec4f(B[row + min(n0, last)], B[row + min(n0 + 1u, last)], B[row + min(n0 + 2u, last)], B[row + min(n0 + 3u, last)]);
  }
  return select(vec4f(0.0), v, k < p.K);
}

// This invocation's T × 4 block of the product, rows wid.y·WGS + (t / T)·T .., columns
// (wid.x·T + t % T)·4 ...
fn tile(wid: vec3u, t: u32, acc: ptr<function, array<vec4f, TMAX>>) {
  let p = params;
  let K = p.K;
  let lim = limits();
  rowSetup(min(wid.y * WGS + t, p.M - 1u));
  var c0 = 0u;
  var c1 = 0u;
  var c2 = 0u;
  var tap = tapAt(0u, 0u, 0u);
  var k = 0u;
  let g = (t / T) * T; // first row of this invocation's block within the tile
  let cq = t % T;
  let nBase = wid.x * T * 4u;

  for (var k0 = 0u; k0 < K; k0 += KT) {
    // A: row t of the tile, k0 .. k0 + KT − 1, gathered.
    for (var q = 0u; q < KT / 4u; q++) {
      var v: vec4f;
      if (VEC_SRC) {
        v = select(vec4f(0.0), src4[(tap.base + c0) / 4u], tap.ok && k < K);
        k += 4u;
        c0 += 4u;
        if (c0 == lim.x) {
          c0 = 0u;
          c1++;
          if (c1 == lim.y) { c1 = 0u; c2++; }
          tap = tapAt(c0, c1, c2);
        }
      } else {
        for (var e = 0u; e < 4u; e++) {
          if (MODE == 2u) { tap = tapAt(c0, c1, c2); }
          let at = select(tap.base + c0, tap.base, MODE == 2u);
          v[e] = select(0.0, src[at], tap.ok && k < K);
          k++;
          c0++;
          if (c0 == lim.x) {
            c0 = 0u;
            c1++;
            if (c1 == lim.y) { c1 = 0u; c2++; }
            if (MODE != 2u) { tap = tapAt(c0, c1, c2); }
          }
        }
      }
      As[q * WGS + t] = v;
    }
    // B: KT rows × T column quads, spread over the workgroup.
    for (var e = t; e < KT * T; e += WGS) {
      Bs[e] = bQuad(k0 + e / T, nBase + (e % T) * 4u);
    }
    workgroupBarrier();
    for (var q = 0u; q < KT / 4u; q++) {
      let b0 = Bs[(4u * q) * T + cq];
      let b1 = Bs[(4u * q + 1u) * T + cq];
      let b2 = Bs[(4u * q + 2u) * T + cq];
      let b3 = Bs[(4u * q + 3u) * T + cq];
      for (var r = 0u; r < T; r++) {
        let a = As[q * WGS + g + r];
        (*acc)[r] = fma(vec4f(a.w), b3, fma(vec4f(a.z), b2, fma(vec4f(a.y), b1, fma(vec4f(a.x), b0, (*acc)[r]))));
      }
    }
    workgroupBarrier();
  }
}

fn bias_at(n0: u32) -> vec4f {
  if (!HAS_BIAS) { return vec4f(0.0); }
  let last = params.N - 1u;
  return vec4f(bias[n0], bias[min(n0 + 1u, last)], bias[min(n0 + 2u, last)], bias[min(n0 + 3u, last)]);
}

@compute @workgroup_size(WGS)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  var acc: array<vec4f, TMAX>;
  tile(wid, t, &acc);
  let n0 = (wid.x * T + t % T) * 4u;
  if (n0 >= params.N) { return; }
  let add = bias_at(n0);
  let ncols = min(4u, params.N - n0);
  let m0 = wid.y * WGS + (t / T) * T;
  for (var r = 0u; r < T; r++) {
    let m = m0 + r;
    if (m >= params.M) { break; }
    let v = activate4(ACTIVATION, acc[r] + add);
    let base = m * params.N + n0;
    for (var c = 0u; c < ncols; c++) {
      var x = v[c];
      if (ACCUMULATE) { x += C[base + c]; }
      C[base + c] = x;
    }
  }
}

// main with C stored as vec4s (N % 4 == 0, so every column quad is whole).
@compute @workgroup_size(WGS)
fn main_c4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  var acc: array<vec4f, TMAX>;
  tile(wid, t, &acc);
  let n0 = (wid.x * T + t % T) * 4u;
  if (n0 >= params.N) { return; }
  let add = bias_at(n0);
  let m0 = wid.y * WGS + (t / T) * T;
  for (var r = 0u; r < T; r++) {
    let m = m0 + r;
    if (m >= params.M) { break; }
    var v = activate4(ACTIVATION, acc[r] + add);
    let at = (m * params.N + n0) / 4u;
    if (ACCUMULATE) { v += C4[at]; }
    C4[at] = v;
  }
}
