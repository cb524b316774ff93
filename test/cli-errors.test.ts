// Every bad input to `node dist/train.js` costs the user one line naming the
// problem (file or flag) and exit code 2, without a stack trace and before the GPU is touched where
// it can be; a numeric blow-up stops training with a line naming the step and a lower learning rate,
// exit 3, and leaves the checkpoint that was at the --save path byte for byte; a lost device ends the
// run with one line, exit 1, within seconds.
import { expect } from 'chai';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSafetensors, type TensorMap } from '../src/cli/checkpoint.js';
import { idxImages, idxLabels } from './support/idx.js';
import { expectEarlyError, runCli, STACK, type CliRun } from './support/cli.js';


type Run = CliRun;

/**
 * A check made before the GPU is touched: exit 2, stderr is exactly one line "error: ..." holding
 * every part, nothing on stdout (no "adapter:" line: no device was made), no stack trace.
 */

/** Lines the CLI may legitimately print on stderr besides its error once the GPU is in use. */
const GPU_NOISE = [
  /^Warning: maxDynamic\w+ artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/, // Dawn on lavapipe
  /^epoch \d+\/\d+ +\d+% +\d+\/\d+ /, // the progress bar (a line per update when stderr is not a terminal)
];

/** After the GPU is in use: exactly one "error: ..." line holding every part, the rest only known noise, no stack trace. */
function expectGpuError(r: Run, code: number, ...parts: (string | RegExp)[]): string {
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  const errors = lines.filter((l) => l.startsWith('error: '));
  expect(errors, `stderr:\n${r.stderr}`).to.have.length(1);
  const other = lines.filter((l) => !l.startsWith('error: ') && !GPU_NOISE.some((re) => re.test(l)));
  expect(other, 'stderr lines besides the error').to.deep.equal([]);
  expect(r.stderr).not.to.match(STACK);
  const line = errors[0];
  for (const p of parts) {
    if (typeof p === 'string') expect(line, line).to.include(p);
    else expect(line).to.match(p);
  }
  expect(r.code, line).to.equal(code);
  return line;
}

// ------------------------------------------------------------------ small synthetic MNIST-format sets


const TRAIN_IMAGES = 'train-images-idx3-ubyte';
const TRAIN_LABELS = 'train-labels-idx1-ubyte';
const TEST_IMAGES = 't10k-images-idx3-ubyte';
const TEST_LABELS = 't10k-labels-idx1-ubyte';
type FileName = typeof TRAIN_IMAGES | typeof TRAIN_LABELS | typeof TEST_IMAGES | typeof TEST_LABELS;

const N_TRAIN = 120;
const N_TEST = 20;

/** 120 training and 20 test images of rows x cols; `edit` replaces (or with null, removes) a file. */
function writeSet(dir: string, o: { rows?: number; cols?: number; edit?: Partial<Record<FileName, Uint8Array | null>> } = {}): string {
  mkdirSync(dir, { recursive: true });
  const rows = o.rows ?? 28;
  const cols = o.cols ?? 28;
  const files: Record<FileName, Uint8Array> = {
    [TRAIN_IMAGES]: idxImages(N_TRAIN, rows, cols, (i) => (i * 37 + 101) % 256),
    [TRAIN_LABELS]: idxLabels(Array.from({ length: N_TRAIN }, (_, i) => (i * 7) % 10)),
    [TEST_IMAGES]: idxImages(N_TEST, rows, cols, (i) => (i * 37 + 202) % 256),
    [TEST_LABELS]: idxLabels(Array.from({ length: N_TEST }, (_, i) => (i * 3) % 10)),
  };
  for (const name of Object.keys(files) as FileName[]) {
    const bytes = o.edit && name in o.edit ? o.edit[name] : files[name];
    if (bytes) writeFileSync(join(dir, name), bytes);
  }
  return dir;
}

function tensors(shapes: Record<string, number[]>): TensorMap {
  const out: TensorMap = {};
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    out[name] = { shape, data: Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.01) };
  }
  return out;
}

