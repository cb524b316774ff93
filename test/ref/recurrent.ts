// Float64 CPU twins of src/kernels/recurrent.ts: LSTM (TF BasicLSTMCell), GRU (TF GRUCell) and the basic
// tanh RNN (TF BasicRNNCell) over T steps, time-major, with full backpropagation through time.
//
// Layouts (the same as the GPU kernels'):
//   x [T, B, I]; outputs h [T, B, H]; initial/final states [B, H].
//   w [I+H, G·H] = TF's kernel for concat([x, h]) (rows 0..I-1 multiply x, rows I..I+H-1 multiply h),
//   b [G·H]. Column blocks of H: LSTM i, a (=TF's j), f, o (G=4); GRU r, u, c (G=3: TF's gate kernel is
//   columns 0..2H-1, its candidate kernel columns 2H..3H-1); RNN one block (G=1).
export type Cell = 'lstm' | 'gru' | 'rnn';
export const GATES: Record<Cell, number> = { lstm: 4, gru: 3, rnn: 1 };

export interface Dims { T: number; B: number; I: number; H: number }

const sig = (v: number) => 1 / (1 + Math.exp(-v));

export interface LayerForward {
  /** h[(T+1)·B·H]: h[0] is the initial state, h[t+1] the output of step t. */
  h: Float64Array;
  /** LSTM cell states, same layout as h (zeros for the other cells). */
  c: Float64Array;
  /** Gate activations per step [T, B, G·H] (LSTM i, a, f, o; GRU r, u, c; RNN h). */
  g: Float64Array;
}

/** One layer forward. h0/c0 default to zeros. */
export function layerForwardRef(
  cell: Cell, d: Dims, x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>,
  o: { h0?: ArrayLike<number>; c0?: ArrayLike<number>; forgetBias?: number } = {},
): LayerForward {
  const { T, B, I, H } = d;
  const G = GATES[cell], GH = G * H;
  const fb = o.forgetBias ?? 1;
  const h = new Float64Array((T + 1) * B * H);
  const c = new Float64Array((T + 1) * B * H);
  const g = new Float64Array(T * B * GH);
  if (o.h0) for (let i = 0; i < B * H; i++) h[i] = o.h0[i];
  if (o.c0 && cell === 'lstm') for (let i = 0; i < B * H; i++) c[i] = o.c0[i];
  const z = new Float64Array(GH);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < B; n++) {
      const xo = (t * B + n) * I, ho = (t * B + n) * H, go = (t * B + n) * GH, no = ((t + 1) * B + n) * H;
      // x-part and bias for every column; h-part for all but the GRU candidate
      for (let j = 0; j < GH; j++) {
        let s = b[j];
        for (let k = 0; k < I; k++) s += x[xo + k] * w[k * GH + j];
        if (!(cell === 'gru' && j >= 2 * H)) for (let k = 0; k < H; k++) s += h[ho + k] * w[(I + k) * GH + j];
        z[j] = s;
      }
      if (cell === 'lstm') {
        for (let j = 0; j < H; j++) {
          const i = sig(z[j]), a = Math.tanh(z[H + j]), f = sig(z[2 * H + j] + fb), og = sig(z[3 * H + j]);
          const cn = f * c[ho + j] + i * a;
          c[no + j] = cn;
          h[no + j] = og * Math.tanh(cn);
          g[go + j] = i; g[go + H + j] = a; g[go + 2 * H + j] = f; g[go + 3 * H + j] = og;
        }
      } else if (cell === 'gru') {
        for (let j = 0; j < H; j++) { g[go + j] = sig(z[j]); g[go + H + j] = sig(z[H + j]); }
        for (let j = 0; j < H; j++) {
          let s = z[2 * H + j];
          for (let k = 0; k < H; k++) s += g[go + k] * h[ho + k] * w[(I + k) * GH + 2 * H + j]; // (r⊙h)·W_hc
          const cc = Math.tanh(s), u = g[go + H + j];
          g[go + 2 * H + j] = cc;
          h[no + j] = u * h[ho + j] + (1 - u) * cc;
        }
      } else {
        for (let j = 0; j < H; j++) { h[no + j] = Math.tanh(z[j]); g[go + j] = h[no + j]; }
      }
    }
  }
  return { h, c, g };
}

export interface LayerGrads {
  dx: Float64Array; dw: Float64Array; db: Float64Array; dh0: Float64Array; dc0: Float64Array;
}

/**
 * Backpropagation through time of one layer. dy is [T, B, H] (gradient of every output, many-to-many)
 * or [B, H] (gradient of the last output only, many-to-one), told apart by its length.
 */
