// Recurrent layers (LSTM as TF BasicLSTMCell, GRU as TF GRUCell, the basic tanh RNN as TF BasicRNNCell):
// the fused per-step elementwise cell kernels, forward and backward, plus a mask multiply for
// dropout between stacked layers.
// The matmuls (input projection of all steps, h_{t-1}·W_h per step, weight gradients) are
// shaders/matmul.wgsl's; src/kernels/recurrent.ts strings them together.
//
// Layouts (time-major, row-major, element offsets):
//   z  [T, B, G·H]  gate pre-activations x·W_x + b (+ h·W_h, added by the step matmul); the forward
//                   cell kernel overwrites them with the activations that backward needs.
//   hs [T+1, B, H]  hs[0] = h_{-1} (initial state), hs[t+1] = h_t (the outputs).  cs: same, LSTM c.
//   rh [T, B, H]    GRU only: r_t ⊙ h_{t-1}, the candidate matmul's input, kept for dW_hc.
//   dz [T, B, G·H]  gradients of the pre-activations.
//   dhr, dc [B, H]  recurrent gradients flowing from step t to step t-1.
// Gate column blocks of H: LSTM i, a, f, o; GRU r, u, c; RNN one block.
//
// One invocation per (n, j) of [B, H]: lanes run along j, so every per-lane load is contiguous.

override WG: u32 = 64u;
override GATES_IN_DZ: bool = false; // lstm_bwd: the gates are in dz (dz and z are one buffer) and are overwritten by their gradients
override COPY_NEXT_A: bool = false; // lstm_fwd, lstm_bwd: also write this step's h_t [B, H] (or dz_t [B, 4H]) to next_a,
                                    // the A of the next step's matmul with the cell as its epilogue (lstm_fwd_step,
                                    // lstm_bwd_step in shaders/matmul_subgroup.wgsl)

