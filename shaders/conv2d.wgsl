// im2col and col2im for NHWC convolution (TensorFlow's layout); the products are matmuls.
//
// x: [batch, inH, inW, inC]; filter [kH, kW, inC, outC] read as a [kH·kW·inC, outC] matrix;
// cols: [batch·outH·outW, kH·kW·inC], row (n, oh, ow), column (ki, kj, ci), so that
// y[batch·outH·outW, outC] = cols · filter. Input row ih = oh·strideH + ki − padTop (likewise w);
// taps outside the input read as zero (padding).
//
// Lanes run along the contiguous last index (the patch column for im2col, the input channel for
// col2im) and each workgroup walks a block of rows/pixels that is the same for every lane, so the
// loop bounds and the padding/stride tests are uniform (no divergent branches) and the per-lane
// index arithmetic (divisions) is done once per invocation, not once per element.
// im2col4/col2im4 (at the end) do the same four channels per lane, for inC % 4 == 0.

override WG: u32 = 64u;            // lanes per workgroup
override ACCUMULATE: bool = false; // col2im: dx += result instead of dx = result

struct Params {
  batch: u32, inH: u32, inW: u32, inC: u32,
  kH: u32, kW: u32, outH: u32, outW: u32,
  strideH: u32, strideW: u32, padTop: u32, padLeft: u32,
  patchLen: u32,     // kH·kW·inC: the width of a cols row
  rowsPerGroup: u32, // cols rows (im2col) or input pixels (col2im) per workgroup
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;
@group(0) @binding(3) var<storage, read> dcols: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

// cols[r, c] = x[n, oh·sH + ki − padTop, ow·sW + kj − padLeft, ci], zero outside the input.
@compute @workgroup_size(WG)
fn im2col(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let P = params.patchLen;
  let c = wid.x * WG + lid.x;
  if (c >= P) { return; }
  let inC = params.inC;
  let ci = c % inC;
  let kk = c / inC;
  let kj = kk % params.kW;
  let ki = kk / params.kW;
  let M = params.batch * params.outH * params.outW;
  let r0 = wid.y * params.rowsPerGroup;
  let r1 = min(r0 + params.rowsPerGroup, M);
  // (n, oh, ow) of row r0, then stepped along with r: uniform across the workgroup.
  var ow = r0 % params.outW;
  var oh = (r0 / params.outW) % params.outH;
  var n = r0 / (params.outW * params.outH);
  let inH = i32(params.inH);
  let inW = i32(params.inW);
  for (var r = r0; r < r1; r++) {
    let ih = i32(oh * params.strideH + ki) - i32(params.padTop);
    let iw = i32(ow * params.strideW + kj) - i32(params.padLeft);
    let inside = ih >= 0 && ih < inH && iw >= 0 && iw < inW;
    // Clamped address, so the load needs no branch; padding taps are replaced by zero.
    let sh = u32(clamp(ih, 0, inH - 1));
    let sw = u32(clamp(iw, 0, inW - 1));
    let v = x[((n * params.inH + sh) * params.inW + sw) * inC + ci];
    cols[r * P + c] = select(0.0, v, inside);
    ow++;
    if (ow == params.outW) {
      ow = 0u;
      oh++;
      if (oh == params.outH) { oh = 0u; n++; }
    }
  }
}

// dx[n, ih, iw, ci] (+)= Σ over the output pixels (oh, ow) whose window covers (ih, iw) of
// dcols[(n, oh, ow), (ki, kj, ci)] with ki = ih + padTop − oh·sH (likewise kj): a gather, each input
// pixel summing its own contributions. The covering range is computed once per pixel (a few
// divisions by uniform values), so the tap loops hold no division and no skipped iteration.
@compute @workgroup_size(WG)
fn col2im(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let inC = params.inC;
  let ci = wid.x * WG + lid.x;
  if (ci >= inC) { return; }
  let P = params.patchLen;
  let kH = params.kH;
  let kW = params.kW;
  let sH = params.strideH;
  let sW = params.strideW;
  let pixels = params.batch * params.inH * params.inW;
  let p0 = wid.y * params.rowsPerGroup;
  let p1 = min(p0 + params.rowsPerGroup, pixels);
  // (n, ih, iw) of pixel p0, then stepped along with p: uniform across the workgroup.
  var iw = p0 % params.inW;
  var ih = (p0 / params.inW) % params.inH;
  var n = p0 / (params.inW * params.inH);
  for (var p = p0; p < p1; p++) {
    // Output rows oh with 0 ≤ th − oh·sH < kH, i.e. ceil((th − kH + 1)/sH) ≤ oh ≤ th/sH.
    let th = ih + params.padTop;
    let tw = iw + params.padLeft;
    let ohLo = select(0u, (th - kH + sH) / sH, th >= kH);
    let ohHi = min(th / sH + 1u, params.outH); // exclusive
    let owLo = select(0u, (tw - kW + sW) / sW, tw >= kW);
    let owHi = min(tw / sW + 1u, params.outW);
    var s = 0.0;
    for (var oh = ohLo; oh < ohHi; oh++) {
      let ki = th - oh * sH;
      let rowBase = (n * params.outH + oh) * params.outW;
      for (var ow = owLo; ow < owHi; ow++) {
        let kj = tw - ow * sW;
        s += dcols[(rowBase + ow) * P + (ki * kW + kj) * inC + ci];
      }
    }
    let idx = p * inC + ci;
    if (ACCUMULATE) { s += dx[idx]; }
    dx[idx] = s;
    iw++;
    if (iw == params.inW) {
      iw = 0u;
      ih++;
      if (ih == params.inH) { ih = 0u; n++; }
    }
  }
}

// The same two kernels four channels at a time, for inC % 4 == 0 (then patchLen % 4 == 0 too):
// one vec4 load and store per lane instead of four scalar ones. Lane c4 is patch column 4·c4.
@group(0) @binding(5) var<storage, read> x4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> cols4: array<vec4f>;

@compute @workgroup_size(WG)
fn im2col4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let P4 = params.patchLen / 4u;
  let c4 = wid.x * WG + lid.x;
  if (c4 >= P4) { return; }
  let inC4 = params.inC / 4u;
  let ci4 = c4 % inC4;
  let kk = c4 / inC4;
  let kj = kk % params.kW;
  let ki = kk / params.kW;
  let M = params.batch * params.outH * params.outW;
  let r0 = wid.y * params.rowsPerGroup;
  let r1 = min(r0 + params.rowsPerGroup, M);
  var ow = r0 % params.outW;
  var oh = (r0 / params.outW) % params.outH;
  var n = r0 / (params.outW * params.outH);
  let inH = i32(params.inH);
  let inW = i32(params.inW);
  for (var r = r0; r < r1; r++) {
    let ih = i32(oh * params.strideH + ki) - i32(params.padTop);
    let iw = i32(ow * params.strideW + kj) - i32(params.padLeft);
    let inside = ih >= 0 && ih < inH && iw >= 0 && iw < inW;
    let sh = u32(clamp(ih, 0, inH - 1));
    let sw = u32(clamp(iw, 0, inW - 1));
    let v = x4[((n * params.inH + sh) * params.inW + sw) * inC4 + ci4];
    cols4[r * P4 + c4] = select(vec4f(0.0), v, inside);
    ow++;
    if (ow == params.outW) {
      ow = 0u;
      oh++;
      if (oh == params.outH) { oh = 0u; n++; }
    }
  }
}