export function layerBackwardRef(
  cell: Cell, d: Dims, x: ArrayLike<number>, w: ArrayLike<number>, fwd: LayerForward, dy: ArrayLike<number>,
): LayerGrads {
  const { T, B, I, H } = d;
  const G = GATES[cell], GH = G * H;
  const all = dy.length === T * B * H;
  if (!all && dy.length !== B * H) throw new Error(`layerBackwardRef: dy has ${dy.length} elements`);
  const { h, c, g } = fwd;
  const dx = new Float64Array(T * B * I), dw = new Float64Array((I + H) * GH), db = new Float64Array(GH);
  let dh = new Float64Array(B * H); // recurrent gradient into h_t
  const dc = new Float64Array(B * H);
  const dz = new Float64Array(GH);
  for (let t = T - 1; t >= 0; t--) {
    const dhPrev = new Float64Array(B * H);
    for (let n = 0; n < B; n++) {
      const xo = (t * B + n) * I, ho = (t * B + n) * H, go = (t * B + n) * GH, no = ((t + 1) * B + n) * H;
      const dht = (j: number) => dh[n * H + j] + (all ? dy[(t * B + n) * H + j] : t === T - 1 ? dy[n * H + j] : 0);
      if (cell === 'lstm') {
        for (let j = 0; j < H; j++) {
          const i = g[go + j], a = g[go + H + j], f = g[go + 2 * H + j], og = g[go + 3 * H + j];
          const tc = Math.tanh(c[no + j]);
          const dhj = dht(j);
          const dcj = dc[n * H + j] + dhj * og * (1 - tc * tc);
          dz[j] = dcj * a * i * (1 - i);
          dz[H + j] = dcj * i * (1 - a * a);
          dz[2 * H + j] = dcj * c[ho + j] * f * (1 - f);
          dz[3 * H + j] = dhj * tc * og * (1 - og);
          dc[n * H + j] = dcj * f;
        }
      } else if (cell === 'gru') {
        const drh = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          const u = g[go + H + j], cc = g[go + 2 * H + j], dhj = dht(j);
          dz[2 * H + j] = dhj * (1 - u) * (1 - cc * cc);
          dz[H + j] = dhj * (h[ho + j] - cc) * u * (1 - u);
          dhPrev[n * H + j] += dhj * u;
        }
        for (let k = 0; k < H; k++) {
          let s = 0;
          for (let j = 0; j < H; j++) s += dz[2 * H + j] * w[(I + k) * GH + 2 * H + j];
          drh[k] = s;
        }
        for (let k = 0; k < H; k++) {
          const r = g[go + k];
          dz[k] = drh[k] * h[ho + k] * r * (1 - r);
          dhPrev[n * H + k] += drh[k] * r;
          for (let j = 0; j < H; j++) dw[(I + k) * GH + 2 * H + j] += r * h[ho + k] * dz[2 * H + j];
        }
      } else {
        for (let j = 0; j < H; j++) { const hv = h[no + j]; dz[j] = dht(j) * (1 - hv * hv); }
      }
      // shared: weight, bias, input and recurrent gradients of the pre-activations
      for (let j = 0; j < GH; j++) {
        const gz = dz[j];
        db[j] += gz;
        for (let k = 0; k < I; k++) { dw[k * GH + j] += x[xo + k] * gz; dx[xo + k] += w[k * GH + j] * gz; }
        if (cell === 'gru' && j >= 2 * H) continue; // the candidate's h-part was done above (through r⊙h)
        for (let k = 0; k < H; k++) { dw[(I + k) * GH + j] += h[ho + k] * gz; dhPrev[n * H + k] += w[(I + k) * GH + j] * gz; }
      }
    }
    dh = dhPrev;
  }
  return { dx, dw, db, dh0: dh, dc0: cell === 'lstm' ? dc : new Float64Array(B * H) };
}

export interface StackParams { w: ArrayLike<number>; b: ArrayLike<number> }

/** Stacked layers (MultiRNNCell): layer l>0 reads mask[l-1] ⊙ (outputs of layer l-1); masks hold 0 or 1/keep. */
export function stackForwardRef(
  cell: Cell, T: number, B: number, I: number, Hs: number[], x: ArrayLike<number>, params: StackParams[],
  o: { masks?: ArrayLike<number>[]; h0?: ArrayLike<number>[]; c0?: ArrayLike<number>[]; forgetBias?: number } = {},
): { layers: LayerForward[]; inputs: Float64Array[] } {
  const layers: LayerForward[] = [];
  const inputs: Float64Array[] = [];
  let input = Float64Array.from(x);
  let In = I;
  for (let l = 0; l < Hs.length; l++) {
    inputs.push(input);
    const f = layerForwardRef(cell, { T, B, I: In, H: Hs[l] }, input, params[l].w, params[l].b,
      { h0: o.h0?.[l], c0: o.c0?.[l], forgetBias: o.forgetBias });
    layers.push(f);
    const H = Hs[l];
    input = f.h.slice(B * H);
    if (o.masks && l < Hs.length - 1) for (let i = 0; i < input.length; i++) input[i] *= o.masks[l][i];
    In = H;
  }
  return { layers, inputs };
}

export function stackBackwardRef(
  cell: Cell, T: number, B: number, I: number, Hs: number[], params: StackParams[],
  fwd: { layers: LayerForward[]; inputs: Float64Array[] }, dy: ArrayLike<number>, masks?: ArrayLike<number>[],
): LayerGrads[] {
  const grads: LayerGrads[] = [];
  let d: ArrayLike<number> = dy;
  for (let l = Hs.length - 1; l >= 0; l--) {
    const In = l === 0 ? I : Hs[l - 1];
    const gl = layerBackwardRef(cell, { T, B, I: In, H: Hs[l] }, fwd.inputs[l], params[l].w, fwd.layers[l], d);
    grads[l] = gl;
    if (l > 0) {
      const nd = Float64Array.from(gl.dx);
      if (masks) for (let i = 0; i < nd.length; i++) nd[i] *= masks[l - 1][i];
      d = nd;
    }
  }
  return grads;
}
