// `--data DIR` takes IDX sets of other ranks and types in MNIST's four-file layout: the built-in
// nets train on f32 [N, 28, 28, 1] examples with i32 labels, and examples of another shape are refused in one line.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { idxFile } from './support/idx.js';
import { CLI_ENTRY as CLI, PACKAGE_ROOT as ROOT } from './support/paths.js';

function runCli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' }, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
  if (r.error) throw new Error(`running the CLI failed (${(r.error as Error).message})`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A set of `shape` f32 examples (values spread over [-1, 2]) with i32 labels 0-9, named for their rank and type. */
function writeSet(dir: string, shape: number[]): string {
  mkdirSync(dir, { recursive: true });
  const rank = shape.length + 1;
  const size = shape.reduce((a, b) => a * b, 1);
  const images = (n: number, seed: number) => idxFile('f32', [n, ...shape], (i) => Math.fround(Math.sin(i * 0.37 + seed) * 1.5 + 0.5 + (Math.floor(i / size) % 10) * 0.05));
  const labels = (n: number) => idxFile('i32', [n], (i) => (i * 7) % 10);
  writeFileSync(join(dir, `train-images-idx${rank}-float`), images(120, 1));
  writeFileSync(join(dir, 'train-labels-idx1-int'), labels(120));
  writeFileSync(join(dir, `test-images-idx${rank}-float`), images(20, 2));
  writeFileSync(join(dir, 'test-labels-idx1-int'), labels(20));
  return dir;
}

describe('train CLI: --data sets of other ranks and types', function () {
  this.timeout(60_000);
  let root: string;
  before(() => { root = mkdtempSync(join(tmpdir(), 'cli-data-')); });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('trains and tests the mlp on f32 [N, 28, 28, 1] examples with i32 labels', () => {
    const dir = writeSet(join(root, 'f32'), [28, 28, 1]);
    const r = runCli(['--net', 'mlp', '--data', dir, '--val', '20', '--batch', '10', '--steps', '15']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/epoch 1\/2: train loss \d+\.\d+ acc/);
    expect(r.stdout).to.match(/trained 15 steps \(2 epochs\)/);
    expect(r.stdout).to.match(/test accuracy \d\.\d{4} \(loss \d+\.\d+\), \d+ of 20 misclassified/);
  });

  it('refuses [N, 28, 28, 3] examples for a net of 28x28 images in one line, exit 2', () => {
    const dir = writeSet(join(root, 'rgb'), [28, 28, 3]);
    const r = runCli(['--net', 'cnn', '--data', dir, '--val', '20']);
    expect(r.code).to.equal(2);
    expect(r.stdout).to.equal('');
    expect(r.stderr.trim()).to.equal(`error: ${join(dir, 'train-images-idx4-float')} has examples of shape 28x28x3 but --net cnn expects 28x28 images: pass --data with a folder of 28x28 MNIST-format files`);
  });
});
