// Softmax cross-entropy from logits, fused and numerically stable.
//
//   rows: one invocation per example r (grid stride over rows), with m = max_k z[r,k],
//         e_k = exp(z_k − m) (≤ 1, no overflow for any finite logits, e.g. ±1e4),
//         S' = Σ_{k≠label} e_k, S = S' + e_label, d = z_label − m (≤ 0):
//           loss[r]       = log S − d            (log S as log1p(S') when the label is a max: e_label = 1)
//           dlogits[r,k]  = gradScale · (e_k / S − [k = label])
//                           with the label's entry as −S'/S, free of the cancellation in p − 1.
//         A label ≥ C makes that row's loss and gradient NaN (as TensorFlow does on a GPU).
//         Label smoothing ε (> 0; Keras/PyTorch label_smoothing): the target is (1 − ε)·onehot + ε/C,
//         so with a = Σ_k (z_k − m)/C:
//           loss[r]       = log S − d + ε·(d − a)       (= −Σ_k target_k·log p_k)
//           dlogits[r,k]  = gradScale · (e_k / S − ε/C − (1 − ε)[k = label])
//                           with the label's entry as −S'/S + ε·(1 − 1/C).
//   mean: one workgroup: meanLoss[0] = Σ_r loss[r] / B (strided partial sums, then a tree),
//         and with ACCUMULATE_SUM also lossSum[0] += meanLoss[0], a running sum that a training
//         loop reads back only every N steps (and resets by writing 0).
//   rows_mean: both in one workgroup, for small batches: invocation i takes rows i, i + MEAN_WG, …,
//         and sums their losses in mean's order, so the mean has mean's bits. On a CPU adapter a
//         dispatch costs about a tenth of a millisecond, more than a batch of 100 rows.
//   COUNT_CORRECT (rows, rows_mean): also the accuracy (argmax.wgsl's): predictions[r], the first
//         maximum of the row, and the rows whose prediction is their label added to correct[0]
//         (an accuracy op merged into this one: src/graph/fuse-accuracy.ts).
//   mean_step, rows_mean_step: mean and rows_mean, and the training step's counter advanced by one
//         (step_counter[0] += 1), so that a training step needs no dispatch of its own for it
//         (src/graph/recorder.ts). Entry points of their own: the others do not bind the counter.

override WG: u32 = 64u;
override ACCUMULATE_SUM: bool = false;
override COUNT_CORRECT: bool = false;

const MEAN_WG: u32 = 64u;

struct Params {
  B: u32,          // examples (rows)
  C: u32,          // classes (columns)
  gradScale: f32,  // 1/B for the gradient of the batch-mean loss
  smoothing: f32,  // label smoothing ε in [0, 1)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<storage, read_write> meanLoss: array<f32>;
@group(0) @binding(6) var<storage, read_write> lossSum: array<f32>;
// COUNT_CORRECT: the argmax of each row, and the running count of rows predicted right.
@group(0) @binding(7) var<storage, read_write> predictions: array<u32>;
@group(0) @binding(8) var<storage, read_write> correct: array<atomic<u32>>;
// mean_step, rows_mean_step: the training step's counter (src/kernels/step.ts).
@group(0) @binding(9) var<storage, read_write> step_counter: array<u32>;

// log(1 + v) for v ≥ 0, accurate for small v (2·atanh(v/(2+v)) series; no reliance on log near 1).
fn log1p_pos(v: f32) -> f32 {
  if (v >= 0.5) { return log(1.0 + v); }
  let w = v / (2.0 + v);   // ≤ 0.2
  let w2 = w * w;
  let s = 1.0 + w2 * (1.0 / 3.0 + w2 * (1.0 / 5.0 + w2 * (1.0 / 7.0 + w2 * (1.0 / 9.0 + w2 * (1.0 / 11.0 + w2 * (1.0 / 13.0))))));
  return 2.0 * w * s;
}

// Row r: writes loss[r] and dlogits[r, ·], and returns the loss.
fn xent_row(r: u32) -> f32 {
  let C = params.C;
  let base = r * C;
  let lab = labels[r];
  if (lab >= C) {
    let nan = bitcast<f32>(0x7fc00000u | (lab & 0u)); // runtime expression: a constant NaN is a WGSL error
    loss[r] = nan;
    for (var k = 0u; k < C; k++) { dlogits[base + k] = nan; }
    return nan;
  }
  var m = logits[base];
  for (var k = 1u; k < C; k++) { m = max(m, logits[base + k]); }
  var rest = 0.0;   // S' = Σ_{k≠label} e_k
  for (var k = 0u; k < C; k++) {
    if (k != lab) { rest += exp(logits[base + k] - m); }
  }
  let d = logits[base + lab] - m;
  let el = exp(d);
  let s = rest + el;
  var lse: f32;
  if (d == 0.0) { lse = log1p_pos(rest); } else { lse = log(s); }
  let eps = params.smoothing;
  var l = lse - d;
  var spread = 0.0;     // gradScale·ε/C, taken from every class
  var labelAdd = 0.0;   // gradScale·ε, given back to the label
  if (eps > 0.0) {
    var a = 0.0;
    for (var k = 0u; k < C; k++) { a += logits[base + k] - m; }
    a /= f32(C);
    l += eps * (d - a);
    spread = params.gradScale * eps / f32(C);
    labelAdd = params.gradScale * eps;
  }
  loss[r] = l;
  let inv = params.gradScale / s;
  for (var k = 0u; k < C; k++) {
    var g: f32;
    if (k == lab) { g = -rest * inv + (labelAdd - spread); } else { g = exp(logits[base + k] - m) * inv - spread; }
    dlogits[base + k] = g;
  }
  return l;
}

// COUNT_CORRECT: stores row r's prediction (its first maximum, as argmax.wgsl) and returns 1 where
// it is the row's label, else 0.
fn predict_row(r: u32) -> u32 {
  let base = r * params.C;
  var best = logits[base];
  var idx = 0u;
  for (var k = 1u; k < params.C; k++) {
    let v = logits[base + k];
    if (v > best) { best = v; idx = k; }
  }
  predictions[r] = idx;
  return select(0u, 1u, idx == labels[r]);
}

@compute @workgroup_size(WG)
fn rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  for (var r = gid.x; r < params.B; r += stride) {
    xent_row(r);
    if (COUNT_CORRECT && predict_row(r) == 1u) { atomicAdd(&correct[0], 1u); }
  }
}

