// Training control computed on the GPU each step, into control = [lr, clip scale, global norm, 0]
// (f32), which the optimizer kernels read (shaders/optimizer.wgsl: SCHEDULED, CLIPPED). Nothing is
// written from the CPU per step: the learning rate comes from the GPU step counter.
//
//   learning_rate: one invocation. t = step[0] (0-based: the counter is advanced after the update).
//     Warm-up (W > 0): t < W gives lr·(t+1)/W; after it the schedule runs on s = t − W:
//       KIND 0 constant:    lr
//       KIND 1 step:        lr·rate^floor(s/N)
//       KIND 2 exponential: lr·rate^(s/N)                      (TF exponential_decay)
//       KIND 3 cosine:      minLr + (lr − minLr)·(1 + cos(π·min(s, N)/N))/2
//     rate^x is exp2(x·log2(rate)), log2(rate) computed in float64 on the host.
//   sum_squares: Σ grad[off + i]² over one gradient, one partial sum per workgroup into
//     partials[first + workgroup] (grid stride; a fixed order, so the sums are reproducible).
//   clip_scale: one workgroup sums partials[0, count) in a fixed order: norm = sqrt(Σ),
//     control[1] = clipNorm / max(norm, clipNorm) (TF clip_by_global_norm: exactly 1 when the
//     norm is at most clipNorm), control[2] = norm.

const WG: u32 = 64u;
override KIND: u32 = 0u;

struct ScheduleParams {
  lr: f32,
  minLr: f32,
  log2Rate: f32,
  warmup: u32,
  decaySteps: u32,
}

struct NormParams {
  n: u32,          // sum_squares: elements of the gradient
  off: u32,        // sum_squares: its element offset in grad
  first: u32,      // sum_squares: index of its first partial sum
  count: u32,      // clip_scale: partial sums in all
  clipNorm: f32,
}

@group(0) @binding(0) var<uniform> sched: ScheduleParams;
@group(0) @binding(1) var<uniform> norm: NormParams;
@group(0) @binding(2) var<storage, read> step: array<u32>;
@group(0) @binding(3) var<storage, read_write> control: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

const PI: f32 = 3.14159265358979;

@compute @workgroup_size(1)
fn learning_rate() {
  let t = step[0];
  let lr = sched.lr;
  let w = sched.warmup;
  if (t < w) {
    control[0] = lr * f32(t + 1u) / f32(w);
    return;
  }
  let s = t - w;
  let n = sched.decaySteps;
  var out = lr;
  if (KIND == 1u) {
    out = lr * exp2(sched.log2Rate * f32(s / n));
  } else if (KIND == 2u) {
    out = lr * exp2(sched.log2Rate * (f32(s) / f32(n)));
  } else if (KIND == 3u) {
    let x = f32(min(s, n)) / f32(n);
    out = sched.minLr + (lr - sched.minLr) * 0.5 * (1.0 + cos(PI * x));
  }
  control[0] = out;
}

var<workgroup> part: array<f32, WG>;

// Tree sum of part[0, WG) into part[0] (WG a power of two).
fn tree(lid: u32) {
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { part[lid] += part[lid + h]; }
    workgroupBarrier();
  }
}

@compute @workgroup_size(64)  // = WG
fn sum_squares(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  var s = 0.0;
  for (var i = gid.x; i < norm.n; i += stride) {
    let g = grad[norm.off + i];
    s += g * g;
  }
  part[lid] = s;
  tree(lid);
  if (lid == 0u) { partials[norm.first + wid.x] = part[0]; }
}

@compute @workgroup_size(64)  // = WG
fn clip_scale(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < norm.count; i += WG) { s += partials[i]; }
  part[lid] = s;
  tree(lid);
  if (lid == 0u) {
    let total = sqrt(part[0]);
    let c = norm.clipNorm;
    control[1] = c / max(total, c);
    control[2] = total;
  }
}
