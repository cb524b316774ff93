// Shared WGSL functions, appended to every other shader by tools/embed-shaders.mjs (appended rather
// than prepended, so a compiler error's line number in a shader is its line in the file; an error
// past the shader's last line is reported as a line of this file). Functions only: no bindings or
// overrides, and nothing that costs a shader which does not call it.

// Activation codes, shared by the matmul epilogues and the activation kernel:
// 0 identity, 1 relu, 2 sigmoid, 3 tanh, 4 gelu (exact erf form).

// tanh to a few ulp relative everywhere. The built-in tanh is not: lavapipe computes it from exp and
// leaves an absolute error of ~3e-8 near zero (tanh(1e-3) off by 2e-5 relative, tanh(1e-8) by 200%).
// Below 0.25 the Taylor series (the next term is under 2e-8 relative there); above, (1 − e)/(1 + e)
// with e = exp(−2|v|) ≤ 0.61, which neither cancels much nor overflows.
fn tanh_accurate(v: f32) -> f32 {
  let a = abs(v);
  let s = v * v;
  let series = v * (1.0 + s * (-0.33333334 + s * (0.13333334 + s * (-0.053968254 + s * 0.021869488))));
  let e = exp(-2.0 * a);
  return select(sign(v) * (1.0 - e) / (1.0 + e), series, a < 0.25);
}

// tanh_accurate on four lanes (the same arithmetic per lane).
fn tanh_accurate4(v: vec4f) -> vec4f {
  let a = abs(v);
  let s = v * v;
  let series = v * (1.0 + s * (-0.33333334 + s * (0.13333334 + s * (-0.053968254 + s * 0.021869488))));
  let e = exp(-2.0 * a);
  return select(sign(v) * (1.0 - e) / (1.0 + e), series, a < vec4f(0.25));
}

fn sigmoid(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }

// exp(v) to a few ulp relative. exp(v) = exp2(v·log2 e), and rounding v·log2 e to f32 (as a
// plain exp may) costs |v|·6e-8 relative, 1e-6 at v = −17; here the product is formed from 12-bit
// halves (v_hi·L_HI exact), only a fraction |r| ≤ ~0.5 goes to exp2, and the integer part is an
// exact ldexp.
fn exp_accurate(h: f32) -> f32 {
  let L_HI = 1.4423828125;          // log2(e), 12 significant bits
  let L_LO = 3.1222838896346e-4;    // log2(e) − L_HI
  let h_hi = bitcast<f32>(bitcast<u32>(h) & 0xfffff000u);
  let h_lo = h - h_hi;
  let big = h_hi * L_HI;
  let n = round(big);
  let r = (big - n) + (h_hi * L_LO + h_lo * 1.44269504);
  return ldexp(exp2(r), i32(n));
}

// exp(−a²/2) to a few ulp relative: a² is split as a_hi² (exact: a_hi keeps 12 mantissa bits) plus
// (a − a_hi)(a + a_hi), so its rounding (~1e-7 of a², i.e. 2e-6 relative at a = 6) never reaches exp.
fn exp_neg_half_sq(a: f32) -> f32 {
  let a_hi = bitcast<f32>(bitcast<u32>(a) & 0xfffff000u);
  return exp_accurate(-0.5 * a_hi * a_hi) * exp(-0.5 * (a - a_hi) * (a + a_hi));
}

// Φ(v), the standard normal CDF (1 + erf(v/√2))/2: WGSL has no erf. The tail erfc(z)/2, z = |v|/√2,
// is Numerical Recipes' Chebyshev fit erfcc, t·exp(−z² + P(t)), t = 1/(1 + z/2), ~1.2e-7 relative
// everywhere. Relative, not absolute, accuracy matters: gelu(v) for v < 0 is v·erfc(|v|/√2)/2, a small
// number that 1 + erf(v/√2) would lose to cancellation.
fn normal_cdf(v: f32) -> f32 {
  let a = abs(v);
  let t = 1.0 / (1.0 + 0.35355339 * a);
  let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let half_tail = 0.5 * t * exp_accurate(p) * exp_neg_half_sq(a);
  return select(half_tail, 1.0 - half_tail, v > 0.0);
}

// gelu(v) = v·Φ(v) (Keras' default approximate=False).
fn gelu(v: f32) -> f32 { return v * normal_cdf(v); }

// gelu'(v) = Φ(v) + v·φ(v), φ the standard normal density.
fn gelu_grad(v: f32) -> f32 { return normal_cdf(v) + v * 0.39894228 * exp_neg_half_sq(abs(v)); }

// `kind` is an override constant at every call, so the switch folds away when the pipeline is made.
fn activate(kind: u32, v: f32) -> f32 {
  switch kind {
    case 1u: { return max(v, 0.0); }
    case 2u: { return sigmoid(v); }
    case 3u: { return tanh_accurate(v); }
    case 4u: { return gelu(v); }
    default: { return v; }
  }
}

// f'(x) written through y = f(x), for the activations whose derivative is a function of y: relu
// (y > 0, so the gradient at x = 0 is 0, as in TensorFlow), sigmoid y(1 − y), tanh 1 − y²; 1 for
// the identity. gelu's is not (its callers use gelu_grad of x).
fn activation_grad_from_y(kind: u32, yv: f32) -> f32 {
  switch kind {
    case 1u: { return select(0.0, 1.0, yv > 0.0); }
    case 2u: { return yv * (1.0 - yv); }
    case 3u: { return (1.0 - yv) * (1.0 + yv); } // = 1 − y², without the cancellation near |y| = 1
    default: { return 1.0; }
  }
}

