// Softmax over the last axis of x [R, C] (rows R = product of the leading dimensions), and its
// backward pass.
//
//   forward   y[r,k] = e_k / Σ_j e_j,  e_k = exp(x[r,k] − max_j x[r,j])
//             (every e ≤ 1 and the largest is 1: no overflow, no division by 0, for any finite x)
//   backward  dx[r,k] (+)= y[r,k] · (dy[r,k] − Σ_j dy[r,j]·y[r,j])
//             (from the forward OUTPUT y, as the activations' backward passes do)
//
// One invocation per row, grid stride over rows: a row's passes (max, sum, write; or dot, write)
// reread the same C values, which the caches hold.

override WG: u32 = 64u;
override ACCUMULATE: bool = false; // backward: dx += … instead of dx = …

struct Params {
  R: u32,  // rows
  C: u32,  // columns (the softmax axis)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> yIn: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let C = params.C;
  let stride = nwg.x * WG;
  for (var r = gid.x; r < params.R; r += stride) {
    let base = r * C;
    var m = x[base];
    for (var k = 1u; k < C; k++) { m = max(m, x[base + k]); }
    var s = 0.0;
    for (var k = 0u; k < C; k++) {
      let e = exp(x[base + k] - m);
      y[base + k] = e;
      s += e;
    }
    let inv = 1.0 / s;
    for (var k = 0u; k < C; k++) { y[base + k] *= inv; }
  }
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let C = params.C;
  let stride = nwg.x * WG;
  for (var r = gid.x; r < params.R; r += stride) {
    let base = r * C;
    var d = 0.0;
    for (var k = 0u; k < C; k++) { d += dy[base + k] * yIn[base + k]; }
    for (var k = 0u; k < C; k++) {
      var g = yIn[base + k] * (dy[base + k] - d);
      if (ACCUMULATE) { g += dx[base + k]; }
      dx[base + k] = g;
    }
  }
}
