// The IDX format parsed from bytes, and the seeded shuffle: no file system, so the same code reads
// the data in Node (src/data/mnist.ts) and in a web page (src/data/fetch-mnist.ts).
// An IDX file: two zero bytes, a type byte, a rank byte, one big-endian u32 size per dimension,
// then the values (big-endian for multi-byte types). Examples files have rank ≥ 2 ([N, ...shape]),
// labels files rank 1 ([N]).
import { exampleSize, formatShape, type Dataset } from './dataset.js';
import { mulberry32 } from './random.js';

/** A bad data folder or file. The message is one line: the file, what is wrong, how to fix it. */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

/** IDX magic numbers of MNIST's files: type 0x08 (unsigned byte), rank 3 (images) and rank 1 (labels). */
export const IMAGES_MAGIC = 0x00000803;
export const LABELS_MAGIC = 0x00000801;
/** The class count of MNIST's digits (and of the built-in nets' outputs). */
export const NUM_CLASSES = 10;

/** IDX type bytes (the third byte of the magic number). */
export const IDX_TYPES = { u8: 0x08, i8: 0x09, i16: 0x0b, i32: 0x0c, f32: 0x0d, f64: 0x0e } as const;
type IdxType = keyof typeof IDX_TYPES;
const TYPE_BYTES: Record<IdxType, number> = { u8: 1, i8: 1, i16: 2, i32: 4, f32: 4, f64: 8 };
const typeOf = (code: number): IdxType | undefined => (Object.keys(IDX_TYPES) as IdxType[]).find((t) => IDX_TYPES[t] === code);

export interface IdxImages {
  /** The file it came from (for messages). */
  file: string;
  count: number;
  /** Per-example shape: the file's dimensions after the first. */
  shape: number[];
  /** shape[0] and shape[1] for examples of rank ≥ 2; 1 and shape[0] for vectors. */
  rows: number;
  cols: number;
  /** The type the values were stored as: u8 is scaled to [0, 1], f32 kept as is. */
  type: 'u8' | 'f32';
  /** [count, prod(shape)]. */
  pixels: Float32Array;
}

export interface IdxLabels {
  file: string;
  count: number;
  /** u8 files give Uint8Array, i32 files Uint32Array. */
  labels: Uint8Array | Uint32Array;
  /** The largest label + 1 (0 for an empty file). */
  classes: number;
}

/** One part of a data set (a Dataset; `rows` and `cols` as in IdxImages, for image code). */
export type Split = Dataset;

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

const MAGIC_HINT = 'IDX magic numbers are 0x0000TTDD: two zero bytes, a type TT (08 u8, 09 i8, 0B i16, 0C i32, 0D f32, 0E f64) and the number of dimensions DD';

interface Header {
  type: IdxType;
  dims: number[];
  /** Byte offset of the first value. */
  offset: number;
}

/**
 * Reads and checks an IDX header: its magic (`types` and `rankOk` say which types and ranks this
 * kind of file may have; `expected` describes them for the message), and that the file holds
 * exactly the values it announces. `what` is 'images' or 'labels'.
 */
function readHeader(file: string, bytes: Uint8Array, what: 'images' | 'labels', types: readonly IdxType[], rankOk: (rank: number) => boolean, expected: string): Header {
  if (bytes.length < 4) throw new DataError(`${file} is truncated: ${bytes.length} bytes, too short for an IDX header; download it again`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const rank = bytes[3];
  const type = typeOf(bytes[2]);
  const other = what === 'images' ? 'labels' : 'images';
  if (bytes[0] !== 0 || bytes[1] !== 0 || type === undefined) {
    throw new DataError(`${file} has magic number 0x${hex8(magic)}, which is not an IDX magic number (${MAGIC_HINT}): the file is damaged or not an IDX file; expected ${expected}`);
  }
  if (!rankOk(rank)) {
    const hint = rank === 1 && what === 'images' ? ` (that is a ${other} file)` : rank >= 2 && what === 'labels' ? ` (that is an ${other} file)` : '';
    throw new DataError(`${file} has magic number 0x${hex8(magic)}${hint}, a ${type} file of rank ${rank}; expected ${expected}: check that the file is the ${what} file and not swapped or damaged`);
  }
  if (!types.includes(type)) {
    throw new DataError(`${file} has magic number 0x${hex8(magic)}, ${type} values; expected ${expected}: store the ${what} as ${types.join(' or ')}`);
  }
  const offset = 4 + 4 * rank;
  if (bytes.length < offset) throw new DataError(`${file} is truncated: ${bytes.length} bytes, shorter than its ${offset}-byte IDX header; download it again`);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const need = offset + dims.reduce((a, b) => a * b, 1) * TYPE_BYTES[type];
  if (bytes.length < need) {
    throw new DataError(`${file} is truncated: ${bytes.length} bytes but its header (${dims.join('x')} ${type}) needs ${need}; download it again`);
  }
  if (bytes.length > need) {
    throw new DataError(`${file} has ${bytes.length - need} bytes after the ${dims.join('x')} ${what} its header announces: the file is damaged or not an IDX ${what} file`);
  }
  return { type, dims, offset };
}

/**
 * Parses an IDX examples file of rank ≥ 2 ([N, F], [N, H, W], [N, H, W, C], ...): u8 values are
 * scaled to [0, 1], f32 values kept as they are. `file` names it in errors. Throws DataError.
 */
export function parseIdxImages(bytes: Uint8Array, file: string): IdxImages {
  const h = readHeader(file, bytes, 'images', ['u8', 'f32'], (r) => r >= 2,
    `0x${hex8(IMAGES_MAGIC)} (u8 [N, H, W]) or another u8 (0x08) or f32 (0x0D) IDX file of rank 2 or more for an images file`);
  const [count, ...shape] = h.dims;
  if (shape.some((d) => d === 0)) throw new DataError(`${file} has examples of shape ${formatShape(shape)}, with no values: the file is damaged or not an images file`);
  const n = count * exampleSize(shape);
  const pixels = new Float32Array(n);
  if (h.type === 'u8') {
    const src = bytes.subarray(h.offset, h.offset + n);
    for (let i = 0; i < n; i++) pixels[i] = src[i] / 255;
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset + h.offset, n * 4);
    for (let i = 0; i < n; i++) {
      const v = view.getFloat32(4 * i, false);
      if (!Number.isFinite(v)) throw new DataError(`${file} has the value ${v} at index ${i} (example ${Math.floor(i / exampleSize(shape))}): the file is damaged, or clean the data before training`);
      pixels[i] = v;
    }
  }
  const [rows, cols] = shape.length >= 2 ? [shape[0], shape[1]] : [1, shape[0]];
  return { file, count, shape, rows, cols, type: h.type as 'u8' | 'f32', pixels };
}