fn activation_grad_from_y4(kind: u32, yv: vec4f) -> vec4f {
  return vec4f(activation_grad_from_y(kind, yv.x), activation_grad_from_y(kind, yv.y),
               activation_grad_from_y(kind, yv.z), activation_grad_from_y(kind, yv.w));
}

fn activate4(kind: u32, v: vec4f) -> vec4f {
  switch kind {
    case 1u: { return max(v, vec4f(0.0)); }
    case 2u: { return 1.0 / (1.0 + exp(-v)); }
    case 3u: { return tanh_accurate4(v); }
    case 4u: { return vec4f(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w)); }
    default: { return v; }
  }
}

// ---------------------------------------------------------------------------- Optimizer arithmetic
// Shared by shaders/optimizer.wgsl and the weight-gradient product's epilogue
// (shaders/matmul_subgroup.wgsl, optimizer_step), so a fused update computes the same bits as the update
// kernel. Lane-wise: a scalar caller splats its value and keeps .x.

// The optimizers' uniform: element i of an update touches param/accum/m/v[off + i] and
// grad[offGrad + i], i < n (shaders/optimizer.wgsl; optimizer_step takes its layout from its matmul).
struct OptimizerParams {
  n: u32,
  off: u32,          // element offset into param, accum, m, v
  offGrad: u32,      // element offset into grad
  stepOffset: u32,   // adam: t = step[0] + stepOffset
  lr: f32,
  momentum: f32,
  oneMinusBeta1: f32,
  oneMinusBeta2: f32,
  logBeta1: f32,
  logBeta2: f32,
  epsilon: f32,
  weightDecay: f32,
}

// e^z − 1, accurate also for small |z|.
fn expm1(z: f32) -> f32 {
  if (abs(z) < 0.5) {
    return z * (1.0 + z * (1.0 / 2.0 + z * (1.0 / 6.0 + z * (1.0 / 24.0 + z * (1.0 / 120.0 + z * (1.0 / 720.0
      + z * (1.0 / 5040.0 + z * (1.0 / 40320.0 + z * (1.0 / 362880.0)))))))));
  }
  return exp(z) - 1.0;
}

// Adam's bias-corrected step size at step t: lr·sqrt(1 − β2^t)/(1 − β1^t), with 1 − β^t = −expm1(t·ln β).
fn adam_step_size(lr: f32, t: f32, logBeta1: f32, logBeta2: f32) -> f32 {
  let bc1 = -expm1(t * logBeta1);   // 1 − β1^t
  let bc2 = -expm1(t * logBeta2);   // 1 − β2^t
  return lr * sqrt(bc2) / bc1;
}

// AdamW's factor on the parameter before the Adam step, 1 − lr·weightDecay (lr: this step's rate,
// not the bias-corrected one); 1 without decoupled decay.
fn decoupled_keep(decoupled: bool, lr: f32, weightDecay: f32) -> f32 {
  if (decoupled) { return 1.0 - lr * weightDecay; }
  return 1.0;
}

// The gradient an update uses: clipped by `scale`, plus the L2 term weightDecay·w when `l2`.
fn effective_grad4(g_in: vec4f, w_in: vec4f, scale: f32, l2: bool, weightDecay: f32) -> vec4f {
  if (l2) { return g_in * scale + weightDecay * w_in; }
  return g_in * scale;
}

// One SGD step, and one with (Nesterov) momentum: a = μa + g; w −= lr·a (Nesterov: w −= lr·g + lr·μ·a).
fn sgd_update4(w_in: vec4f, g_in: vec4f, lr: f32) -> vec4f {
  return w_in - lr * g_in;
}

struct MomentumStep4 { w: vec4f, a: vec4f }

fn momentum_update4(w_in: vec4f, g_in: vec4f, a_old: vec4f, lr: f32, mu: f32, nesterov: bool) -> MomentumStep4 {
  let a_new = mu * a_old + g_in;
  if (nesterov) { return MomentumStep4(w_in - (g_in * lr + a_new * mu * lr), a_new); }
  return MomentumStep4(w_in - lr * a_new, a_new);
}

// One Adam step: the moments, then the parameter (decayed first by `keep`, 1 without AdamW's decay).
struct AdamStep4 { w: vec4f, m: vec4f, v: vec4f }

// (Parameter names differ from the shaders' bindings: wgsl_reflect would take them for uses of those.)
fn adam_update4(w_old: vec4f, g_in: vec4f, m_old: vec4f, v_old: vec4f, oneMinusBeta1: f32, oneMinusBeta2: f32,
                lr_t: f32, epsilon: f32, keep: f32) -> AdamStep4 {
  let m_new = m_old + (g_in - m_old) * oneMinusBeta1;
  let v_new = v_old + (g_in * g_in - v_old) * oneMinusBeta2;
  return AdamStep4(w_old * keep - (m_new * lr_t) / (sqrt(v_new) + epsilon), m_new, v_new);
}
