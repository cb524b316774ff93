// Float64 CPU twin of shaders/mse.wgsl (Keras mean squared error).

export interface MseRef {
  /** Mean over all B·D elements of (pred − target)². */
  mean: number;
  /** Gradient of the mean w.r.t. pred: 2(pred − target)/(B·D). */
  grad: Float64Array;
}

export function mseRef(pred: ArrayLike<number>, target: ArrayLike<number>): MseRef {
  const n = pred.length;
  const grad = new Float64Array(n);
  let s = 0;
  for (let i = 0; i < n; i++) {
    const d = pred[i] - target[i];
    s += d * d;
    grad[i] = (2 * d) / n;
  }
  return { mean: s / n, grad };
}