struct Params {
  B: u32, H: u32,
  t: u32,          // time step
  zeroPrev: u32,   // 1: t = 0 and the initial state is zeros (forward writes the zeros into hs[0], cs[0])
  hasDy: u32,      // 1: add dy[dyOff + n*H + j] to dh_t (an output gradient for this step)
  hasRec: u32,     // 1: add the recurrent gradients dhr, dc from step t+1 (0 at the last step)
  dyOff: u32,
  forgetBias: f32, // LSTM: added to the forget gate's pre-activation (TF BasicLSTMCell: 1.0)
  wOff: u32,       // fused steps: element offset of W_h ([H, G·H] rows of w) in w; transpose: also
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> z: array<f32>;
@group(0) @binding(2) var<storage, read_write> hs: array<f32>;
@group(0) @binding(3) var<storage, read_write> cs: array<f32>;
@group(0) @binding(4) var<storage, read_write> rh: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dhr: array<f32>;
@group(0) @binding(7) var<storage, read_write> dc: array<f32>;
@group(0) @binding(8) var<storage, read_write> dz: array<f32>;
@group(0) @binding(9) var<storage, read> drh: array<f32>;
@group(0) @binding(14) var<storage, read> w: array<f32>;         // fused forward: the layer's weights
@group(0) @binding(15) var<storage, read> wt: array<f32>;        // fused backward: W_hᵀ [G·H, H]
@group(0) @binding(16) var<storage, read_write> wt_out: array<f32>;
@group(0) @binding(17) var<storage, read_write> next_a: array<f32>;

// Fused steps (matmul + cell in one dispatch). As in shaders/matmul.wgsl, lanes run along the hidden
// unit j (the weight loads are the only per-lane loads, contiguous), and each invocation also owns TM
// batch rows that are the same for the whole workgroup, so the loads of h (or dz) are uniform.
const TM: u32 = 4u;   // forward (4 gate accumulators per row)
const TMB: u32 = 8u;  // backward (1 accumulator per row)

// Gradient of h_t arriving at step t: from the step's own output and from step t+1.
fn dh_in(idx: u32) -> f32 {
  var g = 0.0;
  if (params.hasRec != 0u) { g = dhr[idx]; }
  if (params.hasDy != 0u) { g += dy[params.dyOff + idx]; }
  return g;
}

// ---------------------------------------------------------------------------------------- LSTM
// c_t = f⊙c_{t-1} + i⊙a, h_t = o⊙tanh(c_t); i, f, o sigmoid (f of z_f + forgetBias), a tanh.

@compute @workgroup_size(WG)
fn lstm_fwd(@builtin(global_invocation_id) gid: vec3u) {
  let H = params.H;
  let BH = params.B * H;
  let idx = gid.x;
  if (idx >= BH) { return; }
  let n = idx / H;
  let j = idx - n * H;
  let zo = (params.t * params.B + n) * 4u * H + j;
  let so = params.t * BH + idx;
  var cp = 0.0;
  if (params.zeroPrev != 0u) { hs[so] = 0.0; cs[so] = 0.0; } else { cp = cs[so]; }
  let i = sigmoid(z[zo]);
  let a = tanh_accurate(z[zo + H]);
  let f = sigmoid(z[zo + 2u * H] + params.forgetBias);
  let o = sigmoid(z[zo + 3u * H]);
  z[zo] = i;
  z[zo + H] = a;
  z[zo + 2u * H] = f;
  z[zo + 3u * H] = o;
  let c = f * cp + i * a;
  cs[so + BH] = c;
  let h = o * tanh_accurate(c);
  hs[so + BH] = h;
  if (COPY_NEXT_A) { next_a[idx] = h; }
}

@compute @workgroup_size(WG)
fn lstm_bwd(@builtin(global_invocation_id) gid: vec3u) {
  let H = params.H;
  let BH = params.B * H;
  let idx = gid.x;
  if (idx >= BH) { return; }
  let n = idx / H;
  let j = idx - n * H;
  let zo = (params.t * params.B + n) * 4u * H + j;
  let so = params.t * BH + idx;
  let dh = dh_in(idx);
  var dcn = 0.0;
  if (params.hasRec != 0u) { dcn = dc[idx]; }
  var i: f32; var a: f32; var f: f32; var o: f32;
  if (GATES_IN_DZ) {
    i = dz[zo]; a = dz[zo + H]; f = dz[zo + 2u * H]; o = dz[zo + 3u * H];
  } else {
    i = z[zo]; a = z[zo + H]; f = z[zo + 2u * H]; o = z[zo + 3u * H];
  }
  let tc = tanh_accurate(cs[so + BH]);
  let dct = dcn + dh * o * (1.0 - tc * tc);
  dz[zo] = dct * a * i * (1.0 - i);
  dz[zo + H] = dct * i * (1.0 - a * a);
  dz[zo + 2u * H] = dct * cs[so] * f * (1.0 - f);
  dz[zo + 3u * H] = dh * tc * o * (1.0 - o);
  dc[idx] = dct * f;
  if (COPY_NEXT_A) {
    let co = n * 4u * H + j;
    next_a[co] = dz[zo]; next_a[co + H] = dz[zo + H]; next_a[co + 2u * H] = dz[zo + 2u * H]; next_a[co + 3u * H] = dz[zo + 3u * H];
  }
}

// Fused forward step t > 0 (or given state): z[t] += h_{t-1}·W_h, then the cell, in one dispatch.
// Workgroups: [ceil(H / WG), ceil(B / TM)].
@compute @workgroup_size(WG)
fn lstm_step(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let H = params.H;
  let B = params.B;
  let BH = B * H;
  let j = wid.x * WG + lid.x;
  let jj = min(j, H - 1u);
  let n0 = wid.y * TM;
  let hb = params.t * BH;
  var acc: array<vec4f, TM>;
  var wp = params.wOff + jj;
  for (var k = 0u; k < H; k++) {
    let wv = vec4f(w[wp], w[wp + H], w[wp + 2u * H], w[wp + 3u * H]);
    for (var r = 0u; r < TM; r++) {
      let n = min(n0 + r, B - 1u);
      acc[r] = fma(vec4f(hs[hb + n * H + k]), wv, acc[r]);
    }
    wp += 4u * H;
  }
  if (j >= H) { return; }
  for (var r = 0u; r < TM; r++) {
    let n = n0 + r;
    if (n < B) {
      let zo = (params.t * B + n) * 4u * H + j;
      let so = hb + n * H + j;
      let pre = acc[r];
      let i = sigmoid(z[zo] + pre.x);
      let a = tanh_accurate(z[zo + H] + pre.y);
      let f = sigmoid(z[zo + 2u * H] + pre.z + params.forgetBias);
      let o = sigmoid(z[zo + 3u * H] + pre.w);
      z[zo] = i;
      z[zo + H] = a;
      z[zo + 2u * H] = f;
      z[zo + 3u * H] = o;
      let c = f * cs[so] + i * a;
      cs[so + BH] = c;
      hs[so + BH] = o * tanh_accurate(c);
    }
  }
}

// Fused backward step t: dh_rec = dz[t+1]·W_hᵀ (from wt = W_hᵀ [4H, H], when hasRec), then the cell
// backward of step t. Workgroups: [ceil(H / WG), ceil(B / TM)].
@compute @workgroup_size(WG)
fn lstm_step_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let H = params.H;
  let B = params.B;
  let BH = B * H;
  let j = wid.x * WG + lid.x;
  let jj = min(j, H - 1u);
  let n0 = wid.y * TMB;
  var acc: array<f32, TMB>;
  if (params.hasRec != 0u) {
    let zb = (params.t + 1u) * B * 4u * H;
    var rows: array<u32, TMB>;
    for (var r = 0u; r < TMB; r++) { rows[r] = zb + min(n0 + r, B - 1u) * 4u * H; }
    var wp = jj;
    for (var k = 0u; k < 4u * H; k++) {
      let wv = wt[wp];
      for (var r = 0u; r < TMB; r++) { acc[r] = fma(dz[rows[r] + k], wv, acc[r]); }
      wp += H;
    }
  }
  if (j >= H) { return; }
  for (var r = 0u; r < TMB; r++) {
    let n = n0 + r;
    if (n < B) {
      let idx = n * H + j;
      let zo = (params.t * B + n) * 4u * H + j;
      let so = params.t * BH + idx;
      var dh = acc[r];
      if (params.hasDy != 0u) { dh += dy[params.dyOff + idx]; }
      var dcn = 0.0;
      if (params.hasRec != 0u) { dcn = dc[idx]; }
      let i = z[zo];
      let a = z[zo + H];
      let f = z[zo + 2u * H];
      let o = z[zo + 3u * H];
      let tc = tanh_accurate(cs[so + BH]);
      let dct = dcn + dh * o * (1.0 - tc * tc);
      dz[zo] = dct * a * i * (1.0 - i);
      dz[zo + H] = dct * i * (1.0 - a * a);
      dz[zo + 2u * H] = dct * cs[so] * f * (1.0 - f);
      dz[zo + 3u * H] = dh * tc * o * (1.0 - o);
      dc[idx] = dct * f;
    }
  }
}