describe('train CLI: bad input is one line and exit 2', function () {
  this.timeout(60_000);
  let root: string;
  let good: string;
  let n = 0;
  const fresh = (): string => join(root, `set${n++}`);
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'cli-errors-'));
    good = writeSet(join(root, 'good'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  describe('data', () => {
    it('a missing --data folder', () => {
      const dir = join(root, 'no-such-folder');
      expectEarlyError(runCli(['--net', 'mlp', '--data', dir, '--val', '10']), dir, 'does not exist', '--data');
    });

    it('a missing file', () => {
      const dir = writeSet(fresh(), { edit: { [TEST_LABELS]: null } });
      expectEarlyError(runCli(['--net', 'mlp', '--data', dir, '--val', '10']), join(dir, TEST_LABELS), 'is missing');
    });

    it('a wrong magic number (a labels file where the images should be)', () => {
      const dir = writeSet(fresh(), { edit: { [TRAIN_IMAGES]: idxLabels([1, 2, 3]) } });
      expectEarlyError(runCli(['--net', 'mlp', '--data', dir, '--val', '10']), join(dir, TRAIN_IMAGES), 'magic number 0x00000801', 'expected 0x00000803');
    });

    it('a truncated file', () => {
      const dir = writeSet(fresh(), { edit: { [TEST_IMAGES]: idxImages(N_TEST, 28, 28).subarray(0, 16 + 5000) } });
      expectEarlyError(runCli(['--net', 'mlp', '--data', dir, '--val', '10']), join(dir, TEST_IMAGES), 'truncated', '5016 bytes', `needs ${16 + N_TEST * 784}`);
    });

    it('image and label counts that disagree', () => {
      const dir = writeSet(fresh(), { edit: { [TRAIN_LABELS]: idxLabels(new Array(N_TRAIN - 1).fill(3)) } });
      expectEarlyError(runCli(['--net', 'mlp', '--data', dir, '--val', '10']),
        join(dir, TRAIN_IMAGES), `${N_TRAIN} images`, join(dir, TRAIN_LABELS), `${N_TRAIN - 1} labels`);
    });

    it('a label outside 0-9', () => {
      const labels = Array.from({ length: N_TEST }, () => 4);
      labels[7] = 12;
      const dir = writeSet(fresh(), { edit: { [TEST_LABELS]: idxLabels(labels) } });
      expectEarlyError(runCli(['--net', 'mlp', '--data', dir, '--val', '10']), join(dir, TEST_LABELS), 'label 12', 'index 7', '0-9');
    });

    it('an image size other than 28x28', () => {
      const dir = writeSet(fresh(), { rows: 20, cols: 24 });
      expectEarlyError(runCli(['--net', 'cnn', '--data', dir, '--val', '10']), join(dir, TRAIN_IMAGES), '20x24', '28x28', '--net cnn');
    });

    it('--val larger than the training set', () => {
      expectEarlyError(runCli(['--net', 'mlp', '--data', good, '--val', '500']), '--val 500', `${N_TRAIN}`, `below ${N_TRAIN}`);
      // the default --val 5000 on a small set says the same, naming --val
      expectEarlyError(runCli(['--net', 'mlp', '--data', good]), '--val 5000');
    });

    it('a batch larger than the training set left after --val', () => {
      expectEarlyError(runCli(['--net', 'mlp', '--data', good, '--val', '100', '--batch', '50']), `${N_TRAIN - 100} images`, 'one batch of 50', '--batch');
    });
  });

  describe('flags', () => {
    it('an unknown flag', () => {
      expectEarlyError(runCli(['--net', 'mlp', '--bogus', '3']), 'unknown flag --bogus', '--help');
      expectEarlyError(runCli(['--net', 'mlp', '--step', '3']), 'unknown flag --step', 'did you mean --steps?');
    });

    it('a non-numeric value', () => {
      expectEarlyError(runCli(['--net', 'mlp', '--batch', 'ten']), '--batch "ten"', 'not a whole number');
      expectEarlyError(runCli(['--net', 'mlp', '--lr', '0.1x']), '--lr "0.1x"', 'not a number');
    });

    it('batch 0', () => {
      expectEarlyError(runCli(['--net', 'mlp', '--batch', '0']), '--batch 0', 'at least 1');
    });

    it('a negative learning rate', () => {
      expectEarlyError(runCli(['--net', 'mlp', '--lr', '-0.1']), '--lr -0.1', 'greater than 0');
    });

    it('keep-prob outside (0, 1]', () => {
      expectEarlyError(runCli(['--net', 'cnn', '--keep-prob', '0']), '--keep-prob 0', '(0, 1]');
      expectEarlyError(runCli(['--net', 'cnn', '--keep-prob', '1.5']), '--keep-prob 1.5', '(0, 1]');
    });

    it('a --save folder that does not exist is refused before training, not after', () => {
      const file = join(root, 'no-such-dir', 'm.safetensors');
      expectEarlyError(runCli(['--net', 'mlp', '--data', good, '--val', '10', '--save', file]), file, 'does not exist', '--save');
    });
  });

  describe('checkpoints for --load', () => {
    it('a truncated checkpoint', () => {
      const bytes = encodeSafetensors(tensors({ 'mlp/w1': [784, 256], 'mlp/b1': [256] }), { net: 'mlp', hidden: '256', layers: '1' });
      const file = join(root, 'truncated.safetensors');
      writeFileSync(file, bytes.subarray(0, bytes.length - 1000));
      expectEarlyError(runCli(['--net', 'mlp', '--data', good, '--val', '10', '--load', file]), file, 'not a valid safetensors checkpoint', 'truncated');
    });

    it('a corrupt checkpoint (not safetensors at all)', () => {
      const file = join(root, 'corrupt.safetensors');
      writeFileSync(file, Buffer.from('PK\u0003\u0004 this is a zip, not a checkpoint'));
      expectEarlyError(runCli(['--net', 'mlp', '--data', good, '--val', '10', '--load', file, '--eval']), file, 'not a valid safetensors checkpoint');
    });

    it('a missing checkpoint', () => {
      const file = join(root, 'nope.safetensors');
      expectEarlyError(runCli(['--net', 'mlp', '--data', good, '--val', '10', '--load', file, '--eval']), file, 'does not exist', '--load');
    });

    it('a checkpoint of another net (by its metadata), and the checkpoint is left as it was', () => {
      const file = join(root, 'softmax.safetensors');
      writeFileSync(file, encodeSafetensors(tensors({ 'softmax/w': [784, 10], 'softmax/b': [10] }), { net: 'softmax' }));
      const before = readFileSync(file);
      expectEarlyError(runCli(['--net', 'mlp', '--data', good, '--val', '10', '--steps', '1', '--load', file, '--save', file]),
        file, 'was saved with net=softmax', 'this run has net=mlp', '--net softmax');
      expect(readFileSync(file).equals(before), 'checkpoint unchanged').to.equal(true);
    });

    it('a checkpoint whose metadata claims this net but holds another net\'s tensors (checked against the compiled net)', () => {
      const file = join(root, 'liar.safetensors');
      writeFileSync(file, encodeSafetensors(tensors({ 'softmax/w': [784, 10], 'softmax/b': [10] }), { net: 'mlp', hidden: '256', layers: '1' }));
      expectGpuError(runCli(['--net', 'mlp', '--data', good, '--val', '10', '--load', file, '--eval']), 2,
        file, 'has no tensor mlp/w1', 'another net');
    });
  });
});

