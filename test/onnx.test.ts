// ONNX export checked by the reference runtime: every exported model (the five built-in nets, the
// residual CNN, and each layer in a small model of its own) is loaded in onnxruntime-node and run on
// data; its logits must match the engine's predict() per element, its classes and accuracy the engine's.
// Each model trains a few steps first, so its parameters are not at their initial values.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { testContext } from './support/gpu.js';
import { rng } from './support/cpu.js';
import { PACKAGE_ROOT } from './support/paths.js';
import { idxImages, idxLabels } from './support/idx.js';
import { expectEarlyError, runCli } from './support/cli.js';
import { helpText, parseArgs } from '../src/cli/args.js';
import type { GpuContext } from '../src/gpu/context.js';
import { Trainer } from '../src/nn/trainer.js';
import { trainSteps } from '../src/nn/loop.js';
import { ParamStore } from '../src/nn/params.js';
import { Evaluator } from '../src/nn/evaluator.js';
import { createStepCounter } from '../src/kernels/step.js';
import { loadMnist, sliceDataset, type Mnist } from '../src/data/mnist.js';
import { modelFromText } from '../src/cli/model-file.js';
import { modelFromSpec, modelToSpec } from '../src/nn/spec.js';
import { Model, model as functional, sequential } from '../src/nn/model.js';
import type { NetKind, NetKnobs } from '../src/nn/models/builtin.js';
import {
  Layer, activation, add, avgPool2d, concat, conv2d, dense, dropout, flatten, globalAvgPool2d, gru, input, lstm, maxPool2d, reshape, simpleRnn,
} from '../src/nn/layers.js';
import { batchNorm, embedding, layerNorm } from '../src/nn/norm-layers.js';
import { exportOnnx, EXPORT_RULES, ONNX_OPSET, OnnxExportError } from '../src/onnx/export.js';
import { OnnxGraphBuilder, floatValueInfo, onnx } from '../src/onnx/graph-builder.js';

/** The per-element tolerance: |ort − engine| ≤ 1e-4 · max(1, |engine|) (relative above 1, absolute 1e-4 below). */
const TOL = 1e-4;
const withinTol = (got: number, want: number) => Math.abs(got - want) <= TOL * Math.max(1, Math.abs(want));

interface Examples { count: number; images: Float32Array; labels: Uint8Array }

/** What the checks need of the engine: a Trainer, or an evaluation graph with its parameters. */
type Engine = Pick<Trainer, 'model' | 'predict' | 'evaluate' | 'exportOnnx' | 'destroy'>;

function argmax(row: ArrayLike<number>, from: number, K: number): number {
  let best = 0;
  for (let k = 1; k < K; k++) if (row[from + k] > row[from + best]) best = k;
  return best;
}

/** Standard ops of the default domain the exporter may emit (anything else fails the structural check). */
const STANDARD_OPS = new Set(['MatMul', 'Add', 'Relu', 'Sigmoid', 'Tanh', 'Softmax', 'Transpose', 'Conv', 'MaxPool', 'AveragePool',
  'ReduceMean', 'Flatten', 'Reshape', 'Concat', 'Squeeze', 'LSTM', 'GRU', 'RNN', 'Identity',
  'BatchNormalization', 'LayerNormalization', 'Gather', 'Erf', 'Div', 'Mul']);

/**
 * An onnx.checker-style structural check of the serialized model: IR version and one opset of the
 * default domain, every node's op a standard one, every input defined before use (graph input,
 * initializer or an earlier node's output), value names assigned once, the two outputs produced.
 */
