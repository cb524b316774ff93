// Float64 CPU twins of the kernels, and helpers to compare GPU results against them.
import { expect } from 'chai';

import { mulberry32 } from '../../src/data/random.js';

/** Deterministic PRNG (mulberry32) so a failing case can be re-run from its seed. */
export const rng = mulberry32;

/** Uniform values in [-scale, scale], never exactly zero. */
export function randomArray(n: number, rand: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = (rand() * 2 - 1) * scale;
    if (v === 0) v = scale / 2;
    out[i] = v;
  }
  return out;
}

/** Uniform values in [lo, hi) (e.g. second moments, which must be positive). */
export function randomBetween(n: number, rand: () => number, lo: number, hi: number): Float32Array {
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());
}

export function relError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (got.length !== ref.length) throw new Error(`length mismatch: got ${got.length}, reference ${ref.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = got[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (!Number.isFinite(num)) return Infinity; // a NaN left by the poison means an unwritten element
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/**
 * Asserts ‖got − ref‖/‖ref‖ < tol, every element finite, and every element within
 * tol·(|ref[i]| + ‖ref‖/√n): the norm alone lets one bad element hide among many good ones,
 * and the ‖ref‖/√n floor keeps elements near zero from demanding more than float32 gives.
 */
export function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what = 'result'): void {
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i])) expect.fail(`${what}: element ${i} is ${got[i]} (reference ${ref[i]}); unwritten or overflowed`);
  }
  const e = relError(got, ref);
  expect(e, `${what}: relative error ${e.toExponential(2)} ≥ ${tol}`).to.be.lessThan(tol);
  let sumSq = 0;
  for (let i = 0; i < ref.length; i++) sumSq += ref[i] * ref[i];
  const floor = ref.length > 0 ? Math.sqrt(sumSq / ref.length) : 0;
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    const bound = tol * (Math.abs(ref[i]) + floor);
    if (!(err <= bound)) {
      expect.fail(`${what}: element ${i} is ${got[i]}, reference ${ref[i]}: error ${err.toExponential(2)} > ` +
        `${tol}·(|ref| + ‖ref‖/√n) = ${bound.toExponential(2)}`);
    }
  }
}

export type Act = 'none' | 'relu' | 'sigmoid' | 'tanh';

export function activate(x: number, act: Act): number {
  switch (act) {
    case 'relu': return Math.max(0, x);
    case 'sigmoid': return 1 / (1 + Math.exp(-x));
    case 'tanh': return Math.tanh(x);
    default: return x;
  }
}

/** C[M,N] = op(A)·op(B) (+bias) (→act) (+C0), in float64. A stored [M,K] or [K,M] (transA), B [K,N] or [N,K] (transB). */
export function matmulRef(
  A: ArrayLike<number>, B: ArrayLike<number>, M: number, N: number, K: number,
  o: { transA?: boolean; transB?: boolean; bias?: ArrayLike<number>; act?: Act; c0?: ArrayLike<number> } = {},
): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const a = o.transA ? A[k * M + i] : A[i * K + k];
        const b = o.transB ? B[j * K + k] : B[k * N + j];
        s += a * b;
      }
      if (o.bias) s += o.bias[j];
      s = activate(s, o.act ?? 'none');
      if (o.c0) s += o.c0[i * N + j];
      C[i * N + j] = s;
    }
  }
  return C;
}

/**
 * Central-difference gradient of a scalar float64 function, compared with an analytic gradient:
 * returns ‖numeric − analytic‖/‖numeric‖. Use on the CPU twins (float64), where 1e-6 is reachable.
 */
export function gradCheck(f: (x: Float64Array) => number, x: Float64Array, analytic: ArrayLike<number>, eps = 1e-6): number {
  const numeric = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + eps;
    const fp = f(x);
    x[i] = keep - eps;
    const fm = f(x);
    x[i] = keep;
    numeric[i] = (fp - fm) / (2 * eps);
  }
  return relError(analytic, numeric);
}

/** Sum of w[i]·y[i]: turns a tensor-valued function into a scalar for gradient checks (dL/dy = w). */
export function dot(w: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += w[i] * y[i];
  return s;
}
