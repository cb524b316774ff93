// Shared WGSL functions, appended to every other shader by tools/embed-shaders.mjs (appended rather
// than prepended, so a compiler error's line number in a shader is its line in the file; an error
// past the shader's last line is reported as a line of this file). Functions only: no bindings or
// overrides, and nothing that costs a shader which does not call it.

// Activation codes, shared by the matmul epilogues and the activation kernel:
// 0 identity, 1 relu, 2 sigmoid, 3 tanh.

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

// `kind` is an override constant at every call, so the switch folds away when the pipeline is made.
fn activate(kind: u32, v: f32) -> f32 {
  switch kind {
    case 1u: { return max(v, 0.0); }
    case 2u: { return sigmoid(v); }
    case 3u: { return tanh_accurate(v); }
    default: { return v; }
  }
}

fn activate4(kind: u32, v: vec4f) -> vec4f {
  switch kind {
    case 1u: { return max(v, vec4f(0.0)); }
    case 2u: { return 1.0 / (1.0 + exp(-v)); }
    case 3u: { return tanh_accurate4(v); }
    default: { return v; }
  }
}
