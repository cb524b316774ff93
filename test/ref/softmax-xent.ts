// Float64 CPU twin of shaders/softmax_xent.wgsl.

export interface SoftmaxXentRef {
  /** Per-example loss [B]. */
  loss: Float64Array;
  /** Gradient of the batch-mean loss w.r.t. the logits, (softmax − onehot)/B, [B, C]. */
  grad: Float64Array;
  mean: number;
}

export function softmaxXentRef(logits: ArrayLike<number>, labels: ArrayLike<number>, B: number, C: number): SoftmaxXentRef {
  const loss = new Float64Array(B);
  const grad = new Float64Array(B * C);
  let total = 0;
  for (let r = 0; r < B; r++) {
    const base = r * C;
    let m = -Infinity;
    for (let k = 0; k < C; k++) m = Math.max(m, logits[base + k]);
    let s = 0;
    for (let k = 0; k < C; k++) s += Math.exp(logits[base + k] - m);
    const lab = labels[r];
    loss[r] = Math.log(s) - (logits[base + lab] - m);
    total += loss[r];
    for (let k = 0; k < C; k++) grad[base + k] = (Math.exp(logits[base + k] - m) / s - (k === lab ? 1 : 0)) / B;
  }
  return { loss, grad, mean: total / B };
}
