// FMA throughput probe for the benchmark's roofline (tools/bench.ts). Each invocation runs
// `params.iters` rounds of independent vec4 fused multiply-adds held in registers and writes one
// value at the end, so the run is bound by the FMA units, not by memory. Entry points peak2, peak4
// and peak8 hold 2, 4, 8 independent chains; the loop body is unrolled so that the loop's own
// compare and branch (per lane on a SIMD software adapter) cost little next to the FMAs. Which
// entry is fastest depends on the FMA latency and the register file: the bench takes the best.
// FLOPs per invocation: iters * FMAS * 4 lanes * 2, with FMAS (vec4 FMAs per round) 8 for peak2,
// 16 for peak4 and peak8. The multiplier and addend come from the uniform so the compiler cannot
// fold the chains away.

override WG: u32 = 64;

struct Params {
  iters: u32,
  a: f32,
  b: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

fn seed(gid: vec3<u32>) -> vec4<f32> {
  let s = f32(gid.x) * 1e-7;
  return vec4<f32>(s, s + 1e-3, s + 2e-3, s + 3e-3);
}

fn store(gid: vec3<u32>, nwg: vec3<u32>, r: vec4<f32>) {
  out[gid.x + gid.y * nwg.x * WG] = r.x + r.y + r.z + r.w;
}

// 2 chains, body unrolled 4x: 8 vec4 FMAs per round.
@compute @workgroup_size(WG)
fn peak2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let a = vec4<f32>(params.a);
  let b = vec4<f32>(params.b);
  var c0 = seed(gid);
  var c1 = c0 + vec4<f32>(0.1);
  for (var i = 0u; i < params.iters; i++) {
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
  }
  store(gid, nwg, c0 + c1);
}

// 4 chains, body unrolled 4x: 16 vec4 FMAs per round.
@compute @workgroup_size(WG)
fn peak4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let a = vec4<f32>(params.a);
  let b = vec4<f32>(params.b);
  var c0 = seed(gid);
  var c1 = c0 + vec4<f32>(0.1);
  var c2 = c0 + vec4<f32>(0.2);
  var c3 = c0 + vec4<f32>(0.3);
  for (var i = 0u; i < params.iters; i++) {
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c2 = fma(c2, a, b);
    c3 = fma(c3, a, b);
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c2 = fma(c2, a, b);
    c3 = fma(c3, a, b);
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c2 = fma(c2, a, b);
    c3 = fma(c3, a, b);
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c2 = fma(c2, a, b);
    c3 = fma(c3, a, b);
  }
  store(gid, nwg, c0 + c1 + c2 + c3);
}

// 8 chains, body unrolled 2x: 16 vec4 FMAs per round.
@compute @workgroup_size(WG)
fn peak8(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let a = vec4<f32>(params.a);
  let b = vec4<f32>(params.b);
  var c0 = seed(gid);
  var c1 = c0 + vec4<f32>(0.1);
  var c2 = c0 + vec4<f32>(0.2);
  var c3 = c0 + vec4<f32>(0.3);
  var c4 = c0 + vec4<f32>(0.4);
  var c5 = c0 + vec4<f32>(0.5);
  var c6 = c0 + vec4<f32>(0.6);
  var c7 = c0 + vec4<f32>(0.7);
  for (var i = 0u; i < params.iters; i++) {
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c2 = fma(c2, a, b);
    c3 = fma(c3, a, b);
    c4 = fma(c4, a, b);
    c5 = fma(c5, a, b);
    c6 = fma(c6, a, b);
    c7 = fma(c7, a, b);
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c2 = fma(c2, a, b);
    c3 = fma(c3, a, b);
    c4 = fma(c4, a, b);
    c5 = fma(c5, a, b);
    c6 = fma(c6, a, b);
    c7 = fma(c7, a, b);
  }
  store(gid, nwg, c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7);
}
