// The layers/model API: specs round-trip, every spec mistake is a one-line ModelSpecError naming the
// layer, Keras to_json parses, summary() prints Keras' table, recurrent layers stack into one op,
// and a custom model with another input shape and class count trains on data it can learn.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { rng } from './support/cpu.js';
import type { GpuContext } from '../src/gpu/context.js';
import type { Graph } from '../src/graph/graph.js';
import { Trainer } from '../src/nn/trainer.js';
import { trainSteps } from '../src/nn/loop.js';
import {
  ModelSpecError, activation, add, avgPool2d, conv2d, dense, dropout, flatten, gru, input, lstm, maxPool2d, reshape, simpleRnn,
} from '../src/nn/layers.js';
import { model, sequential, type Model } from '../src/nn/model.js';
import { modelFromKeras, modelFromSpec, modelToSpec, type ModelSpec } from '../src/nn/spec.js';
import { builtinModel, NET_KINDS } from '../src/nn/models/builtin.js';

/** A ParamStore stand-in for building graphs on the CPU: records each parameter's shape and init. */
function fakeStore() {
  const params: Record<string, { shape: number[]; init: unknown }> = {};
  return {
    params,
    get(name: string, shape: number[], init: unknown) {
      params[name] = { shape, init };
      return {} as GPUBuffer;
    },
  };
}

/** A graph as comparable data: every node's op, phase, tensor names/shapes and attributes. */
function graphShape(g: Graph): unknown[] {
  return g.nodes.map((n) => ({
    op: n.op,
    inputs: n.inputs.map((t) => `${t.name} [${t.shape}]`),
    outputs: n.outputs.map((t) => `${t.name} [${t.shape}]`),
    attrs: JSON.stringify(n.attrs, (k, v) => (k === 'state' ? undefined : v)),
  }));
}

function buildBoth(m: Model, batch = 4, training = true) {
  const store = fakeStore();
  const net = m.build(store, batch, training, 7);
  return { net, params: store.params, nodes: graphShape(net.graph) };
}

function smallCnn(): Model {
  return sequential([16, 16, 3], [
    conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }),
    maxPool2d(),
    conv2d({ filters: 12, kernelSize: [3, 3], strides: 1, padding: 'valid', activation: 'tanh', kernelInitializer: { kind: 'truncated_normal', std: 0.1 }, biasInitializer: { kind: 'const', value: 0.1 } }),
    avgPool2d({ poolSize: 2, strides: 1, padding: 'same' }),
    flatten(),
    dense({ units: 24, activation: 'sigmoid', kernelInitializer: { kind: 'normal', std: 0.05 } }),
    dropout({ rate: 0.25 }),
    dense({ units: 4 }),
    activation('softmax'),
  ], { name: 'small_cnn' });
}

function expectSpecError(f: () => unknown, ...parts: (string | RegExp)[]): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'a ModelSpecError').to.be.instanceOf(ModelSpecError);
  const msg = (err as Error).message;
  expect(msg, 'one line').to.not.include('\n');
  for (const p of parts) {
    if (typeof p === 'string') expect(msg).to.include(p);
    else expect(msg).to.match(p);
  }
}

const baseSpec = (): ModelSpec => ({
  name: 'spec_net',
  input_shape: [8, 8, 1],
  layers: [
    { class_name: 'Conv2D', config: { name: 'conv', filters: 4, kernel_size: 3, padding: 'same', activation: 'relu' } },
    { class_name: 'Flatten', config: { name: 'flat' } },
    { class_name: 'Dense', config: { name: 'out', units: 3 } },
  ],
});

