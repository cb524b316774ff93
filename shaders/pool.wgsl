// Max and average pooling over NHWC tensors (TensorFlow's layout, SAME/VALID padding), and their
// backward passes as gathers over input pixels (no atomics).
//
// x: [batch, inH, inW, C] → y: [batch, outH, outW, C]. The window of output (oh, ow) covers input
// rows oh·strideH − padTop … + kH − 1 (likewise columns); padded positions never take part:
// max pool ignores them and average pool divides by the number of in-bounds elements, as TF does.
// Lanes run along channels (contiguous); each workgroup walks a block of pixels that is the same
// for every lane, so window bounds and loop trip counts are uniform (no divergent branches).

override WG: u32 = 64u;            // lanes (channels) per workgroup
override ACCUMULATE: bool = false; // backward: dx += result instead of dx = result
// Backward: dx holds on entry the output y = f(v) of the activation that made the pooled tensor,
// and the result is multiplied by f' (an activation code of prelude.wgsl, through y): the
// gradient before that activation, written in place of y, so the op that applied f need not
// (src/graph/fuse-activation-grads.ts). 0: none. Not with ACCUMULATE.
override ACT_GRAD: u32 = 0u;

struct Params {
  batch: u32, inH: u32, inW: u32, C: u32,
  kH: u32, kW: u32, outH: u32, outW: u32,
  strideH: u32, strideW: u32, padTop: u32, padLeft: u32,
  rowsPerGroup: u32, // output pixels (forward) or input pixels (backward) per workgroup
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;   // written by maxPool
@group(0) @binding(4) var<storage, read> argmaxIn: array<u32>;       // read by maxPoolBackward
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

// In-bounds input range [lo, hi) of the window starting at o·stride − pad along one dimension.
fn windowRange(o: u32, stride: u32, pad: u32, k: u32, size: u32) -> vec2u {
  let start = i32(o * stride) - i32(pad);
  let lo = u32(max(start, 0));
  let hi = u32(min(start + i32(k), i32(size)));
  return vec2u(lo, hi);
}

// Output pixels q with a window covering input position t (after adding the padding): the q with
// 0 ≤ t − q·stride < k, i.e. [ceil((t − k + 1)/stride), t/stride], clipped to [0, out). Returns [lo, hi).
fn coveringRange(t: u32, stride: u32, k: u32, out: u32) -> vec2u {
  let lo = select(0u, (t - k + stride) / stride, t >= k);
  let hi = min(t / stride + 1u, out);
  return vec2u(lo, hi);
}

struct Pixel { n: u32, h: u32, w: u32 }

// (n, h, w) of flat pixel index p of a [batch, H, W] grid.
fn pixelOf(p: u32, H: u32, W: u32) -> Pixel {
  return Pixel(p / (H * W), (p / W) % H, p % W);
}

fn nextPixel(q: Pixel, H: u32, W: u32) -> Pixel {
  var r = q;
  r.w++;
  if (r.w == W) {
    r.w = 0u;
    r.h++;
    if (r.h == H) { r.h = 0u; r.n++; }
  }
  return r;
}

// y = max over the window; argmax = flat index into x of the first maximum in row-major window order.
@compute @workgroup_size(WG)
fn maxPool(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let C = params.C;
  let c = wid.x * WG + lid.x;
  if (c >= C) { return; }
  let total = params.batch * params.outH * params.outW;
  let o0 = wid.y * params.rowsPerGroup;
  let o1 = min(o0 + params.rowsPerGroup, total);
  var q = pixelOf(o0, params.outH, params.outW);
  for (var o = o0; o < o1; o++) {
    let rh = windowRange(q.h, params.strideH, params.padTop, params.kH, params.inH);
    let rw = windowRange(q.w, params.strideW, params.padLeft, params.kW, params.inW);
    var bi = ((q.n * params.inH + rh.x) * params.inW + rw.x) * C + c;
    var best = x[bi];
    for (var ih = rh.x; ih < rh.y; ih++) {
      let rowBase = (q.n * params.inH + ih) * params.inW;
      for (var iw = rw.x; iw < rw.y; iw++) {
        let idx = (rowBase + iw) * C + c;
        let v = x[idx];
        let better = v > best;
        best = select(best, v, better);
        bi = select(bi, idx, better);
      }
    }
    y[o * C + c] = best;
    argmax[o * C + c] = bi;
    q = nextPixel(q, params.outH, params.outW);
  }
}

// y = mean over the in-bounds part of the window.
@compute @workgroup_size(WG)
fn avgPool(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let C = params.C;
  let c = wid.x * WG + lid.x;
  if (c >= C) { return; }
  let total = params.batch * params.outH * params.outW;
  let o0 = wid.y * params.rowsPerGroup;
  let o1 = min(o0 + params.rowsPerGroup, total);
  var q = pixelOf(o0, params.outH, params.outW);
  for (var o = o0; o < o1; o++) {
    let rh = windowRange(q.h, params.strideH, params.padTop, params.kH, params.inH);
    let rw = windowRange(q.w, params.strideW, params.padLeft, params.kW, params.inW);
    var s = 0.0;
    for (var ih = rh.x; ih < rh.y; ih++) {
      let rowBase = (q.n * params.inH + ih) * params.inW;
      for (var iw = rw.x; iw < rw.y; iw++) { s += x[(rowBase + iw) * C + c]; }
    }
    y[o * C + c] = s / f32((rh.y - rh.x) * (rw.y - rw.x));
    q = nextPixel(q, params.outH, params.outW);
  }
}

// dx[i] (+)= Σ dy[o] over the windows o covering input element i whose argmax is i.
@compute @workgroup_size(WG)
fn maxPoolBackward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let C = params.C;
  let c = wid.x * WG + lid.x;
  if (c >= C) { return; }
  let total = params.batch * params.inH * params.inW;
  let p0 = wid.y * params.rowsPerGroup;
  let p1 = min(p0 + params.rowsPerGroup, total);
  var q = pixelOf(p0, params.inH, params.inW);
  for (var p = p0; p < p1; p++) {
    let idx = p * C + c;
    let rh = coveringRange(q.h + params.padTop, params.strideH, params.kH, params.outH);
    let rw = coveringRange(q.w + params.padLeft, params.strideW, params.kW, params.outW);
    var s = 0.0;
    for (var oh = rh.x; oh < rh.y; oh++) {
      let rowBase = (q.n * params.outH + oh) * params.outW;
      for (var ow = rw.x; ow < rw.y; ow++) {
        let o = (rowBase + ow) * C + c;
        s += select(0.0, dy[o], argmaxIn[o] == idx);
      }
    }
    if (ACCUMULATE) { s += dx[idx]; }
    if (ACT_GRAD != 0u) { s *= activation_grad_from_y(ACT_GRAD, dx[idx]); }
    dx[idx] = s;
    q = nextPixel(q, params.inH, params.inW);
  }
}