function checkStructure(bytes: Uint8Array, what: string): InstanceType<typeof onnx.ModelProto> {
  const m = onnx.ModelProto.decode(bytes);
  expect(Number(m.irVersion), `${what}: IR version`).to.equal(8);
  expect(m.opsetImport.map((o) => [o.domain ?? '', Number(o.version)]), `${what}: opsets`).to.deep.equal([['', ONNX_OPSET]]);
  const g = m.graph as InstanceType<typeof onnx.GraphProto>;
  const defined = new Set<string>([...g.input.map((v) => v.name!), ...g.initializer.map((t) => t.name!)]);
  expect(defined.size, `${what}: inputs and initializers have distinct names`).to.equal(g.input.length + g.initializer.length);
  for (const n of g.node as InstanceType<typeof onnx.NodeProto>[]) {
    expect(STANDARD_OPS.has(n.opType!), `${what}: op ${n.opType} is one the exporter is meant to emit`).to.equal(true);
    expect(n.domain ?? '', `${what}: node ${n.name} is in the default domain`).to.equal('');
    for (const i of n.input) if (i !== '') expect(defined.has(i), `${what}: node ${n.name} reads ${i} before it is defined`).to.equal(true);
    for (const o of n.output) {
      if (o === '') continue;
      expect(defined.has(o), `${what}: ${o} is assigned twice`).to.equal(false);
      defined.add(o);
    }
  }
  expect(g.output.map((o) => o.name)).to.deep.equal(['logits', 'probabilities']);
  for (const o of g.output) expect(defined.has(o.name!), `${what}: output ${o.name} is produced`).to.equal(true);
  return m;
}