@group(0) @binding(7) var<storage, read> dcols4: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> dx4: array<vec4f>;

@compute @workgroup_size(WG)
fn col2im4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let inC4 = params.inC / 4u;
  let ci4 = wid.x * WG + lid.x;
  if (ci4 >= inC4) { return; }
  let P4 = params.patchLen / 4u;
  let kH = params.kH;
  let kW = params.kW;
  let sH = params.strideH;
  let sW = params.strideW;
  let pixels = params.batch * params.inH * params.inW;
  let p0 = wid.y * params.rowsPerGroup;
  let p1 = min(p0 + params.rowsPerGroup, pixels);
  var iw = p0 % params.inW;
  var ih = (p0 / params.inW) % params.inH;
  var n = p0 / (params.inW * params.inH);
  for (var p = p0; p < p1; p++) {
    let th = ih + params.padTop;
    let tw = iw + params.padLeft;
    let ohLo = select(0u, (th - kH + sH) / sH, th >= kH);
    let ohHi = min(th / sH + 1u, params.outH);
    let owLo = select(0u, (tw - kW + sW) / sW, tw >= kW);
    let owHi = min(tw / sW + 1u, params.outW);
    var s = vec4f(0.0);
    for (var oh = ohLo; oh < ohHi; oh++) {
      let ki = th - oh * sH;
      let rowBase = (n * params.outH + oh) * params.outW;
      for (var ow = owLo; ow < owHi; ow++) {
        let kj = tw - ow * sW;
        s += dcols4[(rowBase + ow) * P4 + (ki * kW + kj) * inC4 + ci4];
      }
    }
    let idx = p * inC4 + ci4;
    if (ACCUMULATE) { s += dx4[idx]; }
    dx4[idx] = s;
    iw++;
    if (iw == params.inW) {
      iw = 0u;
      ih++;
      if (ih == params.inH) { ih = 0u; n++; }
    }
  }
}
