// The data check of a model whose input holds integer ids (it feeds an Embedding): every value of
// every split must be an id below the Embedding's input_dim, checked once when the data is loaded.
// Ids come from f32 IDX files, values as they are (u8 IDX images are scaled to [0, 1] on loading).
import { basename } from 'node:path';
import { DataError } from '../data/idx.js';
import type { IdxDataset } from '../data/mnist.js';
import type { Model } from '../nn/model.js';

/** Throws DataError naming the file, the example, the id and input_dim at the first bad value. */
export function checkIdsData(model: Model, data: Pick<IdxDataset, 'train' | 'validation' | 'test' | 'files'>, what: string): void {
  const ids = model.idLimit;
  if (!ids) return;
  const P = model.inputSize;
  const splits = [
    { set: data.train, file: data.files.trainImages, first: 0 },
    { set: data.validation, file: data.files.trainImages, first: data.train.count },
    { set: data.test, file: data.files.testImages, first: 0 },
  ];
  for (const { set, file, first } of splits) {
    const v = set.images;
    for (let k = 0; k < set.count * P; k++) {
      if (Number.isInteger(v[k]) && v[k] >= 0 && v[k] < ids.limit) continue;
      const example = first + Math.floor(k / P);
      const value = Number.isInteger(v[k]) ? `id ${v[k]}` : `value ${v[k]}, not an integer id (u8 IDX images are scaled to [0, 1]: store ids in an f32 IDX file),`;
      throw new DataError(`${what}: ${basename(file)} example ${example} has ${value} at position ${k % P}, but ${ids.layer.describe()} has input_dim ${ids.limit} (ids 0-${ids.limit - 1})`);
    }
  }
}