// dx[i] (+)= Σ dy[o] / (in-bounds size of window o) over the windows o covering input element i.
@compute @workgroup_size(WG)
fn avgPoolBackward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let C = params.C;
  let c = wid.x * WG + lid.x;
  if (c >= C) { return; }
  let total = params.batch * params.inH * params.inW;
  let p0 = wid.y * params.rowsPerGroup;
  let p1 = min(p0 + params.rowsPerGroup, total);
  var q = pixelOf(p0, params.inH, params.inW);
  for (var p = p0; p < p1; p++) {
    let rh = coveringRange(q.h + params.padTop, params.strideH, params.kH, params.outH);
    let rw = coveringRange(q.w + params.padLeft, params.strideW, params.kW, params.outW);
    var s = 0.0;
    for (var oh = rh.x; oh < rh.y; oh++) {
      let wh = windowRange(oh, params.strideH, params.padTop, params.kH, params.inH);
      let rowBase = (q.n * params.outH + oh) * params.outW;
      for (var ow = rw.x; ow < rw.y; ow++) {
        let ww = windowRange(ow, params.strideW, params.padLeft, params.kW, params.inW);
        s += dy[(rowBase + ow) * C + c] / f32((wh.y - wh.x) * (ww.y - ww.x));
      }
    }
    let idx = p * C + c;
    if (ACCUMULATE) { s += dx[idx]; }
    if (ACT_GRAD != 0u) { s *= activation_grad_from_y(ACT_GRAD, dx[idx]); }
    dx[idx] = s;
    q = nextPixel(q, params.inH, params.inW);
  }
}

// The same four kernels four channels per lane (C % 4 == 0): one vec4 load/store instead of four
// scalar ones, and the per-pixel window arithmetic done once for four channels. Lane c4 handles
// channels 4·c4 … 4·c4 + 3; indices into the tensors stay in scalar elements.
@group(0) @binding(7) var<storage, read> x4: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> y4: array<vec4f>;
@group(0) @binding(9) var<storage, read_write> argmax4: array<vec4u>;
@group(0) @binding(10) var<storage, read> argmaxIn4: array<vec4u>;
@group(0) @binding(11) var<storage, read> dy4: array<vec4f>;
@group(0) @binding(12) var<storage, read_write> dx4: array<vec4f>;

const LANE4 = vec4u(0u, 1u, 2u, 3u);

