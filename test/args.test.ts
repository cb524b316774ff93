import { expect } from 'chai';
import { ArgsError, NETS, NET_DEFAULTS, MODEL_DEFAULTS, DEFAULT_SEED, DEFAULT_VAL, helpText, hyperParameters, parseArgs } from '../src/cli/args.js';
import { expectArgsError } from './support/cli.js';

describe('CLI flags (src/cli/args.ts)', () => {
  it('fills every net\'s defaults from NET_DEFAULTS', () => {
    for (const net of NETS) {
      const a = parseArgs(['--net', net]);
      const d = NET_DEFAULTS[net];
      expect(a.net).to.equal(net);
      expect(a.batch).to.equal(d.batch);
      expect(a.lr).to.equal(d.lr);
      expect(a.optimizer).to.equal(d.optimizer);
      expect(a.hidden).to.equal(d.hidden);
      expect(a.keepProb).to.equal(d.keepProb);
      expect(a.cell).to.equal(d.cell);
      if ('epochs' in d.budget) {
        expect(a.epochs).to.equal(d.budget.epochs);
        expect(a.steps).to.equal(undefined);
      } else {
        expect(a.steps).to.equal(d.budget.steps);
        expect(a.epochs).to.equal(undefined);
      }
      expect(a.seed).to.equal(DEFAULT_SEED);
      expect(a.val).to.equal(DEFAULT_VAL);
      expect([a.eval, a.profile, a.json, a.help]).to.deep.equal([false, false, false, false]);
      expect(a.given.size).to.equal(1);
    }
  });

  it('has the tutorials\' architectures and optimizers', () => {
    expect(NET_DEFAULTS.bp.hidden).to.equal(50);
    expect(NET_DEFAULTS.mlp).to.include({ hidden: 256, optimizer: 'adam', lr: 1e-3, batch: 100 });
    // cnn: the tutorial's Adam at 1e-3 instead of 1e-4, to reach 0.990 in 5,000 steps instead of 20,000 (see args.ts)
    expect(NET_DEFAULTS.cnn).to.include({ optimizer: 'adam', lr: 1e-3, batch: 50, keepProb: 0.5, hidden: 1024 });
    expect(NET_DEFAULTS.rnn).to.include({ cell: 'lstm', hidden: 128, optimizer: 'adam', lr: 1e-3, batch: 100 });
    expect(NET_DEFAULTS.softmax.optimizer).to.equal('sgd');
    expect(NET_DEFAULTS.bp.optimizer).to.equal('sgd');
  });

  it('parses every flag, as "--flag value" and "--flag=value"', () => {
    const a = parseArgs([
      '--net', 'rnn', '--steps=300', '--batch', '64', '--lr', '3e-4', '--optimizer', 'sgd', '--hidden', '64',
      '--layers=2', '--cell', 'gru', '--keep-prob', '0.8', '--seed', '9', '--data', '/tmp/x', '--val', '1000',
      '--save', 'a.safetensors', '--profile', '--trace', 't.json', '--plots', 'p', '--json',
    ]);
    expect(a).to.include({
      net: 'rnn', steps: 300, batch: 64, lr: 3e-4, optimizer: 'sgd', hidden: 64, layers: 2, cell: 'gru', keepProb: 0.8,
      seed: 9, data: '/tmp/x', val: 1000, save: 'a.safetensors', profile: true, trace: 't.json', plots: 'p', json: true, eval: false,
    });
    expect(a.epochs).to.equal(undefined);
    expect([...a.given].sort()).to.include.members(['net', 'steps', 'lr', 'keep-prob']);
    const e = parseArgs(['--net', 'mlp', '--load', 'm.safetensors', '--eval']);
    expect(e).to.include({ load: 'm.safetensors', eval: true });
    expect(parseArgs(['--net', 'cnn', '--epochs', '2']).steps).to.equal(undefined);
    expect(parseArgs(['--net', 'softmax', '--lr', '.5']).lr).to.equal(0.5);
    expect(parseArgs(['--net', 'softmax', '--val', '0']).val).to.equal(0);
  });

  it('--model FILE takes the model defaults, flags over them; --load alone needs no --net; not --net with --model', () => {
    const m = parseArgs(['--model', 'm.json']);
    expect(m).to.include({ net: undefined, model: 'm.json', epochs: 1, steps: undefined, batch: MODEL_DEFAULTS.batch, lr: MODEL_DEFAULTS.lr, optimizer: MODEL_DEFAULTS.optimizer });
    expect(m).to.include({ hidden: undefined, layers: undefined, cell: undefined, keepProb: undefined });
    expect(parseArgs(['--model', 'm.json', '--steps', '7', '--lr', '0.1'])).to.include({ steps: 7, epochs: undefined, lr: 0.1 });
    expect(parseArgs(['--load', 'c.safetensors', '--eval'])).to.include({ net: undefined, model: undefined, load: 'c.safetensors', eval: true });
    expectArgsError(['--net', 'mlp', '--model', 'm.json'], '--net and --model are both given');
    expectArgsError(['--model', 'm.json', '--keep-prob', '0.5'], '--keep-prob does not apply to --model');
    expect(hyperParameters(m)).not.to.have.property('net');
  });

  it('--help and -h need no --net', () => {
    expect(parseArgs(['--help']).help).to.equal(true);
    expect(parseArgs(['-h']).help).to.equal(true);
    expectArgsError(['--help', '--bogus'], '--bogus');
  });

  it('the help text lists every flag and each net\'s defaults', () => {
    const h = helpText();
    for (const f of ['net', 'epochs', 'steps', 'batch', 'lr', 'optimizer', 'hidden', 'layers', 'cell', 'keep-prob', 'seed', 'data', 'val', 'save', 'load', 'eval', 'profile', 'trace', 'plots', 'json', 'help']) {
      expect(h).to.match(new RegExp(`^  --${f}\\b`, 'm'));
    }
    for (const net of NETS) {
      const d = NET_DEFAULTS[net];
      const len = 'epochs' in d.budget ? `${d.budget.epochs} epochs` : `${d.budget.steps} steps`;
      const row = h.split('\n').find((l) => l.startsWith(`  ${net} `) && l.includes(len));
      expect(row, `defaults row of ${net}`).to.be.a('string');
      expect(row!).to.include(String(d.lr)).and.include(d.optimizer).and.include(` ${d.batch} `);
    }
  });

  const bad: [string[], ...string[]][] = [
    [['--net', 'mlp', '--bogus'], 'unknown flag --bogus', '--help'],
    [['--net', 'mlp', '--epoch', '3'], 'unknown flag --epoch', 'did you mean --epochs'],
    [['--net', 'resnet'], '--net', '"resnet"', 'softmax, bp, mlp, cnn, rnn'],
    [['--epochs', '3'], '--net is missing'],
    [['--net'], '--net needs a value'],
    [['--net', 'mlp', '--lr'], '--lr needs a value'],
    [['--net', 'mlp', '--lr', '--json'], '--lr needs a value'],
    [['--net', 'mlp', '--lr', 'fast'], '--lr', '"fast"', 'not a number'],
    [['--net', 'mlp', '--lr', '-0.1'], '--lr -0.1', 'greater than 0'],
    [['--net', 'mlp', '--lr', '0'], '--lr 0', 'greater than 0'],
    [['--net', 'mlp', '--lr', '1e999'], '--lr', 'finite'],
    [['--net', 'mlp', '--batch', '0'], '--batch 0', 'at least 1'],
    [['--net', 'mlp', '--batch', '2.5'], '--batch', 'whole number'],
    [['--net', 'mlp', '--batch', '12abc'], '--batch', 'whole number'],
    [['--net', 'mlp', '--epochs', '-3'], '--epochs -3', 'at least 1'],
    [['--net', 'mlp', '--steps', '0'], '--steps 0', 'at least 1'],
    [['--net', 'mlp', '--epochs', '2', '--steps', '5'], '--epochs and --steps'],
    [['--net', 'mlp', '--keep-prob', '0'], '--keep-prob 0', '(0, 1]'],
    [['--net', 'mlp', '--keep-prob', '1.5'], '--keep-prob 1.5', '(0, 1]'],
    [['--net', 'mlp', '--keep-prob', '-0.5'], '--keep-prob -0.5', '(0, 1]'],
    [['--net', 'mlp', '--cell', 'lstm'], '--cell', '--net mlp', '--net rnn'],
    [['--net', 'rnn', '--cell', 'transformer'], '--cell', 'lstm, gru, rnn'],
    [['--net', 'softmax', '--hidden', '10'], '--hidden', '--net softmax'],
    [['--net', 'bp', '--keep-prob', '0.5'], '--keep-prob', '--net bp'],
    [['--net', 'cnn', '--layers', '2'], '--layers', '--net cnn', 'mlp|rnn'],
    [['--net', 'mlp', '--optimizer', 'rmsprop'], '--optimizer', 'sgd, adam'],
    [['--net', 'mlp', '--val', '-5'], '--val -5', '0 or more'],
    [['--net', 'mlp', '--seed', '-1'], '--seed -1'],
    [['--net', 'mlp', '--seed', '99999999999'], '--seed'],
    [['--net', 'mlp', '--eval'], '--eval needs', '--load FILE'],
    [['--net', 'mlp', '--eval', '--load', 'a', '--epochs', '3'], '--epochs', '--eval'],
    [['--net', 'mlp', '--json=yes'], '--json takes no value'],
    [['--net', 'mlp', '--lr', '0.1', '--lr', '0.2'], '--lr is given twice'],
    [['--net', 'mlp', 'extra'], 'unexpected argument "extra"'],
    [['--net', 'mlp', '--data='], '--data is empty'],
  ];
  for (const [argv, ...parts] of bad) {
    it(`rejects: ${argv.join(' ')}`, () => expectArgsError(argv, ...parts));
  }

  it('hyperParameters records the net\'s shape and training settings as strings', () => {
    const h = hyperParameters(parseArgs(['--net', 'rnn', '--hidden', '64', '--layers', '2']));
    expect(h).to.deep.equal({ net: 'rnn', hidden: '64', layers: '2', cell: 'lstm', keep_prob: '1', optimizer: 'adam', lr: '0.001', batch: '100', seed: '1' });
    expect(hyperParameters(parseArgs(['--net', 'softmax']))).to.not.have.property('hidden');
  });
});