// wt_out[k*H + j] = W_h[j, k] = w[wOff + j*G·H + k] for k < G·H (= B here), j < H: W_hᵀ for the fused backward.
@compute @workgroup_size(WG)
fn transpose_wh(@builtin(global_invocation_id) gid: vec3u) {
  let H = params.H;
  let GH = params.B;
  let idx = gid.x;
  if (idx >= GH * H) { return; }
  let k = idx / H;
  let j = idx - k * H;
  wt_out[idx] = w[params.wOff + j * GH + k];
}

// wt_out[k·4H + 4j + g] = W_h[k, g·H + j] (W_h = w from wOff, [H, 4H]): W_h with each unit's 4 gate
// columns side by side, so that one invocation of lstm_fwd_step (shaders/matmul_subgroup.wgsl) owns them.
@compute @workgroup_size(WG)
fn interleave_wh(@builtin(global_invocation_id) gid: vec3u) {
  let H = params.H;
  let GH = 4u * H;
  let idx = gid.x;
  if (idx >= GH * H) { return; }
  let k = idx / GH;
  let col = idx - k * GH;
  let j = col / 4u;
  let g = col - 4u * j;
  wt_out[idx] = w[params.wOff + k * GH + g * H + j];
}

// ----------------------------------------------------------------------------------------- GRU
// r, u = sigmoid; c = tanh(x·W_xc + (r⊙h_{t-1})·W_hc + b_c); h_t = u⊙h_{t-1} + (1-u)⊙c.
// Per step: matmul z[t][:, r|u] += h_{t-1}·W_h[:, r|u]; gru_gates; matmul z[t][:, c] += rh[t]·W_hc; gru_cell.

@compute @workgroup_size(WG)
fn gru_gates(@builtin(global_invocation_id) gid: vec3u) {
  let H = params.H;
  let BH = params.B * H;
  let idx = gid.x;
  if (idx >= BH) { return; }
  let n = idx / H;
  let j = idx - n * H;
  let zo = (params.t * params.B + n) * 3u * H + j;
  let so = params.t * BH + idx;
  let r = sigmoid(z[zo]);
  let u = sigmoid(z[zo + H]);
  z[zo] = r;
  z[zo + H] = u;
  if (params.zeroPrev != 0u) {
    // h_{-1} = 0: no recurrent matmuls, so the candidate is complete already; finish the step here.
    hs[so] = 0.0;
    rh[so] = 0.0;
    let c = tanh_accurate(z[zo + 2u * H]);
    z[zo + 2u * H] = c;
    hs[so + BH] = (1.0 - u) * c;
  } else {
    rh[so] = r * hs[so];
  }
}