/**
 * Parses an IDX labels file (rank 1, u8 or i32). Every label must be ≥ 0 and, when `classes` is
 * given, below it. `file` names it in errors. Throws DataError.
 */
export function parseIdxLabels(bytes: Uint8Array, file: string, classes?: number): IdxLabels {
  checkClassCount(classes);
  const h = readHeader(file, bytes, 'labels', ['u8', 'i32'], (r) => r === 1,
    `0x${hex8(LABELS_MAGIC)} (u8) or 0x00000c01 (i32) for an IDX labels file`);
  const [count] = h.dims;
  let labels: Uint8Array | Uint32Array;
  if (h.type === 'u8') {
    labels = new Uint8Array(bytes.subarray(h.offset, h.offset + count));
  } else {
    labels = new Uint32Array(count);
    const view = new DataView(bytes.buffer, bytes.byteOffset + h.offset, count * 4);
    for (let i = 0; i < count; i++) {
      const v = view.getInt32(4 * i, false);
      if (v < 0) throw new DataError(`${file} has label ${v} at index ${i}: class labels are whole numbers from 0; the file is damaged or not a labels file`);
      labels[i] = v;
    }
  }
  let max = -1;
  for (let i = 0; i < count; i++) {
    if (labels[i] > max) max = labels[i];
    if (classes !== undefined && labels[i] >= classes) {
      throw new DataError(`${file} has label ${labels[i]} at index ${i}, outside 0-${classes - 1}: the file is damaged or has more than the ${classes} classes asked for`);
    }
  }
  return { file, count, labels, classes: max + 1 };
}

/** Throws DataError unless `classes` (when given) is a whole number ≥ 1. */
export function checkClassCount(classes: number | undefined): void {
  if (classes !== undefined && !(Number.isSafeInteger(classes) && classes >= 1)) {
    throw new DataError(`class count ${classes} is not a whole number ≥ 1: give the number of classes the labels use`);
  }
}

/** Throws DataError unless the images and labels files hold the same number of examples. */
export function checkPair(images: IdxImages, labels: IdxLabels): void {
  if (images.count !== labels.count) {
    throw new DataError(`${images.file} has ${images.count} images but ${labels.file} has ${labels.count} labels: use the images and labels files of the same set`);
  }
}

/** Examples [from, to) of a paired images and labels file, as views (no copy), with `classes` classes. */
export function splitOf(images: IdxImages, labels: IdxLabels, from: number, to: number, classes = labels.classes): Dataset {
  const size = exampleSize(images.shape);
  return {
    count: to - from,
    images: images.pixels.subarray(from * size, to * size),
    labels: labels.labels.subarray(from, to),
    shape: [...images.shape],
    classes,
  };
}

/**
 * The train and test files of one set, checked against each other: the same per-example shape,
 * and one class count for both (the given one, else the largest label of either + 1). Throws DataError.
 */
export function pairSets(train: { images: IdxImages; labels: IdxLabels }, test: { images: IdxImages; labels: IdxLabels }, classes?: number): number {
  checkPair(train.images, train.labels);
  checkPair(test.images, test.labels);
  if (formatShape(train.images.shape) !== formatShape(test.images.shape)) {
    throw new DataError(`${test.images.file} has ${formatShape(test.images.shape)} examples but ${train.images.file} has ${formatShape(train.images.shape)}: use training and test files of the same set`);
  }
  return classes ?? Math.max(train.labels.classes, test.labels.classes, 1);
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