describe('ONNX export, run in ONNX Runtime', function () {
  this.timeout(300_000); // lavapipe on a machine shared with other jobs can be many times slower than alone
  let ctx: GpuContext;
  let mnist: Mnist;
  let mnistTest: Examples;
  const dir = mkdtempSync(join(tmpdir(), 'onnx-export-'));
  const written: string[] = [];

  before(async () => {
    ctx = await testContext();
    mnist = loadMnist({ validation: 0 });
    const t = sliceDataset(mnist.test, 0, 1000);
    mnistTest = { count: t.count, images: t.images, labels: Uint8Array.from(t.labels) };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * Trains `trainer` a few steps on `train`, exports it, runs the ONNX model in ORT (optimizations
   * all) on `data` and compares with the engine: logits per element, classes, accuracy, and the
   * probabilities output. Also runs 3 examples alone (the batch dimension is dynamic).
   */
  async function checkExport(name: string, trainer: Engine, data: Examples): Promise<Uint8Array> {
    try {
      const bytes = await trainer.exportOnnx();
      checkStructure(bytes, name);
      const file = join(dir, `${name}.onnx`);
      writeFileSync(file, bytes);
      written.push(file);
      const m = trainer.model;
      const K = m.classes, n = data.count;
      const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all' });
      // a model on ids (Embedding) takes int64 ids; the engine takes the same ids as numbers
      const feed = (count: number) => {
        const x = data.images.slice(0, count * m.inputSize);
        return { input: m.inputDType === 'u32' ? new ort.Tensor('int64', BigInt64Array.from(x, (v) => BigInt(v)), [count, ...m.inputShape]) : new ort.Tensor('float32', x, [count, ...m.inputShape]) };
      };
      const out = await session.run(feed(n));
      const few = await session.run(feed(3));
      await session.release();
      const logits = out.logits.data as Float32Array, probs = out.probabilities.data as Float32Array;
      expect(out.logits.dims, `${name}: logits dims`).to.deep.equal([n, K]);
      const engine = await trainer.predict(data.images, n);
      const evaluated = await trainer.evaluate(data);
      let worst = 0, worstAt = -1;
      for (let i = 0; i < n * K; i++) {
        const err = Math.abs(logits[i] - engine.logits[i]) / Math.max(1, Math.abs(engine.logits[i]));
        if (!(err <= worst)) { worst = err; worstAt = i; }
      }
      expect(worst, `${name}: logit ${worstAt} (example ${Math.floor(worstAt / K)}): ORT ${logits[worstAt]}, engine ${engine.logits[worstAt]}`).to.be.at.most(TOL);
      for (let i = 0; i < n * K; i++) {
        if (!withinTol(probs[i], engine.probabilities[i])) expect.fail(`${name}: probability ${i}: ORT ${probs[i]}, engine ${engine.probabilities[i]}`);
      }
      for (let i = 0; i < 3 * K; i++) {
        if (!withinTol((few.logits.data as Float32Array)[i], engine.logits[i])) expect.fail(`${name}: a batch of 3: logit ${i} differs from the engine's`);
      }
      let correct = 0;
      for (let i = 0; i < n; i++) {
        const c = argmax(logits, i * K, K);
        if (c !== engine.predictions[i]) expect.fail(`${name}: example ${i}: ORT predicts ${c}, the engine ${engine.predictions[i]}`);
        if (c === data.labels[i]) correct++;
      }
      expect(correct / n, `${name}: ORT's accuracy equals the engine's evaluate()`).to.equal(evaluated.accuracy);
      return bytes;
    } finally {
      trainer.destroy();
    }
  }

  const mnistTrain = () => ({ count: 2000, images: mnist.train.images.subarray(0, 2000 * 784), labels: Uint8Array.from(mnist.train.labels.slice(0, 2000)) });
  /** A trainer after `steps` training steps on 2,000 MNIST training images. */
  async function trained(trainer: Trainer, steps: number): Promise<Trainer> {
    await trainSteps(trainer, mnistTrain(), { steps, readEvery: steps });
    return trainer;
  }
  const builtin = async (net: NetKind, knobs: NetKnobs, steps: number, batch = 50) =>
    trained(await Trainer.create(ctx, { net, ...knobs, seed: 7, batch, evalBatch: 250, optimizer: { kind: 'adam', lr: 3e-3 } }), steps);

  describe('the five built-in nets on 1,000 MNIST test images', () => {
    it('softmax', async () => { await checkExport('softmax', await builtin('softmax', {}, 20), mnistTest); });
    it('bp', async () => { await checkExport('bp', await builtin('bp', { hidden: 24 }, 20), mnistTest); });
    it('mlp: two hidden layers with dropout (left out of the export)', async () => {
      await checkExport('mlp', await builtin('mlp', { hidden: 32, layers: 2, keepProb: 0.8 }, 20), mnistTest);
    });
    it('cnn: SAME convolutions and pools, dropout', async () => {
      await checkExport('cnn', await builtin('cnn', { hidden: 32, keepProb: 0.5 }, 5, 20), mnistTest);
    });
    it('rnn: two stacked LSTM cells over 28 rows (input [batch, 28, 28], batch-major)', async () => {
      await checkExport('rnn', await builtin('rnn', { hidden: 16, layers: 2, keepProb: 0.9 }, 10), mnistTest);
    });
  });

  it('a CNN with BatchNormalization after a convolution, trained (running statistics off their initial values)', async () => {
    // momentum 0.5: a few steps move the running statistics well away from 0 and 1
    const model = sequential([28, 28, 1], [
      conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same' }),
      batchNorm({ momentum: 0.5 }),
      activation('relu'),
      conv2d({ filters: 4, kernelSize: 3, strides: 2, useBias: false }),
      batchNorm({ momentum: 0.5, epsilon: 0.01, scale: false }),
      flatten(),
      dense({ units: 10, activation: 'softmax' }),
    ]);
    const trainer = await trained(await Trainer.create(ctx, { model, seed: 7, batch: 20, evalBatch: 250, optimizer: { kind: 'adam', lr: 3e-3 } }), 5);
    const params = await trainer.store.read();
    for (const l of model.layers.filter((x) => x.className === 'BatchNormalization')) {
      const mean = params[`${l.name}/moving_mean`].data, variance = params[`${l.name}/moving_variance`].data;
      expect(Math.max(...mean.map(Math.abs)), `${l.name}: the running mean moved off 0`).to.be.above(0.01);
      expect(Math.max(...variance.map((v) => Math.abs(v - 1))), `${l.name}: the running variance moved off 1`).to.be.above(0.01);
    }
    await checkExport('cnn-batch-norm', trainer, mnistTest);
  });

  it('the residual CNN (examples/models/residual-cnn.json) on 1,000 MNIST test images', async () => {
    const file = join(PACKAGE_ROOT, 'examples/models/residual-cnn.json');
    const { model } = modelFromText(readFileSync(file, 'utf8'), file);
    const trainer = await Trainer.create(ctx, { model, seed: 7, batch: 20, evalBatch: 250, optimizer: { kind: 'adam', lr: 3e-3 } });
    await checkExport('residual-cnn', await trained(trainer, 5), mnistTest);
  });

  // Each layer's model runs in an evaluation graph only (no training graph to compile: lavapipe
  // compiles shaders slowly), with its parameters moved off their initial values by random noise.
  describe('each layer in a small model of its own, on random data and random parameters', () => {
    /** `count` random examples of the model's input (ids below the Embedding input_dim for a model on ids) with labels below its classes. */
    function randomData(m: Model, count: number, seed: number): Examples {
      const rand = rng(seed);
      const ids = m.idLimit?.limit;
      return {
        count,
        images: Float32Array.from({ length: count * m.inputSize }, () => (ids ? Math.floor(rand() * ids) : rand() * 2 - 1)),
        labels: Uint8Array.from({ length: count }, () => Math.floor(rand() * m.classes)),
      };
    }
    async function check(name: string, m: Model): Promise<Uint8Array> {
      const store = new ParamStore(ctx, 3);
      const stepCounter = createStepCounter(ctx, 0);
      const evaluator = new Evaluator(ctx, m, store, stepCounter, 3, 100);
      m.build(store, 1, false, 3); // creates the parameters in the store (a graph description, nothing compiled)
      const rand = rng(5);
      // batch norm's moving statistics far from their initial 0 and 1 (a variance stays positive)
      const move = (p: string, v: number) => (p.endsWith('/moving_variance') ? v * (0.2 + 2 * rand()) : p.endsWith('/moving_mean') ? v + rand() - 0.5 : v + (rand() - 0.5) * 0.2);
      for (const [p, { data }] of Object.entries(await store.read())) store.write(p, data.map((v) => move(p, v)));
      const engine: Engine = {
        model: m,
        predict: (x, n) => evaluator.predict(x, n),
        evaluate: (d) => evaluator.evaluate(d),
        exportOnnx: async () => exportOnnx(m, await store.read()),
        destroy: () => { evaluator.destroy(); store.destroy(); ctx.release(stepCounter); },
      };
      return checkExport(name, engine, randomData(m, 230, 12));
    }

    it('Conv2D: SAME and VALID, strides 2 and (1, 2), odd sizes, no bias; GlobalAveragePooling2D', async () => {
      await check('conv', sequential([13, 11, 3], [
        conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
        conv2d({ filters: 5, kernelSize: [3, 2], strides: [1, 2], padding: 'valid', activation: 'sigmoid', useBias: false }),
        conv2d({ filters: 6, kernelSize: [2, 3], strides: 2, padding: 'same', activation: 'tanh' }),
        globalAvgPool2d(),
        dense({ units: 4, activation: 'softmax' }),
      ]));
    });

    it('MaxPooling2D and AveragePooling2D: SAME with odd sizes (padding made explicit) and VALID', async () => {
      await check('pools', sequential([11, 9, 2], [
        maxPool2d({ poolSize: 3, strides: 2, padding: 'same' }),
        avgPool2d({ poolSize: 2, strides: 2, padding: 'same' }),
        conv2d({ filters: 3, kernelSize: 1 }),
        avgPool2d({ poolSize: [2, 1], strides: 1, padding: 'valid' }),
        maxPool2d({ poolSize: [1, 2], strides: [1, 1], padding: 'valid' }),
        flatten(),
        dense({ units: 3 }),
      ]));
    });

    it('Add, Concatenate, Activation (relu, sigmoid, tanh, softmax, linear), Reshape, Dense over the last axis, Dropout', async () => {
      const x = input([12]);
      const a = dense({ units: 8, activation: 'relu' }).apply(x);
      const b = dense({ units: 8, activation: 'tanh' }).apply(x);
      const c = dense({ units: 8, useBias: false }).apply(x);
      const s = add([a, b, c]);
      const j = concat([activation('sigmoid').apply(s), activation('softmax').apply(a), activation('linear').apply(b)]);
      const r = reshape({ targetShape: [4, -1] }).apply(dropout({ rate: 0.3 }).apply(j));
      const d = dense({ units: 3, activation: 'relu' }).apply(r); // per row of the [4, 6] view
      const f = activation('tanh').apply(flatten().apply(d));
      const out = activation('softmax').apply(dense({ units: 5 }).apply(f));
      await check('merges', functional({ inputs: x, outputs: out }));
    });

    it('a mean squared error model: probabilities are the outputs themselves', async () => {
      await check('mse', sequential([6, 4], [dense({ units: 5, activation: 'relu' }), flatten(), dense({ units: 4, activation: 'sigmoid' })], { loss: 'mse' }));
    });

    it('LSTM: stacked (return_sequences true, then false), forget bias 1 and 0, dropout between', async () => {
      await check('lstm', sequential([7, 5], [
        lstm({ units: 6, returnSequences: true }),
        dropout({ rate: 0.25 }),
        lstm({ units: 4, returnSequences: true }),
        lstm({ units: 5, unitForgetBias: false }),
        dense({ units: 3, activation: 'softmax' }),
      ]));
    });

    it('GRU: stacked (return_sequences true, then false)', async () => {
      await check('gru', sequential([7, 5], [gru({ units: 6, returnSequences: true }), gru({ units: 4 }), dense({ units: 3, activation: 'softmax' })]));
    });

    it('SimpleRNN: stacked (return_sequences true twice, then false), then an LSTM on the sequence', async () => {
      await check('simple-rnn', sequential([9, 3], [
        simpleRnn({ units: 6, returnSequences: true }), simpleRnn({ units: 5, returnSequences: true }), simpleRnn({ units: 4, returnSequences: true }),
        lstm({ units: 3 }), dense({ units: 3 }),
      ]));
    });

    it('a single LSTM over a one-step sequence, return_sequences false', async () => {
      await check('lstm-single', sequential([1, 4], [lstm({ units: 3 }), dense({ units: 2 })]));
    });

    it('BatchNormalization over features: [batch, F] and [batch, 2, F], with and without scale and center', async () => {
      await check('batch-norm-dense', sequential([10], [
        dense({ units: 8, activation: 'relu' }),
        batchNorm({ epsilon: 0.05 }),
        batchNorm({ center: false }),
        reshape({ targetShape: [2, 4] }),
        batchNorm({ scale: false, epsilon: 0.02 }),
        batchNorm({ scale: false, center: false, epsilon: 0.1 }),
        flatten(),
        dense({ units: 3, activation: 'softmax' }),
      ]));
    });

    it('LayerNormalization over the last axis of [batch, F] and [batch, T, F], with and without scale and center', async () => {
      await check('layer-norm', sequential([5, 6], [
        layerNorm({ epsilon: 0.05 }),
        dense({ units: 4 }),
        layerNorm({ center: false, epsilon: 0.02 }),
        flatten(),
        layerNorm({ scale: false }),
        layerNorm({ scale: false, center: false, epsilon: 0.1 }),
        dense({ units: 3 }),
      ]));
    });

    it('Embedding: two tables on the same int64 ids [batch, T], added', async () => {
      const ids = input([7]);
      const a = embedding({ inputDim: 11, outputDim: 5 }).apply(ids);
      const b = embedding({ inputDim: 13, outputDim: 5 }).apply(ids);
      const y = dense({ units: 3, activation: 'softmax' }).apply(flatten().apply(layerNorm().apply(add([a, b]))));
      const bytes = await check('embedding', functional({ inputs: ids, outputs: y }));
      const proto = onnx.ModelProto.decode(bytes);
      const graph = proto.graph as InstanceType<typeof onnx.GraphProto>;
      expect(graph.input[0].type!.tensorType!.elemType, 'the input holds int64 ids').to.equal(onnx.TensorProto.DataType.INT64);
      expect(proto.metadataProps.find((p) => p.key === 'input_layout')!.value).to.match(/^int64 ids \[batch, 7\]/);
    });

    it('gelu in Conv2D, Activation and Dense (0.5·x·(1 + Erf(x/√2)))', async () => {
      await check('gelu', sequential([9, 7, 2], [
        conv2d({ filters: 3, kernelSize: 3, activation: 'gelu' }),
        activation('gelu'),
        flatten(),
        dense({ units: 6, activation: 'gelu' }),
        dense({ units: 3 }),
      ]));
    });
  });

  it('records the model spec, the classes and the input scaling in metadata_props, with a dynamic batch at opset 17', async () => {
    const m = sequential([4, 3], [gru({ units: 3 }), dense({ units: 3, activation: 'softmax' })], { name: 'tiny' });
    const trainer = await Trainer.create(ctx, { model: m, seed: 1, batch: 4, optimizer: { kind: 'sgd', lr: 0.1 } });
    let bytes: Uint8Array;
    try {
      bytes = await trainer.exportOnnx({ classNames: ['a', 'b', 'c'] });
    } finally {
      trainer.destroy();
    }
    const proto = checkStructure(bytes, 'tiny');
    const meta = Object.fromEntries(proto.metadataProps.map((p) => [p.key, p.value]));
    expect(JSON.parse(meta.model_spec)).to.deep.equal(modelToSpec(m));
    expect(modelToSpec(modelFromSpec(meta.model_spec))).to.deep.equal(modelToSpec(m));
    expect(JSON.parse(meta.classes)).to.deep.equal(['a', 'b', 'c']);
    expect(meta.input_scaling).to.equal('u8/255');
    const graph = proto.graph as InstanceType<typeof onnx.GraphProto>;
    const dims = graph.input[0].type!.tensorType!.shape!.dim!;
    expect(dims.map((d) => d.dimParam || Number(d.dimValue))).to.deep.equal(['batch', 4, 3]);
    const gruNode = graph.node.find((n) => n.opType === 'GRU')!;
    expect(Number(gruNode.attribute!.find((a) => a.name === 'linear_before_reset')!.i)).to.equal(0);
  });

  it('an unsupported layer is an error at export naming it, before any graph is built', () => {
    class Mystery extends Layer {
      readonly className = 'Mystery';
      outputShape([s]: (readonly number[])[]): number[] { return [...s]; }
      config() { return {}; }
      emit(): never { throw new Error('not built here'); }
    }
    const m = sequential([4], [new Mystery({ name: 'odd' }), dense({ units: 2 })]);
    expect(() => exportOnnx(m, {})).to.throw(OnnxExportError, /layer 0 "odd" \(Mystery\): no ONNX export rule for Mystery/);
    expect(Object.keys(EXPORT_RULES)).to.include.members(['Dense', 'Conv2D', 'LSTM', 'GRU', 'SimpleRNN', 'BatchNormalization', 'LayerNormalization', 'Embedding']);
  });

  describe('the CLI\'s --export FILE.onnx', () => {
    let data: string;
    const testCount = 50;
    const pixel = (i: number) => (i * 7919 + (i >> 5) * 31) % 256;
    const testLabels = Array.from({ length: testCount }, (_, i) => (i * 3) % 10);
    before(() => {
      data = join(dir, 'tiny-mnist');
      mkdirSync(data);
      writeFileSync(join(data, 'train-images-idx3-ubyte'), idxImages(60, 28, 28, (i) => (i * 13) % 256));
      writeFileSync(join(data, 'train-labels-idx1-ubyte'), idxLabels(Array.from({ length: 60 }, (_, i) => i % 10)));
      writeFileSync(join(data, 't10k-images-idx3-ubyte'), idxImages(testCount, 28, 28, pixel));
      writeFileSync(join(data, 't10k-labels-idx1-ubyte'), idxLabels(testLabels));
    });

    /** ORT's logits and accuracy for an exported file on the test images (u8 / 255, as the metadata says). */
    async function ortOn(file: string): Promise<{ logits: Float32Array; accuracy: number }> {
      const bytes = readFileSync(file);
      const session = await ort.InferenceSession.create(bytes);
      const x = Float32Array.from({ length: testCount * 784 }, (_, i) => pixel(i) / 255);
      const r = await session.run({ input: new ort.Tensor('float32', x, [testCount, 784]) });
      await session.release();
      const logits = r.logits.data as Float32Array;
      const correct = testLabels.filter((y, i) => argmax(logits, i * 10, 10) === y).length;
      return { logits, accuracy: correct / testCount };
    }

    it('writes the trained model, and with --load FILE --eval the checkpoint; ORT gives the accuracy the CLI printed', async () => {
      const ckpt = join(dir, 'cli.safetensors'), trainedFile = join(dir, 'cli-trained.onnx'), loadedFile = join(dir, 'cli-loaded.onnx');
      const testEvent = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((o) => o.event === 'test');
      const train = runCli(['--net', 'softmax', '--steps', '3', '--batch', '10', '--val', '0', '--data', data, '--save', ckpt, '--export', trainedFile, '--json']);
      expect(train.code, train.stderr).to.equal(0);
      const trainedOrt = await ortOn(trainedFile);
      expect(trainedOrt.accuracy, 'ORT\'s accuracy equals the CLI\'s test accuracy').to.equal(testEvent(train.stdout).accuracy);
      const evaluated = runCli(['--load', ckpt, '--eval', '--data', data, '--val', '0', '--export', loadedFile, '--json']);
      expect(evaluated.code, evaluated.stderr).to.equal(0);
      const loadedOrt = await ortOn(loadedFile);
      expect(Array.from(loadedOrt.logits), 'the checkpoint exports the trained parameters').to.deep.equal(Array.from(trainedOrt.logits));
      expect(loadedOrt.accuracy).to.equal(testEvent(evaluated.stdout).accuracy);
    });

    it('--export FILE is a flag of its own in --help, taken with training or with --load FILE --eval', () => {
      expect(helpText()).to.match(/^  --export FILE\b/m);
      expect(parseArgs(['--net', 'mlp', '--export', 'm.onnx']).export).to.equal('m.onnx');
      expect(parseArgs(['--load', 'm.safetensors', '--eval', '--export', 'm.onnx']).export).to.equal('m.onnx');
      expect(parseArgs(['--net', 'mlp']).export).to.equal(undefined);
    });

    it('a folder that does not exist is an error before training', () => {
      const r = runCli(['--net', 'softmax', '--steps', '3', '--batch', '10', '--data', data, '--val', '0', '--export', join(dir, 'missing', 'm.onnx')]);
      expect(r.code).to.equal(2);
      expectEarlyError(r, '--export', 'does not exist', 'mkdir -p');
    });
  });

  // after the suites above (mocha runs a suite's own tests before its nested suites): they wrote the files
  describe('loading every exported model', () => {
    it('every exported model loads in ORT with all graph optimizations on and logs no warning', function () {
      expect(written.length, 'the models above were exported').to.equal(19);
      // A control that must warn: an initializer no node reads ("Removing initializer ...").
      const b = new OnnxGraphBuilder();
      b.reserve('input');
      b.floats('unused', [2], new Float32Array(2));
      b.node('Identity', ['input'], [b.reserve('logits')], {}, true);
      b.node('Identity', ['logits'], [b.reserve('probabilities')], {}, true);
      const control = join(dir, 'control-warns.onnx');
      writeFileSync(control, onnx.ModelProto.encode(onnx.ModelProto.create({
        irVersion: 8, opsetImport: [{ domain: '', version: ONNX_OPSET }],
        graph: { name: 'control', node: b.nodes, initializer: b.initializers, input: [floatValueInfo('input', 'batch', [2])], output: [floatValueInfo('logits', 'batch', [2]), floatValueInfo('probabilities', 'batch', [2])] },
      })).finish());
      const run = spawnSync(process.execPath, [join(PACKAGE_ROOT, 'dist/test/support/ort-load.js'), ...written, control], { encoding: 'utf8', timeout: 60_000 });
      expect(run.status, run.stderr).to.equal(0);
      // ORT's lines after each file's marker: W (warning), E (error), F (fatal) ones, or a failed load
      const complaints = new Map<string, string[]>();
      let current = '';
      for (const line of run.stderr.split('\n')) {
        if (line.startsWith('=== ')) current = line.slice(4);
        else if (/\[[WEF]:onnxruntime|^!!! /.test(line)) complaints.set(current, [...(complaints.get(current) ?? []), line]);
      }
      expect(complaints.get(control)?.join('\n'), 'the control model warns (the check can see a warning)').to.match(/Removing initializer 'unused'/);
      complaints.delete(control);
      expect(Object.fromEntries(complaints), 'warnings or errors while loading').to.deep.equal({});
    });
  });
});
