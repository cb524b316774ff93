// Copies and sums of whole tensors or of column blocks of them: the elementwise add and its
// gradient, concatenation along the last axis and its gradient (slices of dy).
//
//   copy     y[offY + r·ldY + c] (+)= scale · x[offX + r·ldX + c]   r < rows, c < cols
//            (a strided 2-D copy: a whole tensor when rows = 1; one input of a concat, or the
//            column range of dy that is its gradient, with ld = row lengths and off = column offset)
//   add      y[i] = x[i] + x2[i]                                     i < rows·cols (flat)
//   fanout   y[i] (+)= x[i], y2[i] (+)= x[i]                         the add's backward: dy read once
//
// The *4 entries do the same four floats at a time (vec4 loads and stores); the host picks them
// when every size, row length and offset is a multiple of 4, and then passes all of them in
// vec4 units. Grid-stride loops: any size works with any number of workgroups (the host caps the
// grid); copy walks (r, c) incrementally, so no division per element.

override WG: u32 = 64u;
override ACCUMULATE: bool = false;   // y += … instead of y = …
override ACCUMULATE2: bool = false;  // fanout: y2 += … instead of y2 = …

struct Params {
  rows: u32,
  cols: u32,
  ldX: u32,    // row length of x (elements between rows)
  ldY: u32,    // row length of y
  offX: u32,   // element offset of x's first element
  offY: u32,   // element offset of y's first element
  scale: f32,  // copy: factor on x (1 for a plain copy)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> x2: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> y2: array<f32>;
@group(0) @binding(5) var<storage, read> x4: array<vec4f>;
@group(0) @binding(6) var<storage, read> x24: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> y4: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> y24: array<vec4f>;

@compute @workgroup_size(WG)
fn copy(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let cols = params.cols;
  let n = params.rows * cols;
  let dr = stride / cols;       // (row, column) advance per grid stride
  let dc = stride % cols;
  var r = gid.x / cols;
  var c = gid.x % cols;
  for (var i = gid.x; i < n; i += stride) {
    let o = params.offY + r * params.ldY + c;
    var v = params.scale * x[params.offX + r * params.ldX + c];
    if (ACCUMULATE) { v += y[o]; }
    y[o] = v;
    r += dr;
    c += dc;
    if (c >= cols) { c -= cols; r++; }
  }
}

@compute @workgroup_size(WG)
fn copy4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let cols = params.cols;
  let n = params.rows * cols;
  let dr = stride / cols;
  let dc = stride % cols;
  var r = gid.x / cols;
  var c = gid.x % cols;
  for (var i = gid.x; i < n; i += stride) {
    let o = params.offY + r * params.ldY + c;
    var v = params.scale * x4[params.offX + r * params.ldX + c];
    if (ACCUMULATE) { v += y4[o]; }
    y4[o] = v;
    r += dr;
    c += dc;
    if (c >= cols) { c -= cols; r++; }
  }
}

@compute @workgroup_size(WG)
fn add(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let n = params.rows * params.cols;
  for (var i = gid.x; i < n; i += stride) { y[i] = x[i] + x2[i]; }
}

@compute @workgroup_size(WG)
fn add4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let n = params.rows * params.cols;
  for (var i = gid.x; i < n; i += stride) { y4[i] = x4[i] + x24[i]; }
}

@compute @workgroup_size(WG)
fn fanout(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let n = params.rows * params.cols;
  for (var i = gid.x; i < n; i += stride) {
    let g = x[i];
    var a = g;
    var b = g;
    if (ACCUMULATE) { a += y[i]; }
    if (ACCUMULATE2) { b += y2[i]; }
    y[i] = a;
    y2[i] = b;
  }
}

@compute @workgroup_size(WG)
fn fanout4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let n = params.rows * params.cols;
  for (var i = gid.x; i < n; i += stride) {
    let g = x4[i];
    var a = g;
    var b = g;
    if (ACCUMULATE) { a += y4[i]; }
    if (ACCUMULATE2) { b += y24[i]; }
    y4[i] = a;
    y24[i] = b;
  }
}
