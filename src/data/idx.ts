// MNIST's IDX format parsed from bytes, and the seeded shuffle: no file system, so the same code
// reads the data in Node (src/data/mnist.ts) and in a web page (src/data/fetch-mnist.ts).
import { mulberry32 } from './random.js';

/** A bad data folder or file. The message is one line: the file, what is wrong, how to fix it. */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

/** IDX magic numbers: two zero bytes, type 0x08 (unsigned byte), number of dimensions. */
export const IMAGES_MAGIC = 0x00000803;
export const LABELS_MAGIC = 0x00000801;
/** Labels must be class indices below this. */
export const NUM_CLASSES = 10;

export interface IdxImages {
  /** The file it came from (for messages). */
  file: string;
  count: number;
  rows: number;
  cols: number;
  /** [count, rows*cols], pixel / 255 in [0, 1]. */
  pixels: Float32Array;
}

export interface IdxLabels {
  file: string;
  count: number;
  labels: Uint8Array;
}

/** One part of the data set. `images` is [count, rows*cols]; both arrays may be views into a larger set. */
export interface Split {
  count: number;
  rows: number;
  cols: number;
  images: Float32Array;
  labels: Uint8Array;
}

function readHeader(file: string, bytes: Uint8Array, magic: number, dims: number, what: string): number[] {
  const headerLen = 4 + 4 * dims;
  if (bytes.length < 4) throw new DataError(`${file} is truncated: ${bytes.length} bytes, too short for an IDX header; download it again`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const got = view.getUint32(0, false);
  if (got !== magic) {
    const hint = got === IMAGES_MAGIC ? ' (that is an images file)' : got === LABELS_MAGIC ? ' (that is a labels file)' : '';
    throw new DataError(`${file} has magic number 0x${hex8(got)}${hint}, expected 0x${hex8(magic)} for an IDX ${what} file: check that the file is the MNIST ${what} file and not swapped or damaged`);
  }
  if (bytes.length < headerLen) throw new DataError(`${file} is truncated: ${bytes.length} bytes, shorter than its ${headerLen}-byte IDX header; download it again`);
  const sizes: number[] = [];
  for (let i = 0; i < dims; i++) sizes.push(view.getUint32(4 + 4 * i, false));
  const expected = headerLen + sizes.reduce((a, b) => a * b, 1);
  if (bytes.length < expected) {
    throw new DataError(`${file} is truncated: ${bytes.length} bytes but its header (${sizes.join('x')}) needs ${expected}; download it again`);
  }
  if (bytes.length > expected) {
    throw new DataError(`${file} has ${bytes.length - expected} bytes after the ${sizes.join('x')} ${what} its header announces: the file is damaged or not an IDX ${what} file`);
  }
  return sizes;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** Parses the bytes of an IDX3 unsigned-byte images file into [count, rows*cols] floats in [0, 1]. `file` names it in errors. */
export function parseIdxImages(bytes: Uint8Array, file: string): IdxImages {
  const [count, rows, cols] = readHeader(file, bytes, IMAGES_MAGIC, 3, 'images');
  if (rows === 0 || cols === 0) throw new DataError(`${file} has images of ${rows}x${cols} pixels: the file is damaged or not an images file`);
  const n = count * rows * cols;
  const pixels = new Float32Array(n);
  const src = bytes.subarray(16, 16 + n);
  for (let i = 0; i < n; i++) pixels[i] = src[i] / 255;
  return { file, count, rows, cols, pixels };
}

/** Parses the bytes of an IDX1 unsigned-byte labels file; every label must be 0-9. `file` names it in errors. */
export function parseIdxLabels(bytes: Uint8Array, file: string): IdxLabels {
  const [count] = readHeader(file, bytes, LABELS_MAGIC, 1, 'labels');
  const labels = new Uint8Array(bytes.subarray(8, 8 + count));
  for (let i = 0; i < count; i++) {
    if (labels[i] >= NUM_CLASSES) {
      throw new DataError(`${file} has label ${labels[i]} at index ${i}, outside 0-${NUM_CLASSES - 1}: the file is damaged or not a digit labels file`);
    }
  }
  return { file, count, labels };
}

/** Throws DataError unless the images and labels files hold the same number of examples. */
export function checkPair(images: IdxImages, labels: IdxLabels): void {
  if (images.count !== labels.count) {
    throw new DataError(`${images.file} has ${images.count} images but ${labels.file} has ${labels.count} labels: use the images and labels files of the same set`);
  }
}

/** Rows [from, to) of a paired images and labels file, as views (no copy). */
export function splitOf(images: IdxImages, labels: IdxLabels, from: number, to: number): Split {
  const size = images.rows * images.cols;
  return {
    count: to - from,
    rows: images.rows,
    cols: images.cols,
    images: images.pixels.subarray(from * size, to * size),
    labels: labels.labels.subarray(from, to),
  };
}

/** Mixes seed and epoch into one 32-bit state (murmur3 finaliser), so epoch k's order needs no epochs before it. */
function mix(seed: number, epoch: number): number {
  let h = (seed >>> 0) ^ Math.imul(epoch + 1, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export interface Shuffler {
  readonly seed: number;
  /**
   * The order of `n` rows for `epoch` (0-based): the same for the same seed and epoch, different
   * from epoch to epoch. Written into `out` when given (length ≥ n), else into a new array.
   */
  permutation(epoch: number, n: number, out?: Uint32Array): Uint32Array;
}

/** A seeded shuffler: a new permutation each epoch, reproducible (and resumable) from seed and epoch. */
export function makeShuffler(seed: number): Shuffler {
  return {
    seed,
    permutation(epoch: number, n: number, out?: Uint32Array): Uint32Array {
      if (out && out.length < n) throw new RangeError(`permutation: out has ${out.length} slots, needs ${n}`);
      const p = out ? out.subarray(0, n) : new Uint32Array(n);
      for (let i = 0; i < n; i++) p[i] = i;
      const rand = mulberry32(mix(seed, epoch));
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        const t = p[i];
        p[i] = p[j];
        p[j] = t;
      }
      return p;
    },
  };
}
