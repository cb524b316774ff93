// Inverted dropout with a counter-based RNG (Philox4x32-10, Salmon et al. 2011, as in Random123).
//
//   forward:  one Philox call per group of 4 elements: counter (g, step, 0, 0), key (seed, stream),
//             g = element / 4; the step comes from the GPU step-counter buffer `step[0]`, so a
//             recorded step is never re-recorded, and nothing goes through the CPU.
//             element e is kept iff (word >> 8) < keepThreshold (24-bit uniform), keepThreshold =
//             round(keep_prob · 2^24), so keep_prob = 1 keeps everything.
//             mask[e] = 1 or 0 (f32, kept for backward); y[e] = x[e] · mask[e] · scale, scale = 1/keep_prob
//             (keep_prob = 1: scale = 1, an exact identity).
//   backward: dx (+)= dy · mask · scale.
// Same (seed, stream, step) → the same mask; a new step (or stream, for another layer) → a new one.

override WG: u32 = 64u;
override ACCUMULATE: bool = false;  // backward: dx += …

struct Params {
  n: u32,              // elements
  seed: u32,           // key word 0
  stream: u32,         // key word 1: separates the masks of several dropout layers
  keepThreshold: u32,  // round(keep_prob · 2^24)
  scale: f32,          // 1 / keep_prob
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> mask: array<f32>;
@group(0) @binding(4) var<storage, read> step: array<u32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

// (hi, lo) 32-bit halves of the 64-bit product a·b, from 16-bit pieces (WGSL has no mulhi).
fn mulhilo(a: u32, b: u32) -> vec2u {
  let al = a & 0xffffu;
  let ah = a >> 16u;
  let bl = b & 0xffffu;
  let bh = b >> 16u;
  let ll = al * bl;
  let lh = al * bh;
  let hl = ah * bl;
  let hh = ah * bh;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
  return vec2u(hi, a * b);
}

fn philox_round(c: vec4u, k: vec2u) -> vec4u {
  let p0 = mulhilo(0xD2511F53u, c.x);
  let p1 = mulhilo(0xCD9E8D57u, c.z);
  return vec4u(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
}

fn philox4x32_10(counter: vec4u, key: vec2u) -> vec4u {
  var c = philox_round(counter, key);
  var k = key;
  for (var r = 1u; r < 10u; r++) {
    k += vec2u(0x9E3779B9u, 0xBB67AE85u);
    c = philox_round(c, k);
  }
  return c;
}

fn keep(e: u32, word: u32) {
  if (e < params.n) {
    let m = select(0.0, 1.0, (word >> 8u) < params.keepThreshold);
    mask[e] = m;
    y[e] = x[e] * (m * params.scale);
  }
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let groups = (params.n + 3u) / 4u;
  let s = step[0];
  let key = vec2u(params.seed, params.stream);
  for (var g = gid.x; g < groups; g += stride) {
    let r = philox4x32_10(vec4u(g, s, 0u, 0u), key);
    let e = 4u * g;
    keep(e, r.x);
    keep(e + 1u, r.y);
    keep(e + 2u, r.z);
    keep(e + 3u, r.w);
  }
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  for (var i = gid.x; i < params.n; i += stride) {
    var g = dy[i] * (mask[i] * params.scale);
    if (ACCUMULATE) { g += dx[i]; }
    dx[i] = g;
  }
}
