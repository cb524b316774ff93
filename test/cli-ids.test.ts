// The train CLI with an Embedding model: ids come from f32 IDX files; an id past input_dim (or a
// value that is no id) is a one-line data error naming the file, the example and input_dim.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { idxFile } from './support/idx.js';
import { expectEarlyError, runCli } from './support/cli.js';

const T = 6;

function writeIds(dir: string, bad?: { example: number; position: number; value: number }): void {
  mkdirSync(dir, { recursive: true });
  const n = 40;
  // label: whether id 1 appears in the sequence
  const ids = Array.from({ length: n * T }, (_, i) => (i * 7 + Math.floor(i / T)) % 5);
  if (bad) ids[bad.example * T + bad.position] = bad.value;
  const labels = Array.from({ length: n }, (_, e) => (ids.slice(e * T, e * T + T).includes(1) ? 1 : 0));
  for (const split of ['train', 'test']) {
    writeFileSync(join(dir, `${split}-images-idx2-float`), idxFile('f32', [n, T], (i) => ids[i]));
    writeFileSync(join(dir, `${split}-labels-idx1-ubyte`), idxFile('u8', [n], (i) => labels[i]));
  }
}

describe('train CLI: an Embedding model reads integer ids from f32 IDX files', function () {
  this.timeout(300_000);
  let root: string;
  before(() => { root = mkdtempSync(join(tmpdir(), 'cli-ids-')); });
  after(() => rmSync(root, { recursive: true, force: true }));

  const spec = {
    name: 'ids', input_shape: [T],
    layers: [
      { class_name: 'Embedding', config: { name: 'emb', input_dim: 5, output_dim: 3 } },
      { class_name: 'Flatten', config: {} },
      { class_name: 'Dense', config: { units: 2 } },
    ],
  };

  it('trains on good ids', () => {
    const data = join(root, 'good');
    writeIds(data);
    const file = join(root, 'ids.json');
    writeFileSync(file, JSON.stringify(spec));
    const r = runCli(['--model', file, '--data', data, '--val', '8', '--steps', '20', '--batch', '8'], {}, 240_000); // a slow, shared machine: compiling takes most of it
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/test accuracy/);
  });

  it('an id past input_dim is a data error naming the file, example, id and input_dim', () => {
    const data = join(root, 'bad');
    writeIds(data, { example: 3, position: 2, value: 5 });
    const file = join(root, 'ids.json');
    writeFileSync(file, JSON.stringify(spec));
    expectEarlyError(runCli(['--model', file, '--data', data, '--val', '8']),
      'train-images-idx2-float example 3 has id 5 at position 2, but "emb" (Embedding) has input_dim 5 (ids 0-4)');
  });
});
