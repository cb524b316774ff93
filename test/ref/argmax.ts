// CPU twin of shaders/argmax.wgsl.

/** Index of the first maximum of each row of x [B, C]. */
export function argmaxRef(x: ArrayLike<number>, B: number, C: number): Uint32Array {
  const out = new Uint32Array(B);
  for (let r = 0; r < B; r++) {
    let best = x[r * C];
    let idx = 0;
    for (let k = 1; k < C; k++) {
      if (x[r * C + k] > best) { best = x[r * C + k]; idx = k; }
    }
    out[r] = idx;
  }
  return out;
}

export function countCorrect(pred: ArrayLike<number>, labels: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) n++;
  return n;
}
