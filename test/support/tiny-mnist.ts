// A small synthetic set in the MNIST IDX format, for CLI runs that must be quick.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { idxImages, idxLabels } from './idx.js';

/** Writes `train` training and `test` test images of 28x28 (labels cycling through 0-9) into `dir`; returns `dir`. */
export function writeTinyMnist(dir: string, train = 120, test = 20): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'train-images-idx3-ubyte'), idxImages(train, 28, 28, (i) => (i * 37 + 101) % 256));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxLabels(Array.from({ length: train }, (_, i) => (i * 7) % 10)));
  writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idxImages(test, 28, 28, (i) => (i * 37 + 202) % 256));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idxLabels(Array.from({ length: test }, (_, i) => (i * 3) % 10)));
  return dir;
}
