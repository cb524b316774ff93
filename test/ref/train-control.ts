// Float64 CPU twins of shaders/train_control.wgsl (learning-rate schedules, global-norm clipping) and of
// the weight-decay variants of shaders/optimizer.wgsl, written from the formulas, not from the kernels.

export interface ScheduleRef {
  kind: 'constant' | 'step' | 'exponential' | 'cosine';
  decaySteps?: number;
  decayRate?: number;
  minLr?: number;
  warmup?: number;
}

/** The learning rate at 0-based step t: warm-up lr·(t+1)/W, then the schedule over t − W. */
export function scheduleRef(lr: number, s: ScheduleRef, t: number): number {
  const w = s.warmup ?? 0;
  if (t < w) return (lr * (t + 1)) / w;
  const k = t - w;
  const n = s.decaySteps ?? 1;
  switch (s.kind) {
    case 'constant': return lr;
    case 'step': return lr * Math.pow(s.decayRate!, Math.floor(k / n));
    case 'exponential': return lr * Math.pow(s.decayRate!, k / n);
    case 'cosine': {
      const min = s.minLr ?? 0;
      const x = Math.min(k, n) / n;
      return min + 0.5 * (lr - min) * (1 + Math.cos(Math.PI * x));
    }
  }
}

/** The global norm of all gradients and the clip scale clipNorm / max(norm, clipNorm). */
export function clipRef(grads: ArrayLike<number>[], clipNorm: number): { norm: number; scale: number } {
  let ss = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
  const norm = Math.sqrt(ss);
  return { norm, scale: norm > clipNorm ? clipNorm / norm : 1 };
}

/** PyTorch SGD with weight_decay (and momentum as TF: a = μa + g): g' = scale·g + wd·p. */
export function sgdDecayRef(p: Float64Array, g: ArrayLike<number>, lr: number, wd: number, scale = 1, accum?: { a: Float64Array; mu: number }): void {
  for (let i = 0; i < p.length; i++) {
    let gi = scale * g[i] + wd * p[i];
    if (accum) {
      accum.a[i] = accum.mu * accum.a[i] + gi;
      gi = accum.a[i];
    }
    p[i] -= lr * gi;
  }
}

/**
 * One AdamW step at t (1-based): p ← p·(1 − lr·wd), then TF 1.x Adam with lr_t = lr·sqrt(1 − β2^t)/(1 − β1^t)
 * on the (clip-scaled) gradient. `l2` instead adds wd·p to the gradient (Adam with weight_decay).
 */
export function adamwRef(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, t: number,
  h: { lr: number; wd: number; scale?: number; l2?: boolean; beta1?: number; beta2?: number; epsilon?: number }): void {
  const b1 = h.beta1 ?? 0.9, b2 = h.beta2 ?? 0.999, eps = h.epsilon ?? 1e-8, scale = h.scale ?? 1;
  const lrT = (h.lr * Math.sqrt(1 - Math.pow(b2, t))) / (1 - Math.pow(b1, t));
  for (let i = 0; i < p.length; i++) {
    const gi = scale * g[i] + (h.l2 ? h.wd * p[i] : 0);
    m[i] = b1 * m[i] + (1 - b1) * gi;
    v[i] = b2 * v[i] + (1 - b2) * gi * gi;
    if (!h.l2) p[i] *= 1 - h.lr * h.wd;
    p[i] -= (lrT * m[i]) / (Math.sqrt(v[i]) + eps);
  }
}
