// The comparison every kernel test uses: a norm over the whole tensor and a bound on each element.
import { expect } from 'chai';
import { expectClose, randomArray, relError, rng } from './support/cpu.js';

describe('expectClose (the kernel tests\' comparison with float64)', () => {
  const ref = Float64Array.from(randomArray(10_000, rng(1)));

  it('fails on one bad element that the norm over the whole tensor would hide', () => {
    const got = Float64Array.from(ref);
    got[1234] += 4e-4; // on an element of size ≤ 1, among 10000 exact ones: 7e-6 in norm
    expect(relError(got, ref), 'the norm alone passes').to.be.lessThan(1e-5);
    expect(() => expectClose(got, ref, 1e-5, 'one bad element')).to.throw(/one bad element: element 1234 .*error 4\.00e-4 >/);
  });

  it('passes float32 rounding of every element, also of elements near zero', () => {
    const near = Float64Array.from(ref, (v, i) => (i % 10 === 0 ? v * 1e-6 : v));
    expectClose(Float32Array.from(near), near, 1e-5, 'float32 rounding');
  });

  it('fails on a norm error spread over all elements, and on an element that is not finite', () => {
    expect(() => expectClose(ref.map((v) => v * (1 + 2e-5)), ref, 1e-5, 'spread')).to.throw(/spread: relative error 2\.00e-5/);
    const nan = Float64Array.from(ref);
    nan[5] = NaN;
    expect(() => expectClose(nan, ref, 1e-5, 'poisoned')).to.throw(/poisoned: element 5 is NaN/);
  });
});