describe('models: specs, errors, Keras JSON, summary (CPU)', () => {
  it('a model round-trips through its JSON spec to the same spec and the same graph', () => {
    for (const m of [smallCnn(), ...NET_KINDS.map((n) => builtinModel(n, { keepProb: 0.8, layers: 2, cell: 'gru' }))]) {
      const spec = modelToSpec(m);
      const again = modelFromSpec(JSON.stringify(spec));
      expect(modelToSpec(again), `${m.name} spec`).to.deep.equal(spec);
      const a = buildBoth(m), b = buildBoth(again);
      expect(b.nodes, `${m.name} graph`).to.deep.equal(a.nodes);
      expect(b.params, `${m.name} parameters`).to.deep.equal(a.params);
    }
    // The spec speaks Keras: class names and config keys
    const spec = modelToSpec(smallCnn());
    expect(spec.layers.map((l) => l.class_name)).to.deep.equal(['Conv2D', 'MaxPooling2D', 'Conv2D', 'AveragePooling2D', 'Flatten', 'Dense', 'Dropout', 'Dense', 'Activation']);
    expect(spec.layers[0].config).to.include({ name: 'conv2d', filters: 8, padding: 'same', activation: 'relu' });
    expect(spec.layers[0].config.kernel_size).to.deep.equal([3, 3]);
    expect(spec.layers[6].config).to.deep.equal({ name: 'dropout', rate: 0.25 });
    expect(spec.layers[2].config.kernel_initializer).to.deep.equal({ class_name: 'TruncatedNormal', config: { mean: 0, stddev: 0.1, seed: null } });
  });

  it('Keras defaults: Glorot-uniform kernels with the layer\'s fans, zero biases; dropout rate is the fraction dropped', () => {
    const { params, net } = buildBoth(smallCnn());
    expect(params['conv2d/kernel']).to.deep.equal({ shape: [3, 3, 3, 8], init: { kind: 'glorot_uniform', fanIn: 27, fanOut: 72 } });
    expect(params['conv2d/bias']).to.deep.equal({ shape: [8], init: { kind: 'zeros' } });
    expect(params['dense_1/kernel']).to.deep.equal({ shape: [24, 4], init: { kind: 'glorot_uniform', fanIn: 24, fanOut: 4 } });
    const drop = net.graph.nodes.find((n) => n.op === 'dropout')!;
    expect(drop.attrs.keepProb).to.equal(0.75);
    // the final softmax is folded into the loss: the last dense is linear and nothing follows it but the loss
    const last = net.graph.nodes.filter((n) => n.phase === 'forward').map((n) => n.op);
    expect(last.slice(-3)).to.deep.equal(['dense', 'xent', 'accuracy']);
    expect(net.graph.nodes.filter((n) => n.op === 'dense').map((n) => n.attrs.activation)).to.deep.equal(['sigmoid', 'none']);
    // evaluation graphs leave dropout out
    expect(buildBoth(smallCnn(), 4, false).net.graph.nodes.some((n) => n.op === 'dropout')).to.equal(false);
  });

  it('each spec mistake is a one-line ModelSpecError naming the layer and the fix', () => {
    const edit = (f: (s: ModelSpec) => void) => {
      const s = baseSpec();
      f(s);
      return () => modelFromSpec(s);
    };
    expectSpecError(edit((s) => { s.layers[1].class_name = 'UpSampling2D'; }), 'layer 1 "flat" (UpSampling2D)', 'not supported', 'use one of Dense, Conv2D');
    expectSpecError(edit((s) => { delete s.layers[0].config.filters; }), 'layer 0 "conv" (Conv2D)', 'the field "filters" is missing');
    expectSpecError(edit((s) => { s.layers[2].config.units = -3; }), 'layer 2 "out" (Dense)', '"units" must be a positive integer, got -3');
    expectSpecError(edit((s) => { s.layers[0].config.padding = 'full'; }), 'layer 0 "conv" (Conv2D)', '"padding" "full" is not supported', '"valid", "same"');
    expectSpecError(edit((s) => { s.layers[2].config.activation = 'swish'; }), 'layer 2 "out" (Dense)', '"activation" "swish" is not supported');
    expectSpecError(edit((s) => { s.layers[2].config.unitz = 3; }), 'layer 2 "out" (Dense)', 'unknown field "unitz"', 'name, units, activation');
    expectSpecError(edit((s) => { s.layers[0].config.kernel_initializer = 'he_normal'; }), 'layer 0 "conv" (Conv2D)', 'initializer "he_normal" is not supported');
    expectSpecError(edit((s) => { s.layers[0].config.dilation_rate = [2, 2]; }), 'layer 0 "conv" (Conv2D)', '"dilation_rate"', 'not supported');
    // shapes that do not fit
    expectSpecError(edit((s) => { s.layers.splice(1, 1); }), 'layer 1 "out" (Dense)', 'the output must be one score per class');
    expectSpecError(edit((s) => { s.layers[0].config.kernel_size = 9; s.layers[0].config.padding = 'valid'; }), 'layer 0 "conv" (Conv2D)', '9x9 "valid" window does not fit the 8x8 input');
    expectSpecError(edit((s) => { s.input_shape = [64]; }), 'layer 0 "conv" (Conv2D)', 'needs an input of shape (height, width, channels), got (None, 64)', 'Reshape');
    expectSpecError(edit((s) => { s.layers.splice(1, 0, { class_name: 'Reshape', config: { name: 'r', target_shape: [7, 7] } }); }), 'layer 1 "r" (Reshape)', 'cannot view (None, 8, 8, 4) (256 values) as (None, 7, 7)');
    // wiring and names
    expectSpecError(edit((s) => { s.layers[2].inbound = ['nowhere']; }), 'layer 2 "out" (Dense)', 'reads "nowhere"');
    expectSpecError(edit((s) => { s.layers[1].config.name = 'conv'; }), 'layer 1 "conv" (Flatten)', 'used twice');
    expectSpecError(edit((s) => { s.layers[2].inbound = ['conv']; }), 'layer 1 "flat" (Flatten)', 'not used');
    expectSpecError(edit((s) => { s.loss = 'hinge' as ModelSpec['loss']; }), '"loss" "hinge" is not supported');
    expectSpecError(edit((s) => { s.input_shape = [8, 0]; }), 'input shape [8,0]');
    expectSpecError(() => modelFromSpec('{"input_shape": [3], "layers": ['), 'not valid JSON');
    expectSpecError(edit((s) => { s.layers[2].config.units = 1; }), 'layer 2 "out" (Dense)', 'at least 2 classes');
  });

  it('recurrent layers: consecutive cells become one stacked op with dropout between; wrong wiring is named', () => {
    const stacked = sequential([8, 6], [lstm({ units: 12, returnSequences: true }), dropout({ rate: 0.25 }), lstm({ units: 10 }), dense({ units: 3 })]);
    expect(stacked.layout).to.equal('time-major');
    const { net, params } = buildBoth(stacked);
    const rec = net.graph.nodes.filter((n) => n.op === 'recurrent');
    expect(rec.length, 'one recurrent op').to.equal(1);
    expect(rec[0].attrs).to.include({ cell: 'lstm', keepProb: 0.75, output: 'last', forgetBias: 1 });
    expect(rec[0].attrs.hidden).to.deep.equal([12, 10]);
    expect(net.x.shape).to.deep.equal([8, 4, 6]);
    expect(params['lstm/kernel']).to.deep.equal({ shape: [18, 48], init: { kind: 'glorot_uniform', fanIn: 18, fanOut: 48 } });
    expect(params['lstm_1/kernel'].shape).to.deep.equal([22, 40]);
    expect(stacked.paramCount).to.equal(18 * 48 + 48 + 22 * 40 + 40 + 10 * 3 + 3);
    // different cells are separate ops, the second reading the first's sequence
    const mixed = buildBoth(sequential([5, 3], [gru({ units: 4, returnSequences: true }), simpleRnn({ units: 6 }), dense({ units: 2 })])).net;
    expect(mixed.graph.nodes.filter((n) => n.op === 'recurrent').map((n) => [n.attrs.cell, n.attrs.output])).to.deep.equal([['gru', 'all'], ['rnn', 'last']]);
    expectSpecError(() => sequential([5, 3], [gru({ units: 4, returnSequences: true }), dropout({ rate: 0.5 }), lstm({ units: 6 }), dense({ units: 2 })]), 'layer 1 "dropout" (Dropout)', 'one cell type and one rate');
    expectSpecError(() => sequential([5, 3], [lstm({ units: 4, returnSequences: true }), dense({ units: 2 })]), 'layer 1 "dense" (Dense)', 'reads the sequence output', 'return_sequences false');
    expectSpecError(() => sequential([5, 3], [lstm({ units: 4 }), dropout({ rate: 0.5 }), dense({ units: 2 })]), 'layer 1 "dropout" (Dropout)', 'only Dense can read');
    expectSpecError(() => sequential([5, 3], [lstm({ units: 4 })]), 'layer 0 "lstm" (LSTM)', 'add a Dense layer');
    expectSpecError(() => sequential([15], [reshape({ targetShape: [5, 3] }), lstm({ units: 4 }), dense({ units: 2 })]), 'layer 1 "lstm" (LSTM)', 'not a sequence');
    // a [T, F] input read by non-recurrent layers is laid out in rows
    expect(sequential([5, 3], [flatten(), dense({ units: 2 })]).layout).to.equal('rows');
  });

  it('the functional API wires a graph that is not a chain; a layer is applied once', () => {
    const x = input([6, 6, 2]);
    const a = conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'a' }).apply(x);
    const b = maxPool2d({ name: 'b' }).apply(a);
    const c = flatten({ name: 'c' }).apply(b);
    const d = dense({ units: 5, name: 'd' }).apply(c);
    const m = model({ inputs: x, outputs: d, name: 'fn' });
    expect(m.layers.map((l) => l.name)).to.deep.equal(['a', 'b', 'c', 'd']);
    const l = dense({ units: 2 });
    l.apply(d);
    expectSpecError(() => l.apply(c), 'already applied');
    expectSpecError(() => dense({ units: 2 }).apply([c, d]), 'takes one input');
  });

  it('reads a Keras to_json of a small CNN (Keras 2 Sequential and Keras 3 functional) and names unsupported layers', () => {
    const glorot = { class_name: 'GlorotUniform', config: { seed: null } };
    const zeros = { class_name: 'Zeros', config: {} };
    const conv = (name: string, filters: number) => ({
      class_name: 'Conv2D',
      config: {
        name, trainable: true, dtype: 'float32', filters, kernel_size: [3, 3], strides: [1, 1], padding: 'valid', data_format: 'channels_last',
        dilation_rate: [1, 1], groups: 1, activation: 'relu', use_bias: true, kernel_initializer: glorot, bias_initializer: zeros,
        kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null,
      },
    });
    const keras2 = {
      class_name: 'Sequential',
      config: {
        name: 'sequential',
        layers: [
          { class_name: 'InputLayer', config: { batch_input_shape: [null, 28, 28, 1], dtype: 'float32', sparse: false, ragged: false, name: 'input_1' } },
          conv('conv2d', 16),
          { class_name: 'MaxPooling2D', config: { name: 'max_pooling2d', trainable: true, dtype: 'float32', pool_size: [2, 2], padding: 'valid', strides: [2, 2], data_format: 'channels_last' } },
          conv('conv2d_1', 32),
          { class_name: 'MaxPooling2D', config: { name: 'max_pooling2d_1', trainable: true, dtype: 'float32', pool_size: [2, 2], padding: 'valid', strides: null, data_format: 'channels_last' } },
          { class_name: 'Flatten', config: { name: 'flatten', trainable: true, dtype: 'float32', data_format: 'channels_last' } },
          { class_name: 'Dropout', config: { name: 'dropout', trainable: true, dtype: 'float32', rate: 0.5, noise_shape: null, seed: null } },
          { class_name: 'Dense', config: { name: 'dense', trainable: true, dtype: 'float32', units: 10, activation: 'softmax', use_bias: true, kernel_initializer: glorot, bias_initializer: zeros, kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null } },
        ],
      },
      keras_version: '2.13.1',
      backend: 'tensorflow',
    };
    const m = modelFromKeras(JSON.stringify(keras2));
    expect(m.inputShape).to.deep.equal([28, 28, 1]);
    expect(m.layers.map((l) => `${l.name}:${l.output!.shape}`)).to.deep.equal([
      'conv2d:26,26,16', 'max_pooling2d:13,13,16', 'conv2d_1:11,11,32', 'max_pooling2d_1:5,5,32', 'flatten:800', 'dropout:800', 'dense:10',
    ]);
    // Keras' own count for this model
    expect(m.paramCount).to.equal(160 + 4640 + 8010);

    const tensor = (name: string) => ({ class_name: '__keras_tensor__', config: { shape: [null], dtype: 'float32', keras_history: [name, 0, 0] } });
    const keras3 = {
      module: 'keras.src.models.functional', class_name: 'Functional',
      config: {
        name: 'functional', trainable: true,
        layers: [
          { module: 'keras.layers', class_name: 'InputLayer', config: { batch_shape: [null, 12, 12, 3], dtype: 'float32', sparse: false, name: 'img' }, registered_name: null, name: 'img', inbound_nodes: [] },
          { ...conv('c1', 4), name: 'c1', inbound_nodes: [{ args: [tensor('img')], kwargs: {} }] },
          { class_name: 'Flatten', config: { name: 'f', data_format: 'channels_last' }, name: 'f', inbound_nodes: [{ args: [tensor('c1')], kwargs: {} }] },
          { class_name: 'Dense', config: { name: 'out', units: 3, activation: 'softmax', use_bias: true, kernel_initializer: glorot, bias_initializer: zeros, lora_rank: null }, name: 'out', inbound_nodes: [{ args: [tensor('f')], kwargs: {} }] },
        ],
        input_layers: [['img', 0, 0]], output_layers: [['out', 0, 0]],
      },
    };
    const f = modelFromKeras(keras3);
    expect(f.input.name).to.equal('img');
    expect(f.layers.map((l) => l.name)).to.deep.equal(['c1', 'f', 'out']);
    expect(f.classes).to.equal(3);

    // Keras 2 functional with a residual Add: inbound_nodes as [[[name, 0, 0, {}], ...]]
    const node = (...names: string[]) => [names.map((n) => [n, 0, 0, {}])];
    const residual = {
      class_name: 'Functional',
      config: {
        name: 'res',
        layers: [
          { class_name: 'InputLayer', config: { batch_input_shape: [null, 8, 8, 4], dtype: 'float32', name: 'input_1' }, name: 'input_1', inbound_nodes: [] },
          { ...conv('conv2d', 4), name: 'conv2d', inbound_nodes: node('input_1') },
          { class_name: 'Add', config: { name: 'add', trainable: true, dtype: 'float32' }, name: 'add', inbound_nodes: node('input_1', 'conv2d') },
          { class_name: 'GlobalAveragePooling2D', config: { name: 'gap', data_format: 'channels_last', keepdims: false }, name: 'gap', inbound_nodes: node('add') },
          { class_name: 'Dense', config: { name: 'dense', units: 5, activation: 'softmax' }, name: 'dense', inbound_nodes: node('gap') },
        ],
        input_layers: [['input_1', 0, 0]],
        output_layers: [['dense', 0, 0]],
      },
    };
    (residual.config.layers[1].config as Record<string, unknown>).padding = 'same';
    const res = modelFromKeras(residual);
    expect(res.layers.map((l) => `${l.name}<${l.inbound.map((t) => t.layer.name)}>`)).to.deep.equal(['conv2d<input_1>', 'add<input_1,conv2d>', 'gap<add>', 'dense<gap>']);
    expect(modelToSpec(res).layers[1].inbound).to.deep.equal(['input_1', 'conv2d']);

    const bad = structuredClone(keras2);
    bad.config.layers.splice(2, 0, { class_name: 'UpSampling2D', config: { name: 'up_sampling2d' } } as never);
    expectSpecError(() => modelFromKeras(bad), 'layer 1 "up_sampling2d" (UpSampling2D)', 'not supported');
    const lstmJson = { class_name: 'Sequential', config: { layers: [{ class_name: 'LSTM', config: { name: 'l', units: 4, batch_input_shape: [null, 5, 3], activation: 'relu' } }, { class_name: 'Dense', config: { name: 'd', units: 2 } }] } };
    expectSpecError(() => modelFromKeras(lstmJson), 'layer 0 "l" (LSTM)', '"activation": "relu" is not supported');
  });

  it('summary() is Keras\' table: layer (name and type), output shape, parameters, total', () => {
    const m = sequential([28, 28, 1], [conv2d({ filters: 4, kernelSize: 3, activation: 'relu' }), maxPool2d(), flatten(), dense({ units: 10, activation: 'softmax' })], { name: 'tiny' });
    expect(m.summary()).to.equal([
      'Model: "tiny"',
      '_'.repeat(61),
      'Layer (type)                   Output Shape        Param #',
      '='.repeat(61),
      'conv2d (Conv2D)                (None, 26, 26, 4)   40',
      'max_pooling2d (MaxPooling2D)   (None, 13, 13, 4)   0',
      'flatten (Flatten)              (None, 676)         0',
      'dense (Dense)                  (None, 10)          6770',
      '='.repeat(61),
      'Total params: 6810',
      'Trainable params: 6810',
      'Non-trainable params: 0',
      '_'.repeat(61),
    ].join('\n'));
    // a graph that is not a chain lists what each layer reads
    const x = input([4]);
    const h = dense({ units: 4, name: 'h' }).apply(x);
    const s = model({ inputs: x, outputs: dense({ units: 2, name: 'o' }).apply(add([x, h], { name: 'sum' })) }).summary();
    expect(s).to.include('Connected to');
    expect(s).to.match(/^input \(InputLayer\) +\(None, 4\) +0 *$/m);
    expect(s).to.match(/^sum \(Add\) +\(None, 4\) +0 +input, h$/m);
    expect(s).to.match(/^o \(Dense\) +\(None, 2\) +10 +sum$/m);
    expect(s).to.match(/^Total params: 30$/m);
    // a chain built with the functional API prints as a sequential model does
    const y = input([4]);
    expect(model({ inputs: y, outputs: dense({ units: 2 }).apply(y) }).summary()).to.not.include('Connected to');
  });

  it('the built-in nets are models with the historical parameter names, inits and input layouts', () => {
    const names = (n: (typeof NET_KINDS)[number]) => Object.keys(buildBoth(builtinModel(n, { layers: 2 })).params);
    expect(names('softmax')).to.deep.equal(['softmax/w', 'softmax/b']);
    expect(names('bp')).to.deep.equal(['bp/w1', 'bp/b1', 'bp/w2', 'bp/b2']);
    expect(names('mlp')).to.deep.equal(['mlp/w1', 'mlp/b1', 'mlp/w2', 'mlp/b2', 'mlp/w_out', 'mlp/b_out']);
    expect(names('cnn')).to.deep.equal(['cnn/conv1/w', 'cnn/conv1/b', 'cnn/conv2/w', 'cnn/conv2/b', 'cnn/fc1/w', 'cnn/fc1/b', 'cnn/fc2/w', 'cnn/fc2/b']);
    expect(names('rnn')).to.deep.equal(['rnn/lstm0/w', 'rnn/lstm0/b', 'rnn/lstm1/w', 'rnn/lstm1/b', 'rnn/out/w', 'rnn/out/b']);
    expect(buildBoth(builtinModel('cnn')).params['cnn/fc1/b']).to.deep.equal({ shape: [1024], init: { kind: 'const', value: 0.1 } });
    expect(builtinModel('rnn').layout).to.equal('time-major');
    expect(builtinModel('cnn').inputShape).to.deep.equal([784]);
  });
});