@compute @workgroup_size(WG)
fn maxPool4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let C4 = params.C / 4u;
  let c4 = wid.x * WG + lid.x;
  if (c4 >= C4) { return; }
  let total = params.batch * params.outH * params.outW;
  let o0 = wid.y * params.rowsPerGroup;
  let o1 = min(o0 + params.rowsPerGroup, total);
  var q = pixelOf(o0, params.outH, params.outW);
  for (var o = o0; o < o1; o++) {
    let rh = windowRange(q.h, params.strideH, params.padTop, params.kH, params.inH);
    let rw = windowRange(q.w, params.strideW, params.padLeft, params.kW, params.inW);
    let first = (q.n * params.inH + rh.x) * params.inW + rw.x;
    var best = x4[first * C4 + c4];
    var bi = vec4u(first * params.C + 4u * c4) + LANE4;
    for (var ih = rh.x; ih < rh.y; ih++) {
      let rowBase = (q.n * params.inH + ih) * params.inW;
      for (var iw = rw.x; iw < rw.y; iw++) {
        let v = x4[(rowBase + iw) * C4 + c4];
        let better = v > best;
        best = select(best, v, better);
        bi = select(bi, vec4u((rowBase + iw) * params.C + 4u * c4) + LANE4, better);
      }
    }
    y4[o * C4 + c4] = best;
    argmax4[o * C4 + c4] = bi;
    q = nextPixel(q, params.outH, params.outW);
  }
}

@compute @workgroup_size(WG)
fn avgPool4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let C4 = params.C / 4u;
  let c4 = wid.x * WG + lid.x;
  if (c4 >= C4) { return; }
  let total = params.batch * params.outH * params.outW;
  let o0 = wid.y * params.rowsPerGroup;
  let o1 = min(o0 + params.rowsPerGroup, total);
  var q = pixelOf(o0, params.outH, params.outW);
  for (var o = o0; o < o1; o++) {
    let rh = windowRange(q.h, params.strideH, params.padTop, params.kH, params.inH);
    let rw = windowRange(q.w, params.strideW, params.padLeft, params.kW, params.inW);
    var s = vec4f(0.0);
    for (var ih = rh.x; ih < rh.y; ih++) {
      let rowBase = (q.n * params.inH + ih) * params.inW;
      for (var iw = rw.x; iw < rw.y; iw++) { s += x4[(rowBase + iw) * C4 + c4]; }
    }
    y4[o * C4 + c4] = s / f32((rh.y - rh.x) * (rw.y - rw.x));
    q = nextPixel(q, params.outH, params.outW);
  }
}

@compute @workgroup_size(WG)
fn maxPoolBackward4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let C4 = params.C / 4u;
  let c4 = wid.x * WG + lid.x;
  if (c4 >= C4) { return; }
  let total = params.batch * params.inH * params.inW;
  let p0 = wid.y * params.rowsPerGroup;
  let p1 = min(p0 + params.rowsPerGroup, total);
  var q = pixelOf(p0, params.inH, params.inW);
  for (var p = p0; p < p1; p++) {
    let idx = vec4u(p * params.C + 4u * c4) + LANE4;
    let rh = coveringRange(q.h + params.padTop, params.strideH, params.kH, params.outH);
    let rw = coveringRange(q.w + params.padLeft, params.strideW, params.kW, params.outW);
    var s = vec4f(0.0);
    for (var oh = rh.x; oh < rh.y; oh++) {
      let rowBase = (q.n * params.outH + oh) * params.outW;
      for (var ow = rw.x; ow < rw.y; ow++) {
        let o = (rowBase + ow) * C4 + c4;
        s += select(vec4f(0.0), dy4[o], argmaxIn4[o] == idx);
      }
    }
    let i4 = p * C4 + c4;
    if (ACCUMULATE) { s += dx4[i4]; }
    if (ACT_GRAD != 0u) { s *= activation_grad_from_y4(ACT_GRAD, dx4[i4]); }
    dx4[i4] = s;
    q = nextPixel(q, params.inH, params.inW);
  }
}

@compute @workgroup_size(WG)
fn avgPoolBackward4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let C4 = params.C / 4u;
  let c4 = wid.x * WG + lid.x;
  if (c4 >= C4) { return; }
  let total = params.batch * params.inH * params.inW;
  let p0 = wid.y * params.rowsPerGroup;
  let p1 = min(p0 + params.rowsPerGroup, total);
  var q = pixelOf(p0, params.inH, params.inW);
  for (var p = p0; p < p1; p++) {
    let rh = coveringRange(q.h + params.padTop, params.strideH, params.kH, params.outH);
    let rw = coveringRange(q.w + params.padLeft, params.strideW, params.kW, params.outW);
    var s = vec4f(0.0);
    for (var oh = rh.x; oh < rh.y; oh++) {
      let wh = windowRange(oh, params.strideH, params.padTop, params.kH, params.inH);
      let rowBase = (q.n * params.outH + oh) * params.outW;
      for (var ow = rw.x; ow < rw.y; ow++) {
        let ww = windowRange(ow, params.strideW, params.padLeft, params.kW, params.inW);
        s += dy4[(rowBase + ow) * C4 + c4] / f32((wh.y - wh.x) * (ww.y - ww.x));
      }
    }
    let i4 = p * C4 + c4;
    if (ACCUMULATE) { s += dx4[i4]; }
    if (ACT_GRAD != 0u) { s *= activation_grad_from_y4(ACT_GRAD, dx4[i4]); }
    dx4[i4] = s;
    q = nextPixel(q, params.inH, params.inW);
  }
}
