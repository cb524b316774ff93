// fillBatch: examples gathered into the model's input layout (rows, or time-major for recurrent
// models), against a plain per-element reference; padding past `count` is zero.
import { expect } from 'chai';
import { fillBatch } from '../src/nn/nets.js';
import type { InputLayout } from '../src/nn/model.js';
import { rng } from './support/cpu.js';

/** out[...] as fillBatch must write it, one element at a time. */
function fillBatchRef(layout: InputLayout, shape: readonly number[], examples: Float32Array, index: ArrayLike<number>, count: number, batch: number): Float32Array {
  const P = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(batch * P);
  const T = shape[0], I = P / T;
  for (let b = 0; b < count; b++) {
    for (let e = 0; e < P; e++) {
      const at = layout === 'rows' ? b * P + e : (Math.floor(e / I) * batch + b) * I + (e % I);
      out[at] = examples[index[b] * P + e];
    }
  }
  return out;
}

describe('fillBatch (a batch in the model\'s input layout)', () => {
  const cases: { layout: InputLayout; shape: number[] }[] = [
    { layout: 'rows', shape: [7, 5] },
    { layout: 'time-major', shape: [28, 28] },   // the rnn's
    { layout: 'time-major', shape: [3, 300] },
    { layout: 'time-major', shape: [5, 1] },
  ];
  for (const { layout, shape } of cases) {
    it(`${layout} [${shape.join(', ')}]: every element where the reference puts it, zeros past the examples given`, () => {
      const rand = rng(shape[0] * 31 + shape[1]);
      const P = shape[0] * shape[1];
      const examples = Float32Array.from({ length: 13 * P }, () => rand() * 2 - 1);
      const batch = 6, count = 5;
      const index = Array.from({ length: batch }, () => Math.floor(rand() * 13));
      const out = new Float32Array(batch * P).fill(Number.NaN); // poisoned: every element must be written
      fillBatch(layout, shape, examples, index, count, out, batch);
      expect(Array.from(out)).to.deep.equal(Array.from(fillBatchRef(layout, shape, examples, index, count, batch)));
    });
  }
});
