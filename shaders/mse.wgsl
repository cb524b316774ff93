// Mean squared error (Keras semantics) of pred and target [B, D]: the mean over all n = B·D
// elements of (pred − target)², its gradient, and a running sum of the loss.
//
// (The target binding is named `truth`: `target` is a reserved word in WGSL.)
//
//   partials: a fixed grid of G workgroups (G ≤ 32) (grid stride over the elements): with d = pred − target,
//             dpred[i] = gradScale · d[i] (gradScale = 2/n for the gradient of the mean), and each
//             workgroup's Σ d² (per-lane serial sums, then a tree) goes to partial[group].
//   finish:   one workgroup: meanLoss[0] = Σ_g partial[g] / n (strided sums, then a tree), and
//             with ACCUMULATE_SUM also lossSum[0] += meanLoss[0], the running sum a training loop
//             reads back every N steps (as softmax_xent.wgsl keeps it).
// G is fixed when the dispatch is prepared, so every step sums in the same order: the loss is
// deterministic (no float atomics).

override ACCUMULATE_SUM: bool = false;

const WG: u32 = 64u;

struct Params {
  n: u32,          // elements (scalar entries) or vec4s (partials4)
  groups: u32,     // G: partial sums written by the partials pass
  count: f32,      // B·D, the divisor of the mean
  gradScale: f32,  // 2/(B·D) for the gradient of the mean
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> truth: array<f32>;
@group(0) @binding(3) var<storage, read_write> dpred: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;
@group(0) @binding(5) var<storage, read> partialIn: array<f32>;
@group(0) @binding(6) var<storage, read_write> meanLoss: array<f32>;
@group(0) @binding(7) var<storage, read_write> lossSum: array<f32>;
@group(0) @binding(8) var<storage, read> pred4: array<vec4f>;
@group(0) @binding(9) var<storage, read> truth4: array<vec4f>;
@group(0) @binding(10) var<storage, read_write> dpred4: array<vec4f>;

var<workgroup> tree: array<f32, WG>;

// tree[0] = Σ tree[0..WG) (pairwise, fixed order); every lane must call it.
fn reduceTree(lid: u32) {
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { tree[lid] += tree[lid + h]; }
    workgroupBarrier();
  }
}

@compute @workgroup_size(64)  // = WG (Kernel reads a literal or an override here)
fn partials(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_index) lid: u32,
            @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  var s = 0.0;
  for (var i = gid.x; i < params.n; i += stride) {
    let d = pred[i] - truth[i];
    dpred[i] = params.gradScale * d;
    s += d * d;
  }
  tree[lid] = s;
  reduceTree(lid);
  if (lid == 0u) { partial[wid.x] = tree[0]; }
}

@compute @workgroup_size(64)
fn partials4(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_index) lid: u32,
             @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  var s = 0.0;
  for (var i = gid.x; i < params.n; i += stride) {
    let d = pred4[i] - truth4[i];
    dpred4[i] = params.gradScale * d;
    s += dot(d, d);
  }
  tree[lid] = s;
  reduceTree(lid);
  if (lid == 0u) { partial[wid.x] = tree[0]; }
}

@compute @workgroup_size(64)
fn finish(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var g = lid; g < params.groups; g += WG) { s += partialIn[g]; }
  tree[lid] = s;
  reduceTree(lid);
  if (lid == 0u) {
    let avg = tree[0] / params.count;
    meanLoss[0] = avg;
    if (ACCUMULATE_SUM) { lossSum[0] += avg; }
  }
}