/** 16x16x3 examples: noise, plus one bright 8x8 quadrant (the label) in channel label % 3. */
function quadrantData(count: number, seed: number) {
  const rand = rng(seed);
  const images = new Float32Array(count * 16 * 16 * 3);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const k = Math.floor(rand() * 4);
    labels[i] = k;
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        for (let c = 0; c < 3; c++) {
          const inQuad = (y < 8 ? 0 : 2) + (x < 8 ? 0 : 1) === k && c === k % 3;
          images[((i * 16 + y) * 16 + x) * 3 + c] = 0.5 * rand() + (inQuad ? 0.6 : 0);
        }
      }
    }
  }
  return { count, images, labels, shape: [16, 16, 3], classes: 4 };
}

describe('models on the GPU: a custom model trains', function () {
  this.timeout(300_000);
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
  });

  it('a [16, 16, 3] input, 4-class CNN learns labels that depend on its inputs (loss falls, accuracy far above chance)', async () => {
    const m = sequential([16, 16, 3], [
      conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }),
      maxPool2d(),
      conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }),
      maxPool2d(),
      flatten(),
      dense({ units: 16, activation: 'relu' }),
      dropout({ rate: 0.1 }),
      dense({ units: 4, activation: 'softmax' }),
    ], { name: 'quadrants' });
    const train = quadrantData(512, 1);
    const held = quadrantData(200, 2);
    const trainer = await Trainer.create(ctx, { model: m, batch: 32, seed: 3, optimizer: { kind: 'adam', lr: 1e-2 }, evalBatch: 100 });
    try {
      const losses: number[] = [];
      await trainSteps(trainer, train, { steps: 60, readEvery: 10, onMetrics: (x) => { losses.push(x.loss); } });
      const ev = await trainer.evaluate(held);
      console.log(`      quadrants: loss ${losses.map((l) => l.toFixed(3)).join(' → ')}; held-out accuracy ${ev.accuracy.toFixed(3)}, loss ${ev.loss.toFixed(3)}`);
      expect(losses[0], 'first loss near ln 4').to.be.closeTo(Math.log(4), 0.4);
      expect(losses[losses.length - 1], 'the loss falls').to.be.lessThan(losses[0] * 0.5);
      expect(ev.accuracy, 'held-out accuracy (chance 0.25)').to.be.greaterThan(0.9);
      const p = await trainer.predict(held.images.subarray(0, 3 * 768));
      expect(p.probabilities.length).to.equal(12);
      expect(Array.from(p.predictions)).to.deep.equal(Array.from(ev.predictions.subarray(0, 3)));
    } finally {
      trainer.destroy();
    }
  });

  it('a model and the { net } shorthand for the same built-in net train to bit-identical losses', async () => {
    const data = quadrantData(64, 5); // any 784-value examples will do: reuse the pixels as 64 x [768 + 16]
    const images = new Float32Array(64 * 784);
    images.set(data.images.subarray(0, images.length));
    const set = { count: 64, images, labels: Uint8Array.from(data.labels, (l, i) => (l + i) % 10) };
    const run = async (opts: Parameters<typeof Trainer.create>[1]) => {
      const t = await Trainer.create(ctx, opts);
      const losses: number[] = [];
      try {
        await trainSteps(t, set, { steps: 4, onMetrics: (x) => { losses.push(x.loss); } });
      } finally {
        t.destroy();
      }
      return losses;
    };
    const common = { batch: 16, seed: 4, optimizer: { kind: 'adam' as const, lr: 1e-3 } };
    const viaNet = await run({ net: 'mlp', hidden: 32, layers: 2, keepProb: 0.8, ...common });
    const viaModel = await run({ model: builtinModel('mlp', { hidden: 32, layers: 2, keepProb: 0.8 }), ...common });
    expect(viaModel).to.deep.equal(viaNet);
    let err: unknown;
    await Trainer.create(ctx, { model: builtinModel('mlp'), hidden: 32, ...common }).catch((e) => { err = e; });
    expect((err as Error).message).to.equal('Trainer.create: hidden is a knob of the built-in nets: with a model, set it in the model\'s layers');
    const viaSpec = await run({ model: modelFromSpec(JSON.stringify(modelToSpec(builtinModel('mlp', { hidden: 32, layers: 2, keepProb: 0.8 })))), ...common });
    expect(viaSpec).to.deep.equal(viaNet);
  });

  it('data of another per-example size is refused with a message naming both shapes; [28, 28] data feeds a [784] or [28, 28, 1] model', async () => {
    const t = await Trainer.create(ctx, { model: sequential([16, 16, 3], [flatten(), dense({ units: 4 })]), batch: 4, seed: 1, optimizer: { kind: 'sgd', lr: 0.1 } });
    try {
      const mnistLike = { count: 8, images: new Float32Array(8 * 784), labels: new Uint8Array(8), shape: [28, 28], classes: 10 };
      expect(() => t.writeBatch(mnistLike, [0, 1, 2, 3])).to.throw(RangeError, /Trainer\.writeBatch: examples of shape \[28, 28\] do not fit the model's input shape \[16, 16, 3\] \(768 values each\)/);
      const unshaped = { count: 8, images: new Float32Array(8 * 784), labels: new Uint8Array(8) };
      expect(() => t.writeBatch(unshaped, [0, 1, 2, 3])).to.throw(RangeError, /Trainer\.writeBatch: 6272 values are not 8 or more examples of the model's input shape \[16, 16, 3\] \(768 values each\)/);
      const labelled = { count: 8, images: new Float32Array(8 * 768), labels: Uint8Array.from([0, 1, 2, 3, 4, 0, 1, 2]) };
      expect(() => t.writeBatch(labelled, [0, 1, 2, 3])).to.not.throw();
      expect(() => t.writeBatch(labelled, [0, 4, 1, 2])).to.throw(RangeError, /Trainer\.writeBatch: example 4 has label 4, but the model has 4 classes \(0-3\)/);
      let err: unknown;
      await t.evaluate({ ...labelled, shape: [16, 16, 3], classes: 10 } as never).catch((e) => { err = e; });
      expect((err as Error).message).to.match(/Trainer\.evaluate: the data has 10 classes but the model's output has 4: give the last layer 10 units/);
    } finally {
      t.destroy();
    }
    for (const shape of [[784], [28, 28, 1]]) {
      const layers = shape.length === 1 ? [dense({ units: 10 })] : [flatten(), dense({ units: 10 })];
      const u = await Trainer.create(ctx, { model: sequential(shape, layers), batch: 4, seed: 1, optimizer: { kind: 'sgd', lr: 0.1 } });
      try {
        const data = { count: 8, images: Float32Array.from({ length: 8 * 784 }, (_, i) => (i % 7) / 7), labels: Uint8Array.from({ length: 8 }, (_, i) => i), shape: [28, 28], classes: 10 };
        u.writeBatch(data, [0, 1, 2, 3]);
        const r = await u.step(true);
        expect(r.loss, `[${shape}] model: loss of 10 classes`).to.be.closeTo(Math.log(10), 0.5);
      } finally {
        u.destroy();
      }
    }
  });
});
