// Optimizers updating parameters in place, elementwise over n elements (grid stride).
// Element i of the update touches param/accum/m/v[off + i] and grad[offGrad + i], so several
// tensors laid out back to back in one buffer are updated by one dispatch (or one slice by
// giving offsets).
//
//   sgd:      p −= lr·g
//   momentum: a = momentum·a + g;  p −= lr·a                    (TF MomentumOptimizer)
//             NESTEROV: p −= lr·g + lr·momentum·a               (TF use_nesterov=True)
//   adam:     TF 1.x AdamOptimizer (ApplyAdam):
//             t = step[0] + stepOffset (the GPU step counter; stepOffset = 1 where it is advanced
//             after the update, 0 where the loss's kernel advanced it before: the first update
//             has t = 1 either way),
//             lr_t = lr·sqrt(1 − β2^t)/(1 − β1^t),
//             m += (g − m)(1 − β1);  v += (g² − v)(1 − β2);  p −= lr_t·m/(sqrt(v) + ε).
//             1 − β^t = −expm1(t·ln β), with ln β and 1 − β computed in float64 on the host and
//             expm1 by its Taylor series for small arguments: accurate for t = 1 (where 1 − β2^t
//             = 1e−3 would lose 4 digits as 1 − pow(β2, t) in f32) up to t far beyond 20,000
//             (where a running f32 product β^t would have drifted by t rounding errors).
//
// Training control (each a pipeline constant, off by default; `control` is then unused):
//   SCHEDULED: lr = control[0], this step's learning rate written on the GPU by the schedule
//              kernel (shaders/lr_schedule.wgsl) from the step counter, instead of params.lr.
//   CLIPPED:   g = control[1]·grad, the global-norm clip scale written by the same shader's
//              clip_scale entry after every gradient of the step is complete.
//   DECAY 1:   L2 weight decay as PyTorch's SGD/Adam weight_decay: g += weightDecay·p (after clipping).
//   DECAY 2:   decoupled weight decay as PyTorch's AdamW: p −= lr·weightDecay·p (lr: this step's
//              scheduled rate, not Adam's bias-corrected lr_t), then the Adam step above.

override WG: u32 = 64u;
override NESTEROV: bool = false;
override SCHEDULED: bool = false;
override CLIPPED: bool = false;
override DECAY: u32 = 0u;

// OptimizerParams: prelude.wgsl (the weight-gradient product's optimizer_step takes the same).
@group(0) @binding(0) var<uniform> params: OptimizerParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> accum: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(6) var<storage, read> step: array<u32>;
// The same buffers four floats at a time, for adam4 (n, off and offGrad multiples of 4): on CPU
// adapters every load in a loop is issued lane by lane, so a vec4 load moves 4 floats for the
// price of about 1.5.
@group(0) @binding(7) var<storage, read_write> param4: array<vec4f>;
@group(0) @binding(8) var<storage, read> grad4: array<vec4f>;
@group(0) @binding(9) var<storage, read_write> m4: array<vec4f>;
@group(0) @binding(10) var<storage, read_write> v4: array<vec4f>;
// [lr this step, clip scale] (SCHEDULED, CLIPPED); a dummy buffer otherwise.
@group(0) @binding(11) var<storage, read> control: array<f32>;

fn step_lr() -> f32 {
  if (SCHEDULED) { return control[0]; }
  return params.lr;
}

fn grad_scale() -> f32 {
  if (CLIPPED) { return control[1]; }
  return 1.0;
}

// The gradient the update uses: clipped, plus the L2 term when DECAY is 1.
fn effective_grad(g: f32, p: f32, scale: f32) -> f32 {
  return effective_grad4(vec4f(g), vec4f(p), scale, DECAY == 1u, params.weightDecay).x;
}

@compute @workgroup_size(WG)
fn sgd(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let lr = step_lr();
  let scale = grad_scale();
  for (var i = gid.x; i < params.n; i += stride) {
    let p = params.off + i;
    let w = param[p];
    param[p] = sgd_update4(vec4f(w), vec4f(effective_grad(grad[params.offGrad + i], w, scale)), lr).x;
  }
}

@compute @workgroup_size(WG)
fn momentum(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let lr = step_lr();
  let scale = grad_scale();
  let mu = params.momentum;
  for (var i = gid.x; i < params.n; i += stride) {
    let p = params.off + i;
    let w = param[p];
    let g = effective_grad(grad[params.offGrad + i], w, scale);
    let s = momentum_update4(vec4f(w), vec4f(g), vec4f(accum[p]), lr, mu, NESTEROV);
    accum[p] = s.a.x;
    param[p] = s.w.x;
  }
}

// Adam's bias-corrected step size at t = step[0] + stepOffset (adam_step_size: prelude.wgsl).
fn step_size(lr: f32) -> f32 {
  return adam_step_size(lr, f32(step[0] + params.stepOffset), params.logBeta1, params.logBeta2);
}

// Each step's arithmetic is prelude.wgsl's (sgd_update4, momentum_update4, adam_update4), lane-wise.
@compute @workgroup_size(WG)
fn adam(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let lr = step_lr();
  let lr_t = step_size(lr);
  let keep = decoupled_keep(DECAY == 2u, lr, params.weightDecay);
  let scale = grad_scale();
  for (var i = gid.x; i < params.n; i += stride) {
    let p = params.off + i;
    let w = param[p];
    let g = effective_grad(grad[params.offGrad + i], w, scale);
    let s = adam_update4(vec4f(w), vec4f(g), vec4f(m[p]), vec4f(v[p]), params.oneMinusBeta1, params.oneMinusBeta2, lr_t, params.epsilon, keep);
    m[p] = s.m.x;
    v[p] = s.v.x;
    param[p] = s.w.x;
  }
}

// adam over vec4s: params.n, off and offGrad count vec4s here.
@compute @workgroup_size(WG)
fn adam4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG;
  let lr = step_lr();
  let lr_t = step_size(lr);
  let keep = decoupled_keep(DECAY == 2u, lr, params.weightDecay);
  let scale = grad_scale();
  for (var i = gid.x; i < params.n; i += stride) {
    let p = params.off + i;
    let w = param4[p];
    let g = effective_grad4(grad4[params.offGrad + i], w, scale, DECAY == 1u, params.weightDecay);
    let s = adam_update4(w, g, m4[p], v4[p], params.oneMinusBeta1, params.oneMinusBeta2, lr_t, params.epsilon, keep);
    m4[p] = s.m;
    v4[p] = s.v;
    param4[p] = s.w;
  }
}
