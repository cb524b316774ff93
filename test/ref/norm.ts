// Float64 twins of batch normalization and layer normalization over x [R, C].

export interface NormForward {
  y: Float64Array;
  mean: Float64Array;
  invstd: Float64Array;
  /** Biased variance per statistic. */
  variance: Float64Array;
}

/** Per-column (batch norm) or per-row (layer norm) statistics and y = xhat·γ + β (γ, β optional). */
export function normRef(kind: 'batch' | 'layer', x: ArrayLike<number>, R: number, C: number, eps: number,
  gamma?: ArrayLike<number>, beta?: ArrayLike<number>): NormForward {
  const S = kind === 'batch' ? C : R;
  const N = kind === 'batch' ? R : C;
  const at = (s: number, k: number) => (kind === 'batch' ? k * C + s : s * C + k);
  const mean = new Float64Array(S), variance = new Float64Array(S), invstd = new Float64Array(S);
  for (let s = 0; s < S; s++) {
    let m = 0;
    for (let k = 0; k < N; k++) m += x[at(s, k)];
    m /= N;
    let v = 0;
    for (let k = 0; k < N; k++) v += (x[at(s, k)] - m) ** 2;
    v /= N;
    mean[s] = m;
    variance[s] = v;
    invstd[s] = 1 / Math.sqrt(v + eps);
  }
  const y = new Float64Array(R * C);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      const s = kind === 'batch' ? c : r;
      y[r * C + c] = (x[r * C + c] - mean[s]) * invstd[s] * (gamma ? gamma[c] : 1) + (beta ? beta[c] : 0);
    }
  }
  return { y, mean, invstd, variance };
}

/** Batch norm in evaluation, from running statistics. */
export function batchNormInferenceRef(x: ArrayLike<number>, R: number, C: number, eps: number, rm: ArrayLike<number>, rv: ArrayLike<number>,
  gamma?: ArrayLike<number>, beta?: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: R * C }, (_, i) => {
    const c = i % C;
    return ((x[i] - rm[c]) / Math.sqrt(rv[c] + eps)) * (gamma ? gamma[c] : 1) + (beta ? beta[c] : 0);
  });
}

/** Keras' moving averages: running·momentum + batch·(1 − momentum). */
export function runningUpdateRef(running: ArrayLike<number>, batch: ArrayLike<number>, momentum: number): Float64Array {
  return Float64Array.from(running, (v, i) => v * momentum + batch[i] * (1 - momentum));
}

/** dx, dγ, dβ of Σ w·y, through the statistics (the full backward), in float64. */
export function normBackwardRef(kind: 'batch' | 'layer', x: ArrayLike<number>, dy: ArrayLike<number>, R: number, C: number, eps: number,
  gamma?: ArrayLike<number>): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const { mean, invstd } = normRef(kind, x, R, C, eps);
  const xhat = (r: number, c: number) => {
    const s = kind === 'batch' ? c : r;
    return (x[r * C + c] - mean[s]) * invstd[s];
  };
  const dgamma = new Float64Array(C), dbeta = new Float64Array(C);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      dbeta[c] += dy[r * C + c];
      dgamma[c] += dy[r * C + c] * xhat(r, c);
    }
  }
  const g = (r: number, c: number) => dy[r * C + c] * (gamma ? gamma[c] : 1);
  const dx = new Float64Array(R * C);
  if (kind === 'batch') {
    for (let c = 0; c < C; c++) {
      let s1 = 0, s2 = 0;
      for (let r = 0; r < R; r++) { s1 += g(r, c); s2 += g(r, c) * xhat(r, c); }
      for (let r = 0; r < R; r++) dx[r * C + c] = (invstd[c] / R) * (R * g(r, c) - s1 - xhat(r, c) * s2);
    }
  } else {
    for (let r = 0; r < R; r++) {
      let s1 = 0, s2 = 0;
      for (let c = 0; c < C; c++) { s1 += g(r, c); s2 += g(r, c) * xhat(r, c); }
      for (let c = 0; c < C; c++) dx[r * C + c] = (invstd[r] / C) * (C * g(r, c) - s1 - xhat(r, c) * s2);
    }
  }
  return { dx, dgamma, dbeta };
}
