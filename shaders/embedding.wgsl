// Embedding lookup (Keras Embedding) and its deterministic gradient.
//
//   gather      y[i, d] = table[ids[i], d] for the n positions i (ids checked in range on the CPU)
//   link        per position i: next[i] = the next position with the same id (n if none), and
//               head[i] = 1 when no earlier position has it: the batch's ids grouped into chains
//   zero        dtable = 0 (before a gradient that overwrites)
//   chain_sum   per head position i and column d: dtable[ids[i], d] (+)= Σ dy[j, d] over its chain
//
// The gradient has no float atomics: each id's rows are summed by one invocation, in the order of
// the positions, so the sums (and so training) are the same bit for bit on every run. `link` costs
// O(n²) comparisons at worst (all ids distinct), once per step; the sums cost O(n·dim).

override WG: u32 = 64u;
override ACCUMULATE: bool = false; // chain_sum: dtable += … instead of =

struct Params {
  n: u32,      // positions (batch × sequence length)
  dim: u32,    // embedding width D
  vocab: u32,  // rows of the table (input_dim)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> next: array<u32>;
@group(0) @binding(6) var<storage, read_write> head: array<u32>;
@group(0) @binding(7) var<storage, read_write> dtable: array<f32>;

@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let D = params.dim;
  let total = params.n * D;
  for (var e = gid.x; e < total; e += nwg.x * WG) {
    let i = e / D;
    y[e] = table[ids[i] * D + (e - i * D)];
  }
}

@compute @workgroup_size(WG)
fn link(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = params.n;
  for (var i = gid.x; i < n; i += nwg.x * WG) {
    let v = ids[i];
    var j = i + 1u;
    for (; j < n; j++) { if (ids[j] == v) { break; } }
    next[i] = j;
    var first = 1u;
    for (var k = 0u; k < i; k++) { if (ids[k] == v) { first = 0u; break; } }
    head[i] = first;
  }
}

@compute @workgroup_size(WG)
fn zero(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let total = params.vocab * params.dim;
  for (var e = gid.x; e < total; e += nwg.x * WG) { dtable[e] = 0.0; }
}

@compute @workgroup_size(WG)
fn chain_sum(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = params.n;
  let D = params.dim;
  let total = n * D;
  for (var e = gid.x; e < total; e += nwg.x * WG) {
    let i = e / D;
    if (head[i] == 0u) { continue; }
    let d = e - i * D;
    var s = 0.0;
    for (var j = i; j < n; j = next[j]) { s += dy[j * D + d]; }
    let out = ids[i] * D + d;
    if (ACCUMULATE) { s += dtable[out]; }
    dtable[out] = s;
  }
}
