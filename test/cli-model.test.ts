// `--model FILE`: the CLI trains a model of the user's own (our JSON spec or a Keras model.to_json())
// on data of any shape and class count; every mistake in a model file costs one line naming the file,
// the layer and the fix, exit 2, before the GPU is touched; a checkpoint carries its model, so
// `--load FILE --eval` needs no --model; the example specs are exactly the built-in nets.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors } from '../src/cli/checkpoint.js';
import { modelFromText } from '../src/cli/model-file.js';
import { NET_DEFAULTS, NET_KINDS, builtinModel } from '../src/nn/models/builtin.js';
import { modelToSpec } from '../src/nn/spec.js';
import { idxFile } from './support/idx.js';
import { expectEarlyError, runCli, STACK, type CliRun } from './support/cli.js';
import { PACKAGE_ROOT as ROOT } from './support/paths.js';

type Run = CliRun;

/** The CLI with a longer hang guard: these runs train. */
const run = (args: string[]): Run => runCli(args, {}, 120_000);


/** The JSON events of a --json run. */
function events(r: Run): Record<string, any>[] {
  return r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

/**
 * 16x16 RGB images (u8) whose label 0-3 is the brightest quadrant: noise in [0, 120) everywhere,
 * +30 on every pixel and channel of the label's quadrant. Train 1600, test 400.
 */
function writeQuadrants(dir: string): void {
  let s = 12345;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) / (1 << 24);
  const make = (n: number) => {
    const labels = Array.from({ length: n }, () => Math.floor(rand() * 4));
    const px = new Uint8Array(n * 16 * 16 * 3);
    for (let e = 0; e < n; e++) {
      for (let y = 0; y < 16; y++) {
        for (let x = 0; x < 16; x++) {
          const q = (y >= 8 ? 2 : 0) + (x >= 8 ? 1 : 0);
          for (let c = 0; c < 3; c++) px[((e * 16 + y) * 16 + x) * 3 + c] = Math.floor(rand() * 120) + (q === labels[e] ? 30 : 0);
        }
      }
    }
    return { images: idxFile('u8', [n, 16, 16, 3], (i) => px[i]), labels: idxFile('u8', [n], (i) => labels[i]) };
  };
  const train = make(1600), test = make(400);
  writeFileSync(join(dir, 'train-images-idx4-ubyte'), train.images);
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), train.labels);
  writeFileSync(join(dir, 'test-images-idx4-ubyte'), test.images);
  writeFileSync(join(dir, 'test-labels-idx1-ubyte'), test.labels);
}

/** A small CNN for the quadrant data, in our spec format. */
function quadrantSpec(): any {
  return {
    name: 'quadrants',
    input_shape: [16, 16, 3],
    layers: [
      { class_name: 'Conv2D', config: { name: 'conv', filters: 8, kernel_size: 3, padding: 'same', activation: 'relu' } },
      { class_name: 'MaxPooling2D', config: { name: 'pool', pool_size: 2 } },
      { class_name: 'Flatten', config: { name: 'flat' } },
      { class_name: 'Dense', config: { name: 'out', units: 4, activation: 'softmax' } },
    ],
  };
}

/** The same CNN as Keras 2's Sequential.to_json() writes it. */
function quadrantKeras(): any {
  const glorot = { class_name: 'GlorotUniform', config: { seed: null } };
  const zeros = { class_name: 'Zeros', config: {} };
  const weights = { use_bias: true, kernel_initializer: glorot, bias_initializer: zeros, kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null };
  return {
    class_name: 'Sequential',
    config: {
      name: 'sequential',
      layers: [
        { class_name: 'InputLayer', config: { batch_input_shape: [null, 16, 16, 3], dtype: 'float32', sparse: false, ragged: false, name: 'input_1' } },
        { class_name: 'Conv2D', config: { name: 'conv2d', trainable: true, dtype: 'float32', filters: 8, kernel_size: [3, 3], strides: [1, 1], padding: 'same', data_format: 'channels_last', dilation_rate: [1, 1], groups: 1, activation: 'relu', ...weights } },
        { class_name: 'MaxPooling2D', config: { name: 'max_pooling2d', trainable: true, dtype: 'float32', pool_size: [2, 2], padding: 'valid', strides: [2, 2], data_format: 'channels_last' } },
        { class_name: 'Flatten', config: { name: 'flatten', trainable: true, dtype: 'float32', data_format: 'channels_last' } },
        { class_name: 'Dense', config: { name: 'dense', trainable: true, dtype: 'float32', units: 4, activation: 'softmax', ...weights } },
      ],
    },
    keras_version: '2.13.1',
    backend: 'tensorflow',
  };
}

