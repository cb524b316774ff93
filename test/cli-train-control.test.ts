// The training-control flags and "training" fields (weight decay, schedules, warm-up, clipping, label
// smoothing, early stopping): parsed, checked with one-line errors (exit 2, before the GPU), turned
// into the Trainer's optimizer config; early stopping stops and --save keeps the best checkpoint.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArgsError, helpText, parseArgs } from '../src/cli/args.js';
import { ModelFileError, readModelFile, readTraining } from '../src/cli/model-file.js';
import { modelToSpec } from '../src/nn/spec.js';
import { PACKAGE_ROOT } from './support/paths.js';
import { CONTROL_FIELDS, resolveControl } from '../src/cli/train-control.js';
import { EarlyStopping } from '../src/nn/early-stop.js';
import { idxImages, idxLabels } from './support/idx.js';
import { expectArgsError, expectEarlyError, expectOneLineArgsError, runCli, STACK } from './support/cli.js';

const resolve = (argv: string[], o: { totalSteps?: number; validation?: number; mse?: boolean } = {}) => {
  const a = parseArgs(argv);
  return resolveControl({ kind: a.optimizer, lr: a.lr }, a, {
    totalSteps: o.totalSteps ?? 1000, validation: o.validation ?? 5000, mse: o.mse ?? false, eval: a.eval,
    source: (k) => `--${CONTROL_FIELDS.find((f) => f.key === k)!.flag}`,
  }, (m) => new ArgsError(m));
};

function expectResolveError(argv: string[], o: Parameters<typeof resolve>[1], ...parts: string[]): void {
  expectOneLineArgsError(() => resolve(argv, o), argv.join(' '), ...parts);
}