@compute @workgroup_size(WG)
fn gru_cell(@builtin(global_invocation_id) gid: vec3u) {
  let H = params.H;
  let BH = params.B * H;
  let idx = gid.x;
  if (idx >= BH) { return; }
  let n = idx / H;
  let j = idx - n * H;
  let zo = (params.t * params.B + n) * 3u * H + j;
  let so = params.t * BH + idx;
  let u = z[zo + H];
  let c = tanh_accurate(z[zo + 2u * H]);
  z[zo + 2u * H] = c;
  hs[so + BH] = u * hs[so] + (1.0 - u) * c;
}

// Backward, part a: dz_c, dz_u and dh_{t-1} = dh⊙u so far (into dhr, in place).
// Then matmul drh = dz_c·W_hcᵀ; part b; matmul dhr += dz[r|u]·W_h[:, r|u]ᵀ.
@compute @workgroup_size(WG)
fn gru_bwd_a(@builtin(global_invocation_id) gid: vec3u) {
  let H = params.H;
  let BH = params.B * H;
  let idx = gid.x;
  if (idx >= BH) { return; }
  let n = idx / H;
  let j = idx - n * H;
  let zo = (params.t * params.B + n) * 3u * H + j;
  let so = params.t * BH + idx;
  let dh = dh_in(idx);
  let u = z[zo + H];
  let c = z[zo + 2u * H];
  let hp = hs[so];
  dz[zo + 2u * H] = dh * (1.0 - u) * (1.0 - c * c);
  dz[zo + H] = dh * (hp - c) * u * (1.0 - u);
  dhr[idx] = dh * u;
  // h_{-1} = 0: r multiplies zero, its gradient is zero (part b and both matmuls are skipped)
  if (params.zeroPrev != 0u) { dz[zo] = 0.0; }
}

@compute @workgroup_size(WG)
fn gru_bwd_b(@builtin(global_invocation_id) gid: vec3u) {
  let H = params.H;
  let BH = params.B * H;
  let idx = gid.x;
  if (idx >= BH) { return; }
  let n = idx / H;
  let j = idx - n * H;
  let zo = (params.t * params.B + n) * 3u * H + j;
  let so = params.t * BH + idx;
  let r = z[zo];
  let g = drh[idx];
  dz[zo] = g * hs[so] * r * (1.0 - r);
  dhr[idx] += g * r;
}

// ----------------------------------------------------------------------------------------- RNN
// h_t = tanh(x·W_x + h_{t-1}·W_h + b).

@compute @workgroup_size(WG)
fn rnn_fwd(@builtin(global_invocation_id) gid: vec3u) {
  let H = params.H;
  let BH = params.B * H;
  let idx = gid.x;
  if (idx >= BH) { return; }
  let so = params.t * BH + idx;
  if (params.zeroPrev != 0u) { hs[so] = 0.0; }
  hs[so + BH] = tanh_accurate(z[so]);
}

@compute @workgroup_size(WG)
fn rnn_bwd(@builtin(global_invocation_id) gid: vec3u) {
  let BH = params.B * params.H;
  let idx = gid.x;
  if (idx >= BH) { return; }
  let so = params.t * BH + idx;
  let h = hs[so + BH];
  dz[so] = dh_in(idx) * (1.0 - h * h);
}

// ------------------------------------------------------------------------------------- helpers

struct UtilParams {
  n: u32,                 // mask_apply: out[offOut + i] = src[offX + i] * mask[i], i < n
  offX: u32, offOut: u32,
}

@group(0) @binding(10) var<uniform> up: UtilParams;
@group(0) @binding(11) var<storage, read> src: array<f32>;
@group(0) @binding(12) var<storage, read_write> out: array<f32>;
@group(0) @binding(13) var<storage, read> mask: array<f32>;

// Dropout between stacked layers: multiply by a mask of 0 or 1/keep (forward and backward alike).
@compute @workgroup_size(WG)
fn mask_apply(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= up.n) { return; }
  out[up.offOut + i] = src[up.offX + i] * mask[i];
}
