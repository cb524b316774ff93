// Elementwise activations and bias add, forward and backward.
//
//   forward           y = f(x)                      (x, y)
//   forward_inplace   y = f(y)                      (y)
//   bias              y[i,j] = f(x[i,j] + b[j])     (x, b, y)   f = identity for a plain bias add
//   bias_inplace      y[i,j] = f(y[i,j] + b[j])     (b, y)
//   backward          dx (+)= dy ⊙ f'(·)            (y, dy, dx)
//   backward_inplace  dx = dx ⊙ f'(·)               (y, dx)     dx holds dy on entry
//
// The backward passes read the FORWARD OUTPUT y, never x: every derivative here is cheapest
// in terms of y (relu: y > 0, sigmoid: y(1−y), tanh: (1−y)(1+y)), and y is what a training
// step keeps anyway. (relu's y > 0 ⇔ x > 0, so the gradient at x = 0 is 0, as in TensorFlow.)
// gelu is the exception: its derivative is no function of y, so for OP 4 the buffer bound as `y`
// holds the forward INPUT x (the op saves x for it).
//
// Elementwise over n elements with a grid-stride loop: any n works with any number of
// workgroups (the host caps the grid below the 65535-per-dimension limit).

override OP: u32 = 0u;             // an activation code of prelude.wgsl: 0 identity, 1 relu, 2 sigmoid, 3 tanh, 4 gelu
override ACCUMULATE: bool = false; // backward: dx += … instead of dx = …
override WG: u32 = 64u;

struct Params {
  n: u32,     // elements
  cols: u32,  // bias length (row length of x and y) for the bias entries
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

// f'(x) written through y = f(x) (gelu: through x itself, see above).
fn dact(yv: f32) -> f32 {
  if (OP == 4u) { return gelu_grad(yv); }
  return activation_grad_from_y(OP, yv);
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  for (var i = gid.x; i < params.n; i += stride) { y[i] = activate(OP, x[i]); }
}

@compute @workgroup_size(WG)
fn forward_inplace(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  for (var i = gid.x; i < params.n; i += stride) { y[i] = activate(OP, y[i]); }
}

@compute @workgroup_size(WG)
fn bias(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let cols = params.cols;
  let step = stride % cols;     // column advance per grid stride: one division per invocation
  var j = gid.x % cols;
  for (var i = gid.x; i < params.n; i += stride) {
    y[i] = activate(OP, x[i] + b[j]);
    j += step;
    if (j >= cols) { j -= cols; }
  }
}

@compute @workgroup_size(WG)
fn bias_inplace(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let cols = params.cols;
  let step = stride % cols;
  var j = gid.x % cols;
  for (var i = gid.x; i < params.n; i += stride) {
    y[i] = activate(OP, y[i] + b[j]);
    j += step;
    if (j >= cols) { j -= cols; }
  }
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  for (var i = gid.x; i < params.n; i += stride) {
    var g = dy[i] * dact(y[i]);
    if (ACCUMULATE) { g += dx[i]; }
    dx[i] = g;
  }
}

@compute @workgroup_size(WG)
fn backward_inplace(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  for (var i = gid.x; i < params.n; i += stride) { dx[i] = dx[i] * dact(y[i]); }
}
