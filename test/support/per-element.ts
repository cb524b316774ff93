// Per-element comparison against a float64 reference, next to expectClose's norm-wise one.
import { expect } from 'chai';
import { expectClose } from './cpu.js';

/**
 * Worst per-element error max_i |got_i − ref_i| / max(|ref_i|, rms(ref)): relative for every
 * element of ordinary size, and relative to the tensor's rms for elements near zero (where a
 * cancellation in the computation leaves no relative accuracy to ask for).
 */
export function worstElementError(got: ArrayLike<number>, ref: ArrayLike<number>): { error: number; index: number } {
  if (got.length !== ref.length) throw new Error(`length mismatch: got ${got.length}, reference ${ref.length}`);
  let ss = 0;
  for (let i = 0; i < ref.length; i++) ss += ref[i] * ref[i];
  const rms = Math.sqrt(ss / Math.max(1, ref.length));
  let error = 0, index = -1;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    const scale = Math.max(Math.abs(ref[i]), rms);
    const e = scale === 0 ? d : d / scale;
    if (!(e <= error)) { error = e; index = i; } // NaN counts as the worst
    if (Number.isNaN(e)) break;
  }
  return { error, index };
}

/** expectClose (finite, norm-wise) and every element within `tol` (see worstElementError). */
export function expectEachClose(got: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what = 'result'): void {
  expectClose(got, ref, tol, what);
  const { error, index } = worstElementError(got, ref);
  expect(error, `${what}: element ${index} is ${got[index]}, reference ${ref[index]} (error ${error.toExponential(2)} ≥ ${tol})`).to.be.lessThan(tol);
}
