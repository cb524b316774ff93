// Models whose input holds integer ids (an Embedding reads it): the data's values are ids, kept as
// numbers in the data sets (exact in float32 below 2^24) and checked and converted to u32 when a
// batch is written, so a bad id is a one-line error naming the example, never a read off the table.
import type { Model } from './model.js';

/**
 * Converts a batch laid out by fillBatch (rows [batch, ...shape]) to u32 ids in `out`, checking that
 * every value of the first `count` examples is an integer id below the model's Embedding input_dim.
 * `index[b]` names example b in the messages.
 */
export function batchIds(model: Model, values: Float32Array, out: Uint32Array, index: ArrayLike<number>, count: number, who: string): Uint32Array {
  const limit = model.idLimit!;
  const P = model.inputSize;
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    if (!(Number.isInteger(v) && v >= 0 && v < limit.limit)) {
      const b = Math.floor(k / P);
      if (b >= count) { out[k] = 0; continue; } // padding past the last example
      const what = Number.isInteger(v) ? `id ${v}` : `value ${v}, not an integer id,`;
      throw new RangeError(`${who}: example ${index[b]} has ${what} at position ${k % P}, but ${limit.layer.describe()} has input_dim ${limit.limit} (ids 0-${limit.limit - 1})`);
    }
    out[k] = v;
  }
  return out;
}