describe('train CLI: --model FILE (your own model on your own data)', function () {
  this.timeout(300_000);
  let root: string;
  let data: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'cli-model-'));
    data = join(root, 'quadrants');
    mkdirSync(data);
    writeQuadrants(data);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  /** Writes `spec` (an object, or text as is) to a file in the temp folder; returns its path. */
  const write = (name: string, spec: unknown): string => {
    const file = join(root, name);
    writeFileSync(file, typeof spec === 'string' ? spec : JSON.stringify(spec, null, 1));
    return file;
  };
  const edit = (f: (s: any) => void): any => {
    const s = quadrantSpec();
    f(s);
    return s;
  };
  const fails = (name: string, spec: unknown, ...parts: string[]) => {
    const file = write(name, spec);
    return expectEarlyError(run(['--model', file, '--data', data, '--val', '0']), file, ...parts);
  };

  describe('errors in a model file: one line naming the layer and the fix, exit 2, before the GPU', () => {
    it('an unknown layer class', () => {
      fails('unknown.json', edit((s) => { s.layers[1].class_name = 'UpSampling2D'; }), 'layer 1 "pool" (UpSampling2D)', 'not supported', 'use one of Dense, Conv2D');
    });
    it('a missing field', () => {
      fails('missing.json', edit((s) => { delete s.layers[3].config.units; }), 'layer 3 "out" (Dense)', 'the field "units" is missing', 'give "units"');
    });
    it('a bad field value', () => {
      fails('bad.json', edit((s) => { s.layers[0].config.filters = -3; }), 'layer 0 "conv" (Conv2D)', '"filters" must be a positive integer, got -3');
    });
    it('an unknown field (a typo is not ignored)', () => {
      fails('typo.json', edit((s) => { s.layers[3].config.unitz = 4; }), 'layer 3 "out" (Dense)', 'unknown field "unitz"');
    });
    it('shapes that do not fit', () => {
      fails('shapes.json', edit((s) => { s.layers[0].config.kernel_size = 17; s.layers[0].config.padding = 'valid'; }), 'layer 0 "conv" (Conv2D)', 'does not fit the 16x16 input', 'use padding "same" or a smaller kernel_size');
    });
    it('classes that disagree with the labels', () => {
      fails('classes.json', edit((s) => { s.layers[3].config.units = 3; }), 'layer 3 "out" (Dense) gives 3 class scores', 'use 4 classes', 'give the last layer 4 units');
    });
    it('an input that does not match the examples', () => {
      fails('input.json', edit((s) => { s.input_shape = [16, 16, 1]; }), 'the input 16x16x1 takes 256 values', 'examples of shape 16x16x3 (768 values)', 'set the model\'s input shape to 16x16x3');
    });
    it('JSON that does not parse, with its line and column', () => {
      const text = '{\n "input_shape": [16, 16, 3],\n "layers": [,]\n}\n';
      fails('broken.json', text, 'is not valid JSON at line 3, column 13', 'fix the file');
    });
    it('a Keras model with an unsupported layer, named as Keras named it', () => {
      const k = quadrantKeras();
      k.config.layers[2].class_name = 'UpSampling2D';
      fails('keras-bad.json', k, 'layer 1 "max_pooling2d" (UpSampling2D)', 'not supported');
    });
    it('a bad "training" field', () => {
      fails('training.json', { ...quadrantSpec(), training: { lr: -1 } }, '"training".lr must be a number greater than 0, got -1');
    });
    it('a file that is neither a spec nor a Keras model', () => {
      fails('neither.json', { hello: 1 }, 'is neither a model spec', 'nor a Keras model.to_json()');
    });
    it('a missing file, and --net with --model', () => {
      expectEarlyError(run(['--model', join(root, 'nope.json')]), 'nope.json does not exist', 'check the --model path');
      expectEarlyError(run(['--net', 'mlp', '--model', join(root, 'nope.json')]), '--net and --model are both given', 'not both');
    });
    it('a built-in net\'s knob with --model', () => {
      const file = write('ok.json', quadrantSpec());
      expectEarlyError(run(['--model', file, '--hidden', '10']), '--hidden does not apply to --model', 'set the layer\'s field in the model file');
    });
  });

  it('trains a spec on 16x16x3 images with 4 classes: the loss falls, test accuracy far above chance; the checkpoint carries the model', () => {
    const file = write('quadrants.json', { ...quadrantSpec(), training: { batch: 32, lr: 0.003 } });
    const ckpt = join(root, 'quadrants.safetensors');
    const r = run(['--model', file, '--data', data, '--val', '200', '--steps', '129', '--json', '--save', ckpt]);
    expect(r.code, r.stderr).to.equal(0);
    const ev = events(r);
    const model = ev.find((e) => e.event === 'model')!;
    expect(model.summary).to.include('out (Dense)').and.include('Total params: 2276'); // conv 3·3·3·8 + 8, dense 512·4 + 4
    const epochs = ev.filter((e) => e.event === 'epoch');
    expect(epochs).to.have.length(3); // 1400 / 32: 43 steps an epoch
    const test = ev.find((e) => e.event === 'test')!;
    console.log(`      train loss by epoch ${epochs.map((e) => e.trainLoss.toFixed(3)).join(', ')}; validation acc ${epochs.map((e) => e.valAccuracy.toFixed(3)).join(', ')}; test accuracy ${test.accuracy}`);
    expect(epochs[epochs.length - 1].trainLoss).to.be.below(epochs[0].trainLoss * 0.7);
    expect(epochs[0].trainLoss).to.be.below(Math.log(4) + 0.2);
    expect(test.accuracy).to.be.at.least(0.9);

    // The checkpoint records the spec: --load alone rebuilds the model and gives the same test accuracy.
    const meta = decodeSafetensors(readFileSync(ckpt), ckpt).metadata;
    expect(JSON.parse(meta.model_spec).name).to.equal('quadrants');
    expect(meta.net).to.equal(undefined);
    const again = run(['--load', ckpt, '--eval', '--data', data, '--val', '0', '--json']);
    expect(again.code, again.stderr).to.equal(0);
    const test2 = events(again).find((e) => e.event === 'test')!;
    expect(test2.accuracy).to.equal(test.accuracy);
    expect(test2.loss).to.be.closeTo(test.loss, 1e-6);
  });

  it('trains a Keras Sequential.to_json() CNN on the same data', () => {
    const file = write('keras.json', quadrantKeras());
    const r = run(['--model', file, '--data', data, '--val', '0', '--steps', '100', '--batch', '32', '--lr', '0.003']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include('conv2d (Conv2D)').and.include('(None, 16, 16, 8)');
    const acc = Number(/test accuracy ([\d.]+)/.exec(r.stdout)![1]);
    console.log(`      Keras CNN: test accuracy ${acc}`);
    expect(acc).to.be.at.least(0.9);
  });

  it('a checkpoint of a built-in net without a model spec (saved before specs) loads with --load alone', () => {
    const ckpt = join(root, 'old-softmax.safetensors');
    const w = new Float32Array(784 * 10), b = new Float32Array(10);
    b[7] = 1; // every prediction is 7
    writeFileSync(ckpt, encodeSafetensors({ 'softmax/w': { shape: [784, 10], data: w }, 'softmax/b': { shape: [10], data: b } },
      { net: 'softmax', optimizer: 'sgd', lr: '0.2', batch: '100', seed: '1' }));
    const r = run(['--load', ckpt, '--eval']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include('net softmax:');
    // MNIST's test set has 1028 sevens.
    expect(r.stdout).to.include('test accuracy 0.1028');
  });
});

