// Float64 CPU twin of shaders/softmax_xent.wgsl.

export interface SoftmaxXentRef {
  /** Per-example loss [B]. */
  loss: Float64Array;
  /** Gradient of the batch-mean loss w.r.t. the logits, (softmax − onehot)/B, [B, C]. */
  grad: Float64Array;
  mean: number;
}

/**
 * With `smoothing` ε the target is q = (1 − ε)·onehot + ε/C (Keras/PyTorch label_smoothing): the loss
 * is −Σ_k q_k·log p_k and the gradient (p − q)/B, computed here from that definition directly.
 */
export function softmaxXentRef(logits: ArrayLike<number>, labels: ArrayLike<number>, B: number, C: number, smoothing = 0): SoftmaxXentRef {
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
    const target = (k: number) => (k === lab ? 1 - smoothing : 0) + smoothing / C;
    if (smoothing === 0) {
      loss[r] = Math.log(s) - (logits[base + lab] - m);
    } else {
      let l = 0;
      for (let k = 0; k < C; k++) l -= target(k) * (logits[base + k] - m - Math.log(s));
      loss[r] = l;
    }
    total += loss[r];
    for (let k = 0; k < C; k++) grad[base + k] = (Math.exp(logits[base + k] - m) / s - (smoothing === 0 ? (k === lab ? 1 : 0) : target(k))) / B;
  }
  return { loss, grad, mean: total / B };
}
