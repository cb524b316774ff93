// IDX files of any rank and type: examples [N, F], [N, H, W], [N, H, W, C] in u8 (scaled to [0, 1])
// or f32 (as is), labels in u8 or i32 of any class count, and every bad file named in one line.
import { expect } from 'chai';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { idxFile, idxLabels } from './support/idx.js';
import { expectDataError } from './support/data-errors.js';
import { DataError, parseIdxImages, parseIdxLabels } from '../src/data/idx.js';
import { BatchIterator, checkImageSize, loadIdxDataset, makeShuffler, sliceDataset, type Dataset } from '../src/data/mnist.js';
import { fetchMnist, MNIST_FILE_NAMES } from '../src/data/fetch-mnist.js';


/** A value per element that differs from element to element and from set to set. */
const u8At = (seed: number) => (i: number) => (i * 37 + seed * 11) % 256;
const f32At = (seed: number) => (i: number) => Math.fround(Math.sin(i * 0.7 + seed) * 3.5 - 0.25);

describe('IDX files of any rank and type (src/data/idx.ts)', () => {
  describe('examples files', () => {
    for (const dims of [[7, 5], [6, 4, 3], [5, 3, 2, 4], [3, 2, 2, 2, 3]]) {
      it(`u8 ${dims.join('x')}: shape ${dims.slice(1).join('x')}, each value / 255`, () => {
        const bytes = idxFile('u8', dims, u8At(1));
        const im = parseIdxImages(bytes, 'x.idx');
        const n = dims.reduce((a, b) => a * b, 1);
        expect(im.count).to.equal(dims[0]);
        expect(im.shape).to.deep.equal(dims.slice(1));
        expect(im.type).to.equal('u8');
        expect(im.pixels.length).to.equal(n);
        for (let i = 0; i < n; i++) expect(im.pixels[i], `value ${i}`).to.equal(Math.fround(u8At(1)(i) / 255));
      });

      it(`f32 ${dims.join('x')}: the values as stored (big-endian), negative and above 1 included`, () => {
        const im = parseIdxImages(idxFile('f32', dims, f32At(2)), 'x.idx');
        const n = dims.reduce((a, b) => a * b, 1);
        expect(im.shape).to.deep.equal(dims.slice(1));
        expect(im.type).to.equal('f32');
        for (let i = 0; i < n; i++) expect(im.pixels[i], `value ${i}`).to.equal(f32At(2)(i));
        expect(Math.min(...im.pixels)).to.be.lessThan(0);
        expect(Math.max(...im.pixels)).to.be.greaterThan(1);
      });
    }

    it('u8 0 and 255 become exactly 0 and 1', () => {
      const im = parseIdxImages(idxFile('u8', [1, 2], (i) => (i ? 255 : 0)), 'x');
      expect(Array.from(im.pixels)).to.deep.equal([0, 1]);
    });

    it('a type byte that is no IDX type', () => {
      const bytes = idxFile('u8', [2, 3, 3], u8At(0));
      bytes[2] = 0x07;
      expectDataError(() => parseIdxImages(bytes, 'bad-type.idx'), 'bad-type.idx', 'magic number 0x00000703', 'not an IDX magic number', '0D f32');
    });

    it('an IDX type other than u8 and f32 (i16, f64)', () => {
      expectDataError(() => parseIdxImages(idxFile('i16', [2, 3], u8At(0)), 'short.idx'), 'short.idx', 'i16 values', 'u8 or f32');
      expectDataError(() => parseIdxImages(idxFile('f64', [2, 3], f32At(0)), 'double.idx'), 'double.idx', 'f64 values', 'u8 or f32');
    });

    it('first bytes that are not zero', () => {
      const bytes = idxFile('u8', [2, 3, 3], u8At(0));
      bytes[0] = 0x1f;
      expectDataError(() => parseIdxImages(bytes, 'x.idx'), 'x.idx', 'magic number 0x1f000803', 'not an IDX magic number');
    });

    it('a rank-1 file (labels) where examples should be', () => {
      expectDataError(() => parseIdxImages(idxLabels([1, 2, 3]), 'swapped'), 'swapped', 'magic number 0x00000801', 'labels file', 'expected 0x00000803', 'rank 2 or more');
    });

    it('truncated u8 and f32 files, counting 4 bytes per f32 value', () => {
      const u8 = idxFile('u8', [4, 3, 2], u8At(0));
      expectDataError(() => parseIdxImages(u8.subarray(0, u8.length - 1), 'cut.idx'), 'cut.idx', 'truncated', `${u8.length - 1} bytes`, `needs ${u8.length}`);
      const f32 = idxFile('f32', [4, 3, 2, 2], f32At(0));
      expect(f32.length).to.equal(4 + 16 + 4 * 48);
      expectDataError(() => parseIdxImages(f32.subarray(0, f32.length - 2), 'cut.idx'), 'truncated', `${f32.length - 2} bytes`, '4x3x2x2 f32', `needs ${f32.length}`);
      expectDataError(() => parseIdxImages(f32.subarray(0, 10), 'cut.idx'), 'truncated', '10 bytes', '20-byte IDX header');
    });

    it('a non-finite f32 value, named with its example', () => {
      expectDataError(() => parseIdxImages(idxFile('f32', [3, 4], (i) => (i === 9 ? NaN : 0.5)), 'nan.idx'), 'nan.idx', 'NaN', 'index 9', 'example 2');
    });

    it('examples with a zero dimension', () => {
      expectDataError(() => parseIdxImages(idxFile('u8', [3, 4, 0], u8At(0)), 'empty.idx'), 'empty.idx', '4x0', 'no values');
    });
  });

  describe('labels files', () => {
    it('u8 labels: Uint8Array, classes = the largest label + 1', () => {
      const l = parseIdxLabels(idxLabels([0, 4, 2, 4, 1]), 'l');
      expect(l.labels).to.be.instanceOf(Uint8Array);
      expect(Array.from(l.labels)).to.deep.equal([0, 4, 2, 4, 1]);
      expect(l.classes).to.equal(5);
    });

    it('i32 labels: Uint32Array, any class count', () => {
      const labels = [3, 0, 70000, 255, 256];
      const l = parseIdxLabels(idxFile('i32', [5], (i) => labels[i]), 'l');
      expect(l.labels).to.be.instanceOf(Uint32Array);
      expect(Array.from(l.labels)).to.deep.equal(labels);
      expect(l.classes).to.equal(70001);
    });

    it('a label at or past the given class count, and a negative i32 label', () => {
      expectDataError(() => parseIdxLabels(idxLabels([0, 1, 3, 2]), 'three.idx', 3), 'three.idx', 'label 3', 'index 2', '0-2', '3 classes');
      expect(parseIdxLabels(idxLabels([0, 1, 2, 2]), 'three.idx', 3).classes).to.equal(3);
      expectDataError(() => parseIdxLabels(idxFile('i32', [3], (i) => [1, -4, 0][i]), 'neg.idx'), 'neg.idx', 'label -4', 'index 1');
      expectDataError(() => parseIdxLabels(idxLabels([0]), 'l', 0), 'class count 0');
    });

    it('an examples file where labels should be, and f32 labels', () => {
      expectDataError(() => parseIdxLabels(idxFile('u8', [2, 3, 3], u8At(0)), 'imgs'), 'imgs', 'magic number 0x00000803', 'images file', 'expected 0x00000801');
      expectDataError(() => parseIdxLabels(idxFile('f32', [3], () => 1), 'float-labels'), 'float-labels', 'f32 values', 'u8 or i32');
    });

    it('a truncated i32 file', () => {
      const bytes = idxFile('i32', [5], (i) => i);
      expectDataError(() => parseIdxLabels(bytes.subarray(0, bytes.length - 3), 'l.idx'), 'l.idx', 'truncated', `needs ${bytes.length}`);
    });
  });

  describe('a folder of four files (loadIdxDataset)', () => {
    let root: string;
    let n = 0;
    const fresh = (): string => join(root, `set${n++}`);
    before(() => { root = mkdtempSync(join(tmpdir(), 'idx-test-')); });
    after(() => rmSync(root, { recursive: true, force: true }));

    interface SetSpec {
      names?: [string, string, string, string];
      train: Uint8Array;
      trainLabels: Uint8Array;
      test: Uint8Array;
      testLabels: Uint8Array;
      gz?: boolean;
    }
    const MNIST_NAMES: [string, string, string, string] = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];
    function writeSet(dir: string, s: SetSpec): string {
      mkdirSync(dir, { recursive: true });
      const names = s.names ?? MNIST_NAMES;
      [s.train, s.trainLabels, s.test, s.testLabels].forEach((bytes, k) => writeFileSync(join(dir, names[k] + (s.gz ? '.gz' : '')), s.gz ? gzipSync(bytes) : bytes));
      return dir;
    }
    const labels = (count: number, classes: number, seed = 0) => Array.from({ length: count }, (_, i) => (i * 7 + seed) % classes);

    it('f32 [N, 6, 5, 3] examples and 4 classes (gz, named for their rank and type): Datasets with shape and classes', () => {
      const dir = writeSet(fresh(), {
        names: ['train-images-idx4-float', 'train-labels-idx1-ubyte', 'test-images-idx4-float', 'test-labels-idx1-ubyte'],
        train: idxFile('f32', [12, 6, 5, 3], f32At(3)), trainLabels: idxLabels(labels(12, 4)),
        test: idxFile('f32', [5, 6, 5, 3], f32At(4)), testLabels: idxLabels(labels(5, 3)), gz: true,
      });
      const d = loadIdxDataset(dir, { validation: 2 });
      expect(d.shape).to.deep.equal([6, 5, 3]);
      expect(d.classes).to.equal(4);
      expect([d.train.count, d.validation.count, d.test.count]).to.deep.equal([10, 2, 5]);
      for (const split of [d.train, d.validation, d.test]) {
        expect(split.shape).to.deep.equal([6, 5, 3]);
        expect(split.classes, 'one class count for every split').to.equal(4);
        expect(split.images.length).to.equal(split.count * 90);
      }
      // validation example 0 is training example 10; the test file's values as stored
      expect(d.validation.images[0]).to.equal(f32At(3)(10 * 90));
      expect(d.validation.labels[1]).to.equal(labels(12, 4)[11]);
      expect(d.test.images[89]).to.equal(f32At(4)(89));
    });

    it('u8 [N, F] vectors with i32 labels of 300 classes', () => {
      const dir = writeSet(fresh(), {
        names: ['train-images-idx2-ubyte', 'train-labels-idx1-int', 't10k-images-idx2-ubyte', 't10k-labels-idx1-int'],
        train: idxFile('u8', [8, 17], u8At(5)), trainLabels: idxFile('i32', [8], (i) => [0, 299, 5, 17, 256, 3, 2, 1][i]),
        test: idxFile('u8', [3, 17], u8At(6)), testLabels: idxFile('i32', [3], (i) => i),
      });
      const d = loadIdxDataset(dir, { validation: 0 });
      expect(d.shape).to.deep.equal([17]);
      expect([d.rows, d.cols]).to.deep.equal([1, 17]);
      expect(d.classes).to.equal(300);
      expect(d.train.labels).to.be.instanceOf(Uint32Array);
      expect(d.train.labels[1]).to.equal(299);
      expect(d.train.images[17]).to.equal(Math.fround(u8At(5)(17) / 255));
    });

    it('a given class count: labels past it are an error naming the file, and the count is kept even when larger', () => {
      const spec = { train: idxFile('u8', [6, 2, 2], u8At(0)), trainLabels: idxLabels([0, 1, 2, 0, 1, 2]), test: idxFile('u8', [2, 2, 2], u8At(0)), testLabels: idxLabels([1, 5]) };
      const dir = writeSet(fresh(), spec);
      expectDataError(() => loadIdxDataset(dir, { validation: 1, classes: 5 }), 't10k-labels-idx1-ubyte', 'label 5', 'index 1', '0-4');
      expect(loadIdxDataset(dir, { validation: 1 }).classes).to.equal(6);
      const d = loadIdxDataset(dir, { validation: 1, classes: 10 });
      expect([d.classes, d.train.classes, d.test.classes]).to.deep.equal([10, 10, 10]);
      expectDataError(() => loadIdxDataset(dir, { classes: 2.5 }), 'class count 2.5');
    });

    it('counts that disagree, and train and test examples of different shapes (rank 4)', () => {
      const dir = writeSet(fresh(), { train: idxFile('u8', [6, 2, 2, 3], u8At(0)), trainLabels: idxLabels(labels(5, 3)), test: idxFile('u8', [2, 2, 2, 3], u8At(0)), testLabels: idxLabels([1, 2]) });
      expectDataError(() => loadIdxDataset(dir), 'train-images-idx3-ubyte', '6 images', 'train-labels-idx1-ubyte', '5 labels');
      const dir2 = writeSet(fresh(), { train: idxFile('u8', [6, 2, 2, 3], u8At(0)), trainLabels: idxLabels(labels(6, 3)), test: idxFile('u8', [2, 2, 3, 2], u8At(0)), testLabels: idxLabels([1, 2]) });
      expectDataError(() => loadIdxDataset(dir2, { validation: 1 }), 't10k-images-idx3-ubyte', '2x3x2 examples', '2x2x3');
    });

    it('two files that could both be the training images', () => {
      const dir = writeSet(fresh(), {
        names: ['train-images-idx4-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx4-ubyte', 't10k-labels-idx1-ubyte'],
        train: idxFile('u8', [4, 2, 2, 1], u8At(0)), trainLabels: idxLabels([0, 1, 0, 1]), test: idxFile('u8', [2, 2, 2, 1], u8At(0)), testLabels: idxLabels([1, 0]),
      });
      writeFileSync(join(dir, 'train-images-idx2-float'), idxFile('f32', [4, 4], f32At(0)));
      expectDataError(() => loadIdxDataset(dir), dir, '2 files', 'train-images-idx2-float, train-images-idx4-ubyte', 'keep one');
    });

    it('the built-in nets take [28, 28] and [28, 28, 1] examples, nothing else', () => {
      const files = { trainImages: 'train-images-x', trainLabels: '', testImages: '', testLabels: '' };
      checkImageSize({ shape: [28, 28], files }, 28, 28, 'cnn');
      checkImageSize({ shape: [28, 28, 1], files }, 28, 28, 'cnn');
      expectDataError(() => checkImageSize({ shape: [28, 28, 3], files }, 28, 28, 'cnn'), 'train-images-x', 'examples of shape 28x28x3', '--net cnn expects 28x28');
      expectDataError(() => checkImageSize({ shape: [784], files }, 28, 28, 'mlp'), 'examples of shape 784', '--net mlp');
    });
  });

  describe('Datasets in memory', () => {
    const data: Dataset = {
      count: 7, shape: [3], classes: 3,
      images: Float32Array.from({ length: 21 }, (_, i) => i),
      labels: Uint32Array.from({ length: 7 }, (_, i) => i % 3),
    };

    it('sliceDataset gives views of examples [from, to) with the same shape and classes', () => {
      const s = sliceDataset(data, 2, 5);
      expect(s.count).to.equal(3);
      expect(Array.from(s.images)).to.deep.equal([6, 7, 8, 9, 10, 11, 12, 13, 14]);
      expect(Array.from(s.labels)).to.deep.equal([2, 0, 1]);
      expect(s.images.buffer).to.equal(data.images.buffer);
      expect([s.shape, s.classes]).to.deep.equal([[3], 3]);
      expect(() => sliceDataset(data, 5, 8)).to.throw(RangeError);
    });

    it('BatchIterator takes any example size, one-hot over the data set\'s classes', () => {
      const it = new BatchIterator(data, 2, { shuffler: makeShuffler(3), oneHot: true });
      expect(it.x.length).to.equal(6);
      expect(it.oneHot!.length).to.equal(6);
      it.startEpoch(0);
      expect(it.next()).to.equal(2);
      for (let r = 0; r < 2; r++) {
        const ex = it.x[r * 3] / 3;
        expect(Array.from(it.x.subarray(r * 3, r * 3 + 3))).to.deep.equal([3 * ex, 3 * ex + 1, 3 * ex + 2]);
        expect(Array.from(it.oneHot!.subarray(r * 3, r * 3 + 3))).to.deep.equal([0, 1, 2].map((c) => (c === ex % 3 ? 1 : 0)));
      }
    });
  });

  describe('fetchMnist (the browser path)', () => {
    it('fetches four files of any rank under a base URL, with given names and class count', async () => {
      const files = new Map<string, Uint8Array>([
        ['tr-x', idxFile('f32', [4, 2, 3], f32At(1))], ['tr-y', idxLabels([0, 1, 2, 1])],
        ['te-x', idxFile('f32', [2, 2, 3], f32At(2))], ['te-y', idxLabels([2, 0])],
      ]);
      const fakeFetch = (async (u: URL) => {
        const name = String(u).split('/').pop()!;
        const bytes = files.get(name);
        return bytes ? new Response(new Uint8Array(bytes) as unknown as ArrayBuffer) : new Response('no', { status: 404, statusText: 'Not Found' });
      }) as unknown as typeof fetch;
      const d = await fetchMnist('http://example.test/d/', { fetch: fakeFetch, names: { trainImages: 'tr-x', trainLabels: 'tr-y', testImages: 'te-x', testLabels: 'te-y' }, classes: 5 });
      expect([d.shape, d.classes, d.train.shape, d.test.classes, d.train.count, d.test.count]).to.deep.equal([[2, 3], 5, [2, 3], 5, 4, 2]);
      expect(d.test.images[5]).to.equal(f32At(2)(5));
      let err: unknown;
      try {
        await fetchMnist('http://example.test/d/', fakeFetch);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(DataError);
      expect((err as Error).message).to.include(`http://example.test/d/${MNIST_FILE_NAMES.trainImages}`).and.include('404');
    });
  });
});