describe('training-control flags (src/cli/train-control.ts)', () => {
  it('parses every training-control flag into the Trainer\'s optimizer config', () => {
    const a = parseArgs(['--net', 'mlp', '--optimizer', 'adamw', '--lr', '0.002', '--weight-decay', '0.05', '--schedule', 'cosine', '--decay-steps=900',
      '--min-lr', '1e-5', '--warmup', '100', '--clip-norm', '1.5', '--label-smoothing', '0.1', '--early-stop', '3']);
    expect(a).to.include({ optimizer: 'adamw', weightDecay: 0.05, schedule: 'cosine', decaySteps: 900, minLr: 1e-5, warmup: 100, clipNorm: 1.5, labelSmoothing: 0.1, earlyStop: 3 });
    const r = resolveControl({ kind: a.optimizer, lr: a.lr }, a, { totalSteps: 1000, validation: 10, mse: false, eval: false, source: (k) => k }, (m) => new ArgsError(m));
    expect(r.optimizer).to.deep.equal({ kind: 'adamw', lr: 0.002, weightDecay: 0.05, schedule: { kind: 'cosine', warmup: 100, decaySteps: 900, decayRate: undefined, minLr: 1e-5 }, clipNorm: 1.5 });
    expect(r).to.include({ labelSmoothing: 0.1, earlyStop: 3 });
  });

  it('defaults: no schedule, no decay, no clipping; AdamW decays 0.01; cosine runs over the training after the warm-up', () => {
    expect(resolve(['--net', 'mlp']).optimizer).to.deep.equal({ kind: 'adam', lr: 1e-3 });
    expect(resolve(['--net', 'mlp', '--optimizer', 'adamw']).optimizer).to.deep.equal({ kind: 'adamw', lr: 1e-3, weightDecay: 0.01 });
    expect(resolve(['--net', 'mlp', '--schedule', 'cosine', '--warmup', '50'], { totalSteps: 800 }).optimizer.schedule).to.include({ kind: 'cosine', warmup: 50, decaySteps: 750 });
    expect(resolve(['--net', 'mlp', '--warmup', '50']).optimizer.schedule).to.include({ kind: 'constant', warmup: 50 });
    expect(resolve(['--net', 'softmax', '--schedule', 'step', '--decay-steps', '100', '--decay-rate', '0.5']).optimizer).to.deep.include({ kind: 'sgd', schedule: { kind: 'step', warmup: 0, decaySteps: 100, decayRate: 0.5, minLr: undefined } });
  });

  it('the help text describes every training-control flag', () => {
    const h = helpText();
    for (const f of CONTROL_FIELDS) expect(h).to.match(new RegExp(`^  --${f.flag} ${f.arg.replace(/\|/g, '\\|')} +\\S`, 'm'));
    expect(h).to.include('sgd|adam|adamw');
  });

  const bad: [string[], ...string[]][] = [
    [['--net', 'mlp', '--optimizer', 'lamb'], '--optimizer', 'sgd, adam, adamw'],
    [['--net', 'mlp', '--weight-decay', '-0.1'], '--weight-decay -0.1', '0 or more'],
    [['--net', 'mlp', '--weight-decay', 'lots'], '--weight-decay', 'not a number'],
    [['--net', 'mlp', '--schedule', 'linear'], '--schedule', 'constant, step, exponential, cosine'],
    [['--net', 'mlp', '--decay-steps', '0'], '--decay-steps 0', '1 or more'],
    [['--net', 'mlp', '--decay-steps', '1.5'], '--decay-steps', 'whole number'],
    [['--net', 'mlp', '--decay-rate', '0'], '--decay-rate 0', 'greater than 0'],
    [['--net', 'mlp', '--min-lr', '-1'], '--min-lr -1', '0 or more'],
    [['--net', 'mlp', '--warmup', '-5'], '--warmup -5', '0 or more'],
    [['--net', 'mlp', '--warmup', '99999999999'], '--warmup', 'too large'],
    [['--net', 'mlp', '--clip-norm', '0'], '--clip-norm 0', 'greater than 0'],
    [['--net', 'mlp', '--clip-norm', '1e999'], '--clip-norm', 'finite'],
    [['--net', 'mlp', '--label-smoothing', '1'], '--label-smoothing 1', 'below 1'],
    [['--net', 'mlp', '--label-smoothing', '-0.1'], '--label-smoothing -0.1', '0 or more'],
    [['--net', 'mlp', '--early-stop', '0'], '--early-stop 0', '1 or more'],
    [['--net', 'mlp', '--early-stop'], '--early-stop needs a value'],
  ];
  for (const [argv, ...parts] of bad) {
    it(`rejects: ${argv.join(' ')}`, () => expectArgsError(argv, ...parts));
  }

  const badCombos: [string[], Parameters<typeof resolve>[1], ...string[]][] = [
    [['--net', 'mlp', '--schedule', 'step', '--decay-rate', '0.5'], {}, 'step schedule needs --decay-steps'],
    [['--net', 'mlp', '--schedule', 'exponential', '--decay-steps', '10'], {}, 'exponential schedule needs --decay-rate'],
    [['--net', 'mlp', '--decay-steps', '10'], {}, '--decay-steps has no effect with the constant schedule', 'step|exponential|cosine'],
    [['--net', 'mlp', '--schedule', 'cosine', '--decay-rate', '0.5'], {}, '--decay-rate has no effect with the cosine schedule', 'step|exponential'],
    [['--net', 'mlp', '--schedule', 'step', '--decay-steps', '5', '--decay-rate', '0.5', '--min-lr', '0'], {}, '--min-lr has no effect', 'cosine'],
    [['--net', 'mlp', '--schedule', 'cosine', '--min-lr', '0.1'], {}, '--min-lr 0.1 is above the learning rate 0.001'],
    [['--net', 'mlp', '--schedule', 'cosine', '--warmup', '1000'], { totalSteps: 1000 }, 'no steps left after a warm-up of 1000', '--decay-steps'],
    [['--net', 'mlp', '--optimizer', 'adamw', '--lr', '10', '--weight-decay', '0.5'], {}, 'AdamW', 'below 1'],
    [['--net', 'mlp', '--label-smoothing', '0.1'], { mse: true }, '--label-smoothing is for a cross-entropy loss'],
    [['--net', 'mlp', '--early-stop', '2'], { validation: 0 }, '--early-stop needs a validation set', '--val'],
    [['--net', 'mlp', '--early-stop', '2', '--load', 'x', '--eval'], {}, '--early-stop has no effect with --eval'],
  ];
  for (const [argv, o, ...parts] of badCombos) {
    it(`rejects the combination: ${argv.join(' ')}`, () => expectResolveError(argv, o, ...parts));
  }

  it('a model file\'s "training" takes the same settings as snake_case fields, checked one by one', () => {
    expect(readTraining({ optimizer: 'adamw', weight_decay: 0.1, schedule: 'exponential', decay_steps: 10, decay_rate: 0.9, warmup: 5, clip_norm: 1, label_smoothing: 0.2, early_stop: 4, min_lr: 0 }, 'm.json'))
      .to.deep.equal({ optimizer: 'adamw', weightDecay: 0.1, schedule: 'exponential', decaySteps: 10, decayRate: 0.9, warmup: 5, clipNorm: 1, labelSmoothing: 0.2, earlyStop: 4, minLr: 0 });
    const cases: [Record<string, unknown>, ...string[]][] = [
      [{ schedule: 'linear' }, '"training".schedule "linear"', 'constant, step, exponential, cosine'],
      [{ clip_norm: 0 }, '"training".clip_norm', 'greater than 0'],
      [{ warmup: 2.5 }, '"training".warmup', 'whole number'],
      [{ label_smoothing: 1 }, '"training".label_smoothing', 'below 1'],
      [{ weight_decay: '0.1' }, '"training".weight_decay', 'a number'],
      [{ clipnorm: 1 }, 'unknown field "clipnorm"', 'clip_norm'],
    ];
    for (const [o, ...parts] of cases) {
      let err: unknown;
      try { readTraining(o, 'm.json'); } catch (e) { err = e; }
      expect(err, JSON.stringify(o)).to.be.instanceOf(ModelFileError);
      for (const p of parts) expect((err as Error).message).to.include(p);
    }
  });

  it('examples/models/lstm-clip.json is the rnn net (same layers and parameter names) trained with SGD at lr 20 and clipping at 1.0', () => {
    const clip = readModelFile(join(PACKAGE_ROOT, 'examples/models/lstm-clip.json'));
    expect(clip.training).to.include({ clipNorm: 1, optimizer: 'sgd', lr: 20 });
    const rnn = readModelFile(join(PACKAGE_ROOT, 'examples/models/rnn.json'));
    expect(JSON.stringify(modelToSpec(clip.model).layers)).to.equal(JSON.stringify(modelToSpec(rnn.model).layers));
  });

  it('EarlyStopping stops after `patience` evaluations without a lower loss', () => {
    const s = new EarlyStopping(2);
    expect([3, 2, 2.5, 1.5, 1.6, 1.5].map((l) => s.update(l))).to.deep.equal(['better', 'better', 'wait', 'better', 'wait', 'stop']);
    expect(s).to.include({ best: 1.5, bestAt: 3 });
    expect(new EarlyStopping(1).update(NaN)).to.equal('stop');
  });
});