describe('train CLI: numeric blow-up stops training and keeps the checkpoint', function () {
  this.timeout(60_000);
  let root: string;
  before(() => { root = mkdtempSync(join(tmpdir(), 'cli-nan-')); });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('a huge learning rate stops with the step and a lower --lr, exit 3, and the earlier checkpoint is unchanged byte for byte', () => {
    const file = join(root, 'mlp.safetensors');
    // An earlier good run saves a checkpoint (real MNIST, a few steps).
    const ok = runCli(['--net', 'mlp', '--optimizer', 'sgd', '--lr', '0.1', '--steps', '10', '--val', '500', '--save', file]);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.include(`saved ${file}`);
    const before = readFileSync(file);
    expect(before.length).to.be.greaterThan(800_000);

    // lr 1e12: the weights overflow within the first 10 steps (lr 1e6 only gives a huge but finite loss).
    const r = runCli(['--net', 'mlp', '--optimizer', 'sgd', '--lr', '1e12', '--steps', '200', '--val', '500', '--save', file]);
    const line = expectGpuError(r, 3, /the training loss became (NaN|-?Infinity) by step \d+ \(epoch 1\)/, 'learning rate 1000000000000 is too high for mlp',
      'try --lr 100000000000', `nothing was written to ${file}`);
    // The first read-back covers steps 1-10 (it is awaited at step 20): the step named is where it was seen.
    const step = Number(/by step (\d+)/.exec(line)![1]);
    expect(step).to.be.oneOf([10, 20, 30]);
    expect(r.stdout).not.to.include('saved');
    expect(r.stdout).not.to.include('test accuracy');
    expect(readFileSync(file).equals(before), 'the checkpoint is byte for byte the one saved before').to.equal(true);
    expect(readdirSync(root), 'no temp file left').to.deep.equal(['mlp.safetensors']);
  });
});

describe('train CLI: a lost device ends the run with one line', function () {
  this.timeout(60_000);
  let root: string;
  before(() => { root = mkdtempSync(join(tmpdir(), 'cli-lost-')); });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('exits 1 within seconds naming the lost device, and writes no checkpoint', () => {
    const data = writeSet(join(root, 'data'));
    const file = join(root, 'm.safetensors');
    const args = ['--net', 'mlp', '--data', data, '--val', '10', '--batch', '10', '--steps', '400', '--save', file];
    const r = runCli(args, { WEBGPU_TRAIN_TEST_LOSE_DEVICE_AT_STEP: '15' }, 30_000);
    expectGpuError(r, 1, 'the GPU device was lost', 'destroyed', `${file} was not written`, 'run again');
    expect(r.stdout).not.to.include('test accuracy');
    expect(existsSync(file), 'no checkpoint').to.equal(false);
    expect(readdirSync(root)).to.deep.equal(['data']);
    // Seconds, not a hang (process start, data and compile included; the lost device itself is noticed at the next read-back).
    expect(r.ms, 'ends within seconds').to.be.lessThan(15_000);
  });
});