describe('examples/models: the built-in nets as JSON specs', () => {
  for (const net of NET_KINDS) {
    it(`${net}.json is modelToSpec of the net as --net ${net} builds it, with its training defaults`, () => {
      const file = join(ROOT, 'examples/models', `${net}.json`);
      const { training, ...spec } = JSON.parse(readFileSync(file, 'utf8'));
      const d = NET_DEFAULTS[net];
      const want = modelToSpec(builtinModel(net, { hidden: d.hidden, layers: d.layers, cell: d.cell, keepProb: d.keepProb }));
      expect(spec, `${file} has drifted: run node dist/tools/write-example-models.js`).to.deep.equal(JSON.parse(JSON.stringify(want)));
      expect(training).to.deep.equal({ ...d.budget, batch: d.batch, lr: d.lr, optimizer: d.optimizer });
    });
  }

  it('residual-cnn.json is a Keras functional model: a conv, two residual blocks with add (a stride-2 conv between them), a 1x1 conv, global average pool, dense', () => {
    const file = join(ROOT, 'examples/models/residual-cnn.json');
    const { model, format, training } = modelFromText(readFileSync(file, 'utf8'), file);
    expect(format).to.equal('keras');
    expect(model.layers.map((l) => l.className)).to.deep.equal([
      'Conv2D', 'MaxPooling2D', 'Conv2D', 'Conv2D', 'Add', 'Activation', 'Conv2D', 'Conv2D', 'Conv2D', 'Add', 'Activation', 'Conv2D', 'GlobalAveragePooling2D', 'Dense',
    ]);
    expect(model.inputSize).to.equal(784);
    expect(model.classes).to.equal(10);
    expect(training.epochs).to.be.a('number');
  });
});
