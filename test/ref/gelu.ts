// Float64 twins of gelu (exact erf form, Keras' approximate=False) and its derivative, with erf
// and erfc computed to ~1e-13: a Taylor series for |z| < 3 and a continued fraction for the tail.

/** erf(z) in float64. */
export function erf(z: number): number {
  if (z < 0) return -erf(-z);
  if (z >= 3) return 1 - erfc(z);
  // erf(z) = 2/√π Σ (−1)ⁿ z^(2n+1) / (n! (2n+1)); terms peak near e^{z²} ≈ 8e3 at z = 3: ~1e-12 left.
  let term = z;
  let sum = z;
  for (let n = 1; n < 200; n++) {
    term *= (-z * z) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** erfc(z) in float64, accurate in relative terms in the tail (z ≥ 3: Lentz's continued fraction). */
export function erfc(z: number): number {
  if (z < 3) return 1 - erf(z);
  // erfc(z) = e^{−z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + 2/(z + …)))))
  const tiny = 1e-300;
  let f = z;
  let c = z;
  let d = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    d = z + a * d;
    d = Math.abs(d) < tiny ? tiny : d;
    c = z + a / c;
    c = Math.abs(c) < tiny ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}

/** Φ(x), the standard normal CDF, relative-accurate in both tails. */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const half = 0.5 * erfc(z);
  return x > 0 ? 1 - half : half;
}

export function geluScalar(x: number): number {
  return x * normalCdf(x);
}

/** gelu'(x) = Φ(x) + x·φ(x). */
export function geluGradScalar(x: number): number {
  return normalCdf(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
}

export function geluRef(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, geluScalar);
}

/** dx (+ dx0) = dy ⊙ gelu'(x). */
export function geluBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>, dx0?: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => dy[i] * geluGradScalar(v) + (dx0 ? dx0[i] : 0));
}
