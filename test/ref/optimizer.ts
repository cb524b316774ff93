// Float64 CPU twins of shaders/optimizer.wgsl (updating the arrays in place).

export function sgdRef(p: Float64Array, g: ArrayLike<number>, lr: number): void {
  for (let i = 0; i < p.length; i++) p[i] -= lr * g[i];
}

/** TF MomentumOptimizer: a = μa + g; p −= lr·a (Nesterov: p −= lr·g + lr·μ·a). */
export function momentumRef(p: Float64Array, g: ArrayLike<number>, a: Float64Array, lr: number, mu: number, nesterov = false): void {
  for (let i = 0; i < p.length; i++) {
    a[i] = mu * a[i] + g[i];
    p[i] -= nesterov ? lr * g[i] + lr * mu * a[i] : lr * a[i];
  }
}

export interface AdamHyper { lr: number; beta1?: number; beta2?: number; epsilon?: number }

/** One TF 1.x AdamOptimizer update at step t (t = 1 for the first update). */
export function adamRef(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, t: number, h: AdamHyper): void {
  const b1 = h.beta1 ?? 0.9, b2 = h.beta2 ?? 0.999, eps = h.epsilon ?? 1e-8;
  const lrT = (h.lr * Math.sqrt(1 - b2 ** t)) / (1 - b1 ** t);
  for (let i = 0; i < p.length; i++) {
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    p[i] -= (lrT * m[i]) / (Math.sqrt(v[i]) + eps);
  }
}
