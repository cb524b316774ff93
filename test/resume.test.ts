// Training-state checkpoints through the CLI: a run killed (SIGKILL) at seeded random steps and
// resumed from its newest state file ends with the same bits as a run never stopped; Ctrl-C saves
// the state and names the command that resumes; damaged files are refused and never replace good
// ones; a resume with other trajectory flags is refused before any GPU work.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { idxImages, idxLabels } from './support/idx.js';
import { CLI_ENTRY, PACKAGE_ROOT } from './support/paths.js';
import { expectEarlyError, STACK, type CliRun } from './support/cli.js';
import { decodeStateFile, type TrainerState } from '../src/nn/state.js';
import { mulberry32 } from '../src/data/random.js';

interface Run extends CliRun { signal: NodeJS.Signals | null }

function cli(args: string[], env: Record<string, string> = {}): Run {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI_ENTRY, ...args], {
    cwd: PACKAGE_ROOT, env: { ...process.env, XDG_RUNTIME_DIR: '/tmp', ...env }, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL',
  });
  if (r.error) throw new Error(`running the CLI failed: ${(r.error as Error).message}`);
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
}

const killAt = (step: number, signal = 'SIGKILL') => ({ WEBGPU_TRAIN_TEST_SIGNAL_AT_STEP: `${step}:${signal}` });
const state = (file: string): TrainerState => decodeStateFile(new Uint8Array(readFileSync(file)));

/** Every tensor (parameters and optimizer state) of `got` has the bytes of `want`'s, and the same step. */
function expectSameBits(got: TrainerState, want: TrainerState): void {
  expect(Object.keys(got.tensors).sort()).to.deep.equal(Object.keys(want.tensors).sort());
  expect(Object.keys(want.tensors).some((n) => n.startsWith('state/')), 'optimizer state is in the file').to.equal(true);
  for (const [name, t] of Object.entries(want.tensors)) {
    const g = got.tensors[name].bytes;
    const firstDiff = g.findIndex((b, i) => b !== t.bytes[i]);
    expect(firstDiff, `${name}: first differing byte`).to.equal(-1);
  }
  expect(got.step).to.equal(want.step);
}

/** 600 small 28x28 training images (10 classes) and 20 test images, in MNIST's IDX layout. */
function writeData(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const labels = (n: number) => Array.from({ length: n }, (_, i) => (i * 7) % 10);
  writeFileSync(join(dir, 'train-images-idx3-ubyte'), idxImages(600, 28, 28, (i) => ((Math.floor(i / 784) * 7 % 10) * 23 + (i % 784) * 7) % 256));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxLabels(labels(600)));
  writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idxImages(20, 28, 28));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idxLabels(labels(20)));
  return dir;
}

