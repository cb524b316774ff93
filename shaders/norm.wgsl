// Batch normalization and layer normalization of x [R, C] (C the last axis), forward and backward.
//
//   batch norm  statistics per COLUMN c over the R rows (the batch, and H and W of NHWC images):
//               mean_c, invstd_c = 1/sqrt(var_c + ε) (biased variance, as Keras normalizes)
//   layer norm  statistics per ROW r over the C columns
//   both        y = (x − mean)·invstd·γ_c + β_c, xhat = (x − mean)·invstd
//
//   column_stats       batch-norm statistics; with UPDATE_RUNNING also the running statistics,
//                      running ← running·momentum + batch·(1 − momentum) (Keras' moving averages)
//   row_stats          layer-norm statistics
//   normalize          y from the statistics (PER_ROW: layer norm)
//   normalize_running  batch norm in evaluation: y from the running mean and variance
//   column_grad_sums   Σ_r dy and Σ_r dy·xhat per column: dβ and dγ (both norms), and for batch
//                      norm also `sums` [C, 2] for its dx
//   batch_norm_dx      dx = γ·invstd/R · (R·dy − Σdy − xhat·Σdy·xhat)   (the full batch-statistics backward)
//   layer_norm_dx      per row, g = dy·γ: dx = invstd/C · (C·g − Σg − xhat·Σg·xhat)
//
// Column entries run one workgroup per column: each lane sums a strided share of the rows and a
// fixed tree adds the lanes, so sums are deterministic and no serial sum is longer than R/WG.
// Row entries run one invocation per row (grid stride), serially over the C columns.

override WG: u32 = 64u;                // lanes per workgroup (a power of two, at most 256)
override PER_ROW: bool = false;        // statistics per row (layer norm) instead of per column
override UPDATE_RUNNING: bool = false; // column_stats: also update the running statistics
override HAS_GAMMA: bool = true;       // false: γ = 1 (Keras scale=False)
override HAS_BETA: bool = true;        // false: β = 0 (Keras center=False)
override WRITE_DGAMMA: bool = true;
override WRITE_DBETA: bool = true;
override WRITE_SUMS: bool = false;     // column_grad_sums: keep Σdy, Σdy·xhat for batch_norm_dx
override ACCUMULATE: bool = false;     // dx += … instead of dx = …
override ACCUMULATE_DGAMMA: bool = false;
override ACCUMULATE_DBETA: bool = false;

struct Params {
  rows: u32,
  cols: u32,
  epsilon: f32,
  momentum: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> invstd: array<f32>;
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read> beta: array<f32>;
@group(0) @binding(7) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(8) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(9) var<storage, read> dy: array<f32>;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
@group(0) @binding(11) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(12) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(13) var<storage, read_write> sums: array<f32>;

var<workgroup> lanes_a: array<f32, 256>;
var<workgroup> lanes_b: array<f32, 256>;

// Adds the lanes' values in a fixed tree; every lane gets the totals back.
fn tree_sum2(l: u32, a: f32, b: f32) -> vec2f {
  lanes_a[l] = a;
  lanes_b[l] = b;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (l < half) {
      lanes_a[l] += lanes_a[l + half];
      lanes_b[l] += lanes_b[l + half];
    }
    workgroupBarrier();
  }
  let out = vec2f(lanes_a[0], lanes_b[0]);
  workgroupBarrier();
  return out;
}

fn gamma_of(c: u32) -> f32 {
  var g = 1.0;
  if (HAS_GAMMA) { g = gamma[c]; }
  return g;
}

fn beta_of(c: u32) -> f32 {
  var b = 0.0;
  if (HAS_BETA) { b = beta[c]; }
  return b;
}

@compute @workgroup_size(WG)
fn column_stats(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let R = params.rows;
  let C = params.cols;
  let c = wid.x;
  let l = lid.x;
  var s = 0.0;
  for (var r = l; r < R; r += WG) { s += x[r * C + c]; }
  let m = tree_sum2(l, s, 0.0).x / f32(R);
  var q = 0.0;
  for (var r = l; r < R; r += WG) {
    let d = x[r * C + c] - m;
    q += d * d;
  }
  let v = tree_sum2(l, q, 0.0).x / f32(R);
  if (l == 0u) {
    mean[c] = m;
    invstd[c] = 1.0 / sqrt(v + params.epsilon);
    if (UPDATE_RUNNING) {
      let k = params.momentum;
      running_mean[c] = running_mean[c] * k + m * (1.0 - k);
      running_var[c] = running_var[c] * k + v * (1.0 - k);
    }
  }
}