describe('train CLI: training control end to end', function () {
  this.timeout(240_000);
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'wt-control-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  /**
   * 200 training images with random labels (nothing to learn that carries over), of which the last
   * `val` are the validation set; the test set is exactly those validation images, so a checkpoint's
   * test loss (--load --eval) is its validation loss.
   */
  function writeNoiseSet(dir: string, val: number): void {
    const n = 200;
    let s = 12345;
    const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) / 2 ** 24;
    const pixels = Uint8Array.from({ length: n * 784 }, () => Math.floor(rand() * 256));
    const labels = Array.from({ length: n }, () => Math.floor(rand() * 10));
    const first = n - val;
    writeFileSync(join(dir, 'train-images-idx3-ubyte'), idxImages(n, 28, 28, (i) => pixels[i]));
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxLabels(labels));
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idxImages(val, 28, 28, (i) => pixels[first * 784 + i]));
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idxLabels(labels.slice(first)));
  }

  it('bad combinations are one line and exit 2 before the GPU', () => {
    const cases: [string[], ...string[]][] = [
      [['--net', 'softmax', '--schedule', 'step', '--decay-steps', '10'], 'step schedule needs --decay-rate'],
      [['--net', 'softmax', '--val', '0', '--early-stop', '2'], '--early-stop needs a validation set'],
      [['--net', 'softmax', '--label-smoothing', '2'], '--label-smoothing 2', 'below 1'],
    ];
    for (const [argv, ...parts] of cases) expectEarlyError(runCli(argv), ...parts);
    const spec = join(root, 'mse.json');
    writeFileSync(spec, JSON.stringify({
      input_shape: [28, 28], loss: 'mean_squared_error', training: { label_smoothing: 0.1 },
      layers: [{ class_name: 'Flatten', config: {} }, { class_name: 'Dense', config: { units: 10 } }],
    }));
    expectEarlyError(runCli(['--model', spec]), `${spec}: "training".label_smoothing is for a cross-entropy loss`);
  });

  it('--early-stop stops after N epochs without a better validation loss, and --save keeps the best validation checkpoint', () => {
    const dir = join(root, 'noise');
    mkdirSync(dir, { recursive: true });
    writeNoiseSet(dir, 40);
    const ckpt = join(root, 'best.safetensors');
    const epochs = 40;
    // 160 training images of noise, batch 20: 8 steps an epoch. A wide mlp with Adam at 3e-3 memorises them
    // within a few epochs, and the validation loss (on other noise) then only rises.
    const r = runCli(['--net', 'mlp', '--hidden', '128', '--layers', '1', '--data', dir, '--val', '40', '--batch', '20', '--epochs', String(epochs),
      '--lr', '3e-3', '--optimizer', 'adamw', '--schedule', 'cosine', '--warmup', '8', '--clip-norm', '5', '--label-smoothing', '0.1',
      '--early-stop', '2', '--save', ckpt, '--json'], {}, 200_000);
    expect(r.stderr).not.to.match(STACK);
    expect(r.code, r.stderr).to.equal(0);
    const events = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, number & string>);
    const val = events.filter((e) => e.event === 'epoch').map((e) => e.valLoss as number);
    const stop = events.find((e) => e.event === 'early-stop');
    expect(stop, 'an early-stop event').to.not.equal(undefined);
    expect(val.length, 'epochs run').to.be.lessThan(epochs);
    const bestLoss = Math.min(...val);
    const bestEpoch = val.indexOf(bestLoss) + 1;
    // it stopped exactly 2 epochs after the best, which none after it beat
    expect(val.length, `validation losses ${val.map((v) => v.toFixed(4)).join(', ')}`).to.equal(bestEpoch + 2);
    const saved = events.find((e) => e.event === 'saved');
    expect(saved, 'a saved event naming the best epoch').to.include({ epoch: bestEpoch, file: ckpt });
    // the run evaluates the kept (best) weights on the test set, here the validation images
    const test = events.find((e) => e.event === 'test')!;
    expect(Math.abs(test.loss - bestLoss), `test loss ${test.loss} vs best validation loss ${bestLoss}`).to.be.lessThan(1e-5 * bestLoss);
    // and so does a fresh process from the saved file
    const ev = runCli(['--load', ckpt, '--eval', '--data', dir, '--val', '40', '--json'], {}, 120_000);
    expect(ev.code, ev.stderr).to.equal(0);
    const evTest = ev.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((e) => e.event === 'test');
    expect(Math.abs(evTest.loss - bestLoss), `checkpoint's validation loss ${evTest.loss} vs the best ${bestLoss} (all: ${val.join(', ')})`).to.be.lessThan(1e-5 * bestLoss);
    // the final weights (last epoch) were worse than the best
    expect(val[val.length - 1]).to.be.greaterThan(bestLoss);
  });
});
