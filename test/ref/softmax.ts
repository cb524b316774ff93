// Float64 CPU twins of shaders/softmax.wgsl.

/** y = softmax over the last axis of x [R, C] (max-subtracted). */
export function softmaxRef(x: ArrayLike<number>, R: number, C: number): Float64Array {
  const y = new Float64Array(R * C);
  for (let r = 0; r < R; r++) {
    const base = r * C;
    let m = -Infinity;
    for (let k = 0; k < C; k++) m = Math.max(m, x[base + k]);
    let s = 0;
    for (let k = 0; k < C; k++) s += (y[base + k] = Math.exp(x[base + k] - m));
    for (let k = 0; k < C; k++) y[base + k] /= s;
  }
  return y;
}

/** dx = y ⊙ (dy − Σ_row dy⊙y) from the forward output y (+ dx0 when accumulating). */
export function softmaxBackwardRef(y: ArrayLike<number>, dy: ArrayLike<number>, R: number, C: number, dx0?: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(R * C);
  for (let r = 0; r < R; r++) {
    const base = r * C;
    let d = 0;
    for (let k = 0; k < C; k++) d += dy[base + k] * y[base + k];
    for (let k = 0; k < C; k++) dx[base + k] = y[base + k] * (dy[base + k] - d) + (dx0 ? dx0[base + k] : 0);
  }
  return dx;
}