describe('train CLI: training-state checkpoints and exact resume', function () {
  this.timeout(240_000);
  let root: string;
  let data: string;
  // 500 training examples in batches of 20: 25 steps per epoch, so 60 steps cross two epoch ends.
  const mlp = (steps = 60) => ['--net', 'mlp', '--hidden', '32', '--keep-prob', '0.8', '--data', data, '--val', '100', '--batch', '20', '--steps', String(steps)];
  const rnn = () => ['--net', 'rnn', '--layers', '2', '--hidden', '16', '--data', data, '--val', '100', '--batch', '20', '--steps', '40'];
  const baselines: Record<string, TrainerState> = {};

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'resume-'));
    data = writeData(join(root, 'data'));
  });

  /** The final state of the run never stopped (with checkpoints every 6 steps: writing them changes nothing). */
  function baseline(name: string, flags: string[]): TrainerState {
    if (!baselines[name]) {
      const file = join(root, `${name.replace(/\W+/g, '-')}-baseline.st`);
      const base = cli([...flags, '--checkpoint-every', '6', '--save', file]);
      expect(base.code, base.stderr).to.equal(0);
      baselines[name] = state(file);
    }
    return baselines[name];
  }
  after(() => rmSync(root, { recursive: true, force: true }));

  for (const [name, flags, steps] of [['mlp with dropout', mlp, 60], ['2-layer LSTM', rnn, 40]] as const) {
    it(`${name}: killed with SIGKILL at three seeded random steps and resumed each time, ends with the bits of a run never stopped`, () => {
      const dir = join(root, name.replace(/\W+/g, '-'));
      mkdirSync(dir);
      const every = 6;
      expect(baseline(name, flags()).step).to.equal(steps);

      // Three kill steps in rising thirds of the run, never on a checkpoint step, so each lands between checkpoints.
      const rand = mulberry32(name === 'mlp with dropout' ? 17 : 29);
      const third = Math.floor(steps / 3);
      const kills = [0, 1, 2].map((i) => {
        let k = Math.max(every + 1, i * third + 1 + Math.floor(rand() * (third - 1)));
        if (k % every === 0) k++;
        return k;
      });
      const file = join(dir, 'run.st');
      const run = [...flags(), '--checkpoint-every', String(every), '--save', file, '--keep', '3'];
      let resumedFrom = 0;
      for (const [i, k] of kills.entries()) {
        const r = cli(i === 0 ? run : [...run, '--resume', file], killAt(k));
        expect(r.signal, `run ${i + 1} (kill at step ${k}): ${r.stderr}`).to.equal('SIGKILL');
        const newest = state(file);
        const at = Number(newest.metadata.loop_step);
        expect(at, 'the newest checkpoint is before the kill').to.be.below(k);
        expect(at, 'and after the one resumed from').to.be.at.least(resumedFrom);
        expect(at % every).to.equal(0);
        expect(newest.step, 'GPU step counter = loop position').to.equal(at);
        resumedFrom = at;
      }
      const last = cli([...run, '--resume', file]);
      expect(last.code, last.stderr).to.equal(0);
      expect(last.stdout).to.include(`resumed ${file} at step ${resumedFrom}`);
      expectSameBits(state(file), baseline(name, flags()));
    });
  }

  it('SIGINT: finishes the step in flight, saves the state, names the file and the command that resumes, exits 130; that command ends with the same bits', () => {
    const dir = join(root, 'sigint');
    mkdirSync(dir);
    const file = join(dir, 'mlp.st');
    const r = cli([...mlp(), '--save', file], killAt(23, 'SIGINT'));
    expect(r.code, r.stderr).to.equal(130);
    expect(r.stderr).not.to.match(STACK);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('SIGINT'));
    expect(lines, r.stderr).to.have.length(1);
    expect(lines[0]).to.include(`saved to ${file}`);
    const cmd = /resume with: (.*)$/.exec(lines[0])![1].split(' ');
    expect(cmd[0]).to.equal('node');
    expect(cmd.slice(-2)).to.deep.equal(['--resume', file]);
    const at = Number(state(file).metadata.loop_step);
    expect(at).to.be.within(23, 33); // it stops at the next read-back, at most 10 steps on
    expect(r.stdout, 'no test evaluation after the stop').not.to.include('test accuracy');

    const again = spawnSync(process.execPath, cmd.slice(1), { cwd: PACKAGE_ROOT, env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' }, encoding: 'utf8', timeout: 60_000 });
    expect(again.status, again.stderr).to.equal(0);
    expectSameBits(state(file), baseline('mlp with dropout', mlp()));
  });

  it('a truncated file, or one with a flipped byte in its header or data, is refused in one line naming the newest intact one; nothing good is overwritten', () => {
    const dir = join(root, 'damaged');
    mkdirSync(dir);
    const file = join(dir, 'mlp.st');
    const made = cli([...mlp(20), '--checkpoint-every', '6', '--save', file, '--keep', '3']);
    expect(made.code, made.stderr).to.equal(0);
    // Kept: mlp.st (step 20), mlp.st.1 (step 18), mlp.st.2 (step 12).
    expect([file, `${file}.1`, `${file}.2`].map((f) => state(f).step)).to.deep.equal([20, 18, 12]);
    const good = readFileSync(file);
    const kept = [`${file}.1`, `${file}.2`].map((f) => readFileSync(f));
    const headerLen = Number(good.readBigUInt64LE(0));
    const damages: [string, (b: Buffer) => Buffer][] = [
      ['truncated', (b) => b.subarray(0, b.length - 100)],
      ['a flipped byte in the header', (b) => { const c = Buffer.from(b); c[8 + Math.floor(headerLen / 2)] ^= 0x04; return c; }],
      ['a flipped byte in the data', (b) => { const c = Buffer.from(b); c[8 + headerLen + 1001] ^= 0x01; return c; }],
    ];
    for (const [what, damage] of damages) {
      writeFileSync(file, damage(good));
      const r = cli([...mlp(), '--checkpoint-every', '6', '--save', file, '--keep', '3', '--resume', file]);
      const line = expectEarlyError(r, file, 'damaged', `the newest intact one is ${file}.1 (step 18)`, `--resume ${file}.1`);
      expect(line, what).to.match(/damaged/);
      [`${file}.1`, `${file}.2`].forEach((f, i) => expect(readFileSync(f).equals(kept[i]), `${f} unchanged after ${what}`).to.equal(true));
    }
    truncateSync(file, 5);
    expectEarlyError(cli(['--resume', file]), 'damaged', `--resume ${file}.1`);

    // Resuming from the intact one writes new states to mlp.st: the damaged file is set aside, not rotated over the good ones.
    const r = cli([...mlp(), '--checkpoint-every', '6', '--save', file, '--keep', '3', '--resume', `${file}.1`]);
    expect(r.code, r.stderr).to.equal(0);
    expect(existsSync(`${file}.damaged`)).to.equal(true);
    expect([`${file}.1`, `${file}.2`].map((f) => state(f).step)).to.deep.equal([54, 48]);
    expectSameBits(state(file), baseline('mlp with dropout', mlp()));
  });

  it('a resume with another --batch, another model or other data is refused in one line, exit 2, before any GPU work', () => {
    const dir = join(root, 'mismatch');
    mkdirSync(dir);
    const file = join(dir, 'mlp.st');
    const flags = mlp(12);
    const made = cli([...flags, '--checkpoint-every', '6', '--save', file]);
    expect(made.code, made.stderr).to.equal(0);
    const withFlag = (flag: string, value: string) => { const f = [...flags]; f[f.indexOf(flag) + 1] = value; return f; };
    expectEarlyError(cli([...withFlag('--batch', '10'), '--resume', file]), `cannot resume ${file}`, '--batch 20', '--batch 10');
    expectEarlyError(cli([...withFlag('--hidden', '16'), '--resume', file]), '--hidden 32', '--hidden 16');
    expectEarlyError(cli([...withFlag('--hidden', '32'), '--layers', '2', '--resume', file]), '--layers 1', '--layers 2');
    expectEarlyError(cli([...withFlag('--val', '50'), '--resume', file]), 'training data', '--val 100');
    // The flags not given are the checkpoint's: --resume FILE alone is the same run.
    const alone = cli(['--resume', file, '--steps', '13']);
    expect(alone.code, alone.stderr).to.equal(0);
    expect(alone.stdout).to.include(`resumed ${file} at step 12`);
  });
});