@compute @workgroup_size(WG)
fn row_stats(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let C = params.cols;
  for (var r = gid.x; r < params.rows; r += nwg.x * WG) {
    let base = r * C;
    var s = 0.0;
    for (var k = 0u; k < C; k++) { s += x[base + k]; }
    let m = s / f32(C);
    var q = 0.0;
    for (var k = 0u; k < C; k++) {
      let d = x[base + k] - m;
      q += d * d;
    }
    mean[r] = m;
    invstd[r] = 1.0 / sqrt(q / f32(C) + params.epsilon);
  }
}

@compute @workgroup_size(WG)
fn normalize(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let C = params.cols;
  let n = params.rows * C;
  for (var i = gid.x; i < n; i += nwg.x * WG) {
    let c = i % C;
    let s = select(c, i / C, PER_ROW);
    y[i] = (x[i] - mean[s]) * invstd[s] * gamma_of(c) + beta_of(c);
  }
}

@compute @workgroup_size(WG)
fn normalize_running(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let C = params.cols;
  let n = params.rows * C;
  for (var i = gid.x; i < n; i += nwg.x * WG) {
    let c = i % C;
    y[i] = (x[i] - running_mean[c]) / sqrt(running_var[c] + params.epsilon) * gamma_of(c) + beta_of(c);
  }
}

@compute @workgroup_size(WG)
fn column_grad_sums(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let R = params.rows;
  let C = params.cols;
  let c = wid.x;
  let l = lid.x;
  var sdy = 0.0;
  var sdyx = 0.0;
  for (var r = l; r < R; r += WG) {
    let i = r * C + c;
    let s = select(c, r, PER_ROW);
    let g = dy[i];
    sdy += g;
    sdyx += g * (x[i] - mean[s]) * invstd[s];
  }
  let t = tree_sum2(l, sdy, sdyx);
  if (l == 0u) {
    if (WRITE_DBETA) {
      var v = t.x;
      if (ACCUMULATE_DBETA) { v += dbeta[c]; }
      dbeta[c] = v;
    }
    if (WRITE_DGAMMA) {
      var v = t.y;
      if (ACCUMULATE_DGAMMA) { v += dgamma[c]; }
      dgamma[c] = v;
    }
    if (WRITE_SUMS) {
      sums[2u * c] = t.x;
      sums[2u * c + 1u] = t.y;
    }
  }
}

@compute @workgroup_size(WG)
fn batch_norm_dx(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let C = params.cols;
  let R = f32(params.rows);
  let n = params.rows * C;
  for (var i = gid.x; i < n; i += nwg.x * WG) {
    let c = i % C;
    let inv = invstd[c];
    let xhat = (x[i] - mean[c]) * inv;
    var g = gamma_of(c) * inv / R * (R * dy[i] - sums[2u * c] - xhat * sums[2u * c + 1u]);
    if (ACCUMULATE) { g += dx[i]; }
    dx[i] = g;
  }
}

@compute @workgroup_size(WG)
fn layer_norm_dx(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let C = params.cols;
  let Cf = f32(C);
  for (var r = gid.x; r < params.rows; r += nwg.x * WG) {
    let base = r * C;
    let m = mean[r];
    let inv = invstd[r];
    var s1 = 0.0;
    var s2 = 0.0;
    for (var k = 0u; k < C; k++) {
      let g = dy[base + k] * gamma_of(k);
      s1 += g;
      s2 += g * (x[base + k] - m) * inv;
    }
    for (var k = 0u; k < C; k++) {
      let g = dy[base + k] * gamma_of(k);
      let xhat = (x[base + k] - m) * inv;
      var v = inv / Cf * (Cf * g - s1 - xhat * s2);
      if (ACCUMULATE) { v += dx[base + k]; }
      dx[base + k] = v;
    }
  }
}
