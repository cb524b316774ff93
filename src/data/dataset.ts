// What the loaders hand to training and evaluation: examples of any per-example shape, with class labels.
// Host-side only, no file system: shared by Node and the browser.

/** Labelled examples: `count` examples of `shape`, flattened example after example, and one class label each. */
export interface Dataset {
  count: number;
  /** count × prod(shape) values, example after example (row-major within an example). */
  images: Float32Array;
  /** One class index per example, each below `classes`. */
  labels: Uint8Array | Uint32Array;
  /** Per-example shape, e.g. [28, 28] or [28, 28, 1] for images, [784] for vectors, [T, F] for sequences. */
  shape: number[];
  /** Number of classes: the largest label + 1 unless the loader was told. */
  classes: number;
}

/** The part of a Dataset that training and evaluation read (older code's name for it). */
export type LabelledImages = Pick<Dataset, 'count' | 'images' | 'labels'>;

/** Values per example: the product of the shape (1 for a scalar shape []). */
export function exampleSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A shape as the messages write it: 28x28, 28x28x1, 784. */
export function formatShape(shape: readonly number[]): string {
  return shape.length ? shape.join('x') : 'scalar';
}

/** Examples [from, to) of a data set, as views (no copy). */
export function sliceDataset(data: Dataset, from: number, to: number): Dataset {
  if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && from >= 0 && from <= to && to <= data.count)) {
    throw new RangeError(`sliceDataset: [${from}, ${to}) is not a range of the ${data.count} examples`);
  }
  const size = exampleSize(data.shape);
  return {
    count: to - from,
    images: data.images.subarray(from * size, to * size),
    labels: data.labels.subarray(from, to),
    shape: [...data.shape],
    classes: data.classes,
  };
}
