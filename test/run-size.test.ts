// Sizes a device cannot bind (a tensor over maxStorageBufferBindingSize or maxBufferSize) are found
// from the model's shapes alone, before any buffer is made: the largest batch that fits is exact,
// Trainer.create refuses such a run with no buffer left behind, and the CLI says in one line which
// flag (--hidden, --batch, or a --model file's layer) to change, exit 2, no training started.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oversizedTensor, type SizeLimits } from '../src/nn/binding-sizes.js';
import { builtinModel } from '../src/nn/models/builtin.js';
import { readModelFile } from '../src/cli/model-file.js';
import { Trainer } from '../src/nn/trainer.js';
import { GpuError } from '../src/gpu/context.js';
import { runCli, STACK, type CliRun } from './support/cli.js';
import { testContext } from './support/gpu.js';
import { PACKAGE_ROOT } from './support/paths.js';
import { writeTinyMnist } from './support/tiny-mnist.js';

const limits = (binding: number, buffer = 2 ** 32 - 1): SizeLimits => ({ maxStorageBufferBindingSize: binding, maxBufferSize: buffer });

/** Dawn's own notices on lavapipe when a device is made: not ours, and not an error. */
const DAWN_NOTICE = /^Warning: maxDynamic\w+ artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;

/** Exit 2, exactly one "error: ..." line holding every part, nothing else but Dawn's notices, nothing on stdout (no model summary, no training). */
function expectSizeError(r: CliRun, ...parts: (string | RegExp)[]): string {
  const lines = r.stderr.split('\n').filter((l) => l.length > 0 && !DAWN_NOTICE.test(l));
  expect(lines, `stderr:\n${r.stderr}`).to.have.length(1);
  const line = lines[0];
  expect(line).to.match(/^error: /);
  expect(r.stderr).not.to.match(STACK);
  for (const p of parts) {
    if (typeof p === 'string') expect(line, line).to.include(p);
    else expect(line).to.match(p);
  }
  expect(r.stdout, 'nothing on stdout: no summary, no adapter line, no training').to.equal('');
  expect(r.code, line).to.equal(2);
  return line;
}

describe('binding sizes: checked from the shapes before any buffer is made', function () {
  this.timeout(60_000);

  it('the largest batch that fits is exact: at maxBatch every tensor fits, at maxBatch + 1 one does not', () => {
    const models = {
      mlp: builtinModel('mlp', {}),
      cnn: builtinModel('cnn', {}),
      rnn: builtinModel('rnn', { hidden: 40, layers: 2 }),
      'residual-cnn': readModelFile(join(PACKAGE_ROOT, 'examples/models/residual-cnn.json')).model,
    };
    for (const [name, model] of Object.entries(models)) {
      for (const binding of [3_000_000, 7_777_777, 20_000_000]) {
        const L = limits(binding);
        const o = oversizedTensor(model, 1000, L);
        if (!o) continue;
        if (o.cause === 'model') {
          expect(oversizedTensor(model, 1, L), `${name} at ${binding}: too large at batch 1 too`).not.to.equal(undefined);
          continue;
        }
        const max = o.maxBatch!;
        expect(max, `${name} at ${binding}`).to.be.within(1, 999);
        expect(oversizedTensor(model, max, L), `${name} at ${binding}: batch ${max} fits`).to.equal(undefined);
        const over = oversizedTensor(model, max + 1, L);
        expect(over, `${name} at ${binding}: batch ${max + 1} does not`).not.to.equal(undefined);
        expect(over!.cause).to.equal('batch');
        expect(over!.maxBatch, 'the same bound from another batch').to.equal(max);
      }
    }
  });

  it('names the smaller of the two limits, and the layer a tensor belongs to', () => {
    const model = builtinModel('mlp', { hidden: 2000 });
    const byBinding = oversizedTensor(model, 10, limits(1_000_000, 4_000_000));
    expect(byBinding).to.include({ tensor: 'mlp/w1', cause: 'model', limitName: 'maxStorageBufferBindingSize', limit: 1_000_000, bytes: 784 * 2000 * 4 });
    expect(oversizedTensor(model, 10, limits(4_000_000, 1_000_000))).to.include({ limitName: 'maxBufferSize', limit: 1_000_000 });
    const cnn = readModelFile(join(PACKAGE_ROOT, 'examples/models/cnn.json')).model;
    const o = oversizedTensor(cnn, 50, limits(10_000_000));
    expect(o, 'the cnn spec dense layer of 3136 x 1024').to.include({ cause: 'model', layer: 'fc1' });
    expect(oversizedTensor(builtinModel('mlp', {}), 100, limits(2 ** 27))).to.equal(undefined);
  });

  it('Trainer.create refuses an --hidden 2000000 mlp at once, with no buffer made', async () => {
    const ctx = await testContext();
    const before = ctx.liveBuffers;
    const t0 = performance.now();
    let err: unknown;
    try {
      await Trainer.create(ctx, { net: 'mlp', hidden: 2_000_000, seed: 1, batch: 100, optimizer: { kind: 'adam', lr: 1e-3 } });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(GpuError);
    expect((err as Error).message).to.include('mlp/w1 [784, 2000000]').and.include('make layer');
    expect(ctx.liveBuffers, 'no buffer left behind (none made)').to.equal(before);
    expect(performance.now() - t0, 'no 6 GB of initial values computed').to.be.below(5000);
  });

  describe('the CLI: one line naming the flag, exit 2, before training', () => {
    let root: string;
    let data: string;
    before(() => {
      root = mkdtempSync(join(tmpdir(), 'run-size-'));
      data = writeTinyMnist(join(root, 'data'));
    });
    after(() => rmSync(root, { recursive: true, force: true }));

    it('--hidden 2000000 names --hidden and a width that fits', () => {
      expectSizeError(runCli(['--net', 'mlp', '--hidden', '2000000', '--data', data, '--val', '20']),
        '--hidden 2000000 is too large', 'mlp/w1 [784, 2000000]', /give --hidden \d+ or less$/);
    });

    it('a batch too large names --batch and the largest batch that fits', () => {
      // The cnn's first convolution's output is 100 KB per example: 50,000 of them are 5 GB, over any adapter's limits.
      const line = expectSizeError(runCli(['--net', 'cnn', '--batch', '50000', '--val', '5000']), '--batch 50000 is too large', 'conv1/y [50000, 28, 28, 32]');
      const max = Number(/give --batch (\d+) or less$/.exec(line)?.[1]);
      expect(max, line).to.be.within(1, 49_999);
    });

    it('a --model layer too large names the layer and the file', () => {
      const spec = {
        name: 'wide', input_shape: [784], loss: 'sparse_categorical_crossentropy',
        layers: [
          { class_name: 'Dense', config: { name: 'very_wide', units: 2_000_000, activation: 'relu' } },
          { class_name: 'Dense', config: { name: 'out', units: 10 } },
        ],
      };
      const file = join(root, 'wide.json');
      writeFileSync(file, JSON.stringify(spec));
      expectSizeError(runCli(['--model', file, '--data', data, '--val', '20']), `layer very_wide of ${file} is too large`, 'make that layer smaller');
    });
  });
});