var<workgroup> partial: array<f32, MEAN_WG>;
var<workgroup> hits: array<u32, MEAN_WG>;

// The batch mean of this invocation's partial sum s (strided by MEAN_WG over the rows), a tree over
// the workgroup; stored by invocation 0 with the running sum.
fn store_mean(lid: u32, s: f32) {
  partial[lid] = s;
  workgroupBarrier();
  for (var h = MEAN_WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { partial[lid] += partial[lid + h]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let avg = partial[0] / f32(params.B);
    meanLoss[0] = avg;
    if (ACCUMULATE_SUM) { lossSum[0] += avg; }
  }
}

fn mean_body(lid: u32) {
  var s = 0.0;
  for (var r = lid; r < params.B; r += MEAN_WG) { s += loss[r]; }
  store_mean(lid, s);
}

@compute @workgroup_size(64)  // = MEAN_WG (Kernel reads a literal or an override here)
fn mean(@builtin(local_invocation_index) lid: u32) {
  mean_body(lid);
}

@compute @workgroup_size(64)  // = MEAN_WG
fn mean_step(@builtin(local_invocation_index) lid: u32) {
  mean_body(lid);
  advance_step(lid);
}

@compute @workgroup_size(64)  // = MEAN_WG
fn rows_mean(@builtin(local_invocation_index) lid: u32) {
  rows_mean_body(lid);
}

@compute @workgroup_size(64)  // = MEAN_WG
fn rows_mean_step(@builtin(local_invocation_index) lid: u32) {
  rows_mean_body(lid);
  advance_step(lid);
}

// The training step's counter advanced once per dispatch (by invocation 0 of the one workgroup).
fn advance_step(lid: u32) {
  if (lid == 0u) { step_counter[0] += 1u; }
}

fn rows_mean_body(lid: u32) {
  var s = 0.0;
  var right = 0u;
  for (var r = lid; r < params.B; r += MEAN_WG) {
    s += xent_row(r);
    if (COUNT_CORRECT) { right += predict_row(r); }
  }
  if (COUNT_CORRECT) {
    // The count's tree runs before the mean's, which ends in invocation 0 alone.
    hits[lid] = right;
    workgroupBarrier();
    for (var h = MEAN_WG / 2u; h > 0u; h >>= 1u) {
      if (lid < h) { hits[lid] += hits[lid + h]; }
      workgroupBarrier();
    }
    if (lid == 0u) { atomicAdd(&correct[0], hits[0]); }
  }
  store_mean(lid, s);
}
