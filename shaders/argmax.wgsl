// Per-row argmax of x [B, C] (the FIRST maximum on ties) into predictions [B] (u32),
// and, in argmax_count, the number of rows whose prediction equals labels[r], added to
// correct[0] with one atomicAdd per correct row: a training loop reads back one u32 per
// batch (or per N batches, resetting it by writing 0), never the logits.
// One invocation per row, grid stride over rows.

override WG: u32 = 64u;

struct Params {
  B: u32,
  C: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> predictions: array<u32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> correct: array<atomic<u32>>;

fn row_argmax(r: u32) -> u32 {
  let base = r * params.C;
  var best = x[base];
  var idx = 0u;
  for (var k = 1u; k < params.C; k++) {
    let v = x[base + k];
    if (v > best) { best = v; idx = k; }
  }
  return idx;
}

@compute @workgroup_size(WG)
fn argmax(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  for (var r = gid.x; r < params.B; r += stride) { predictions[r] = row_argmax(r); }
}

@compute @workgroup_size(WG)
fn argmax_count(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  for (var r = gid.x; r < params.B; r += stride) {
    let p = row_argmax(r);
    predictions[r] = p;
    if (p == labels[r]) { atomicAdd(&correct[0], 1u); }
  }
}
