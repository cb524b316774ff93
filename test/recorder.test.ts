// After compilation, a training step is ONE queue.submit and creates no
// pipelines, bind groups or buffers. Counted by wrapping the WebGPU prototypes' methods.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { rng } from './support/cpu.js';
import { Trainer, type TrainerOptions, type LabelledImages } from '../src/nn/trainer.js';
import { sequential } from '../src/nn/model.js';
import { activation, avgPool2d, conv2d, dense, dropout, flatten, gru, maxPool2d } from '../src/nn/layers.js';
import { batchNorm, embedding, layerNorm } from '../src/nn/norm-layers.js';
import type { GpuContext } from '../src/gpu/context.js';

type Counts = Record<'submit' | 'writeBuffer' | 'createBindGroup' | 'createComputePipeline' | 'createComputePipelineAsync' | 'createBuffer' | 'createShaderModule', number>;

/** The object on `obj`'s prototype chain that owns `key` (dawn.node puts methods on the class prototypes). */
function owner(obj: object, key: string): Record<string, unknown> {
  let o: object | null = obj;
  while (o && !Object.prototype.hasOwnProperty.call(o, key)) o = Object.getPrototypeOf(o);
  if (!o) throw new Error(`no prototype of ${obj} has ${key}`);
  return o as Record<string, unknown>;
}

/** Wraps the methods with counters; `restore()` puts the originals back. */
function countCalls(device: GPUDevice): { counts: Counts; reset(): Counts; restore(): void } {
  const counts: Counts = { submit: 0, writeBuffer: 0, createBindGroup: 0, createComputePipeline: 0, createComputePipelineAsync: 0, createBuffer: 0, createShaderModule: 0 };
  const restorers: (() => void)[] = [];
  const wrap = (obj: object, key: keyof Counts) => {
    const proto = owner(obj, key);
    const orig = proto[key] as (...args: unknown[]) => unknown;
    proto[key] = function (this: unknown, ...args: unknown[]) {
      counts[key]++;
      return orig.apply(this, args);
    };
    restorers.push(() => {
      proto[key] = orig;
    });
  };
  wrap(device.queue, 'submit');
  wrap(device.queue, 'writeBuffer');
  for (const k of ['createBindGroup', 'createComputePipeline', 'createComputePipelineAsync', 'createBuffer', 'createShaderModule'] as const) wrap(device, k);
  return {
    counts,
    reset() {
      const snapshot = { ...counts };
      for (const k of Object.keys(counts) as (keyof Counts)[]) counts[k] = 0;
      return snapshot;
    },
    restore() {
      for (const r of restorers.reverse()) r();
    },
  };
}

/** `ids`: the model reads integer ids below it (an Embedding model). */
function randomData(count: number, seed: number, size = 784, classes = 10, ids?: number): LabelledImages {
  const rand = rng(seed);
  return {
    count,
    images: Float32Array.from({ length: count * size }, () => (ids ? Math.floor(rand() * ids) : rand())),
    labels: Uint8Array.from({ length: count }, () => Math.floor(rand() * classes)),
  };
}

const N = 6;
const lines: string[] = [];

async function checkSteps(ctx: GpuContext, opts: TrainerOptions): Promise<void> {
  const data = randomData(opts.batch * 3, opts.seed, opts.model?.inputSize, opts.model?.classes, opts.model?.idLimit?.limit);
  const index = (k: number) => Uint32Array.from({ length: opts.batch }, (_, i) => ((k * opts.batch + i) % data.count));
  const originals = [owner(ctx.device.queue, 'submit').submit, owner(ctx.device, 'createBindGroup').createBindGroup, owner(ctx.device, 'createBuffer').createBuffer];
  const spy = countCalls(ctx.device);
  let trainer: Trainer | undefined;
  try {
    trainer = await Trainer.create(ctx, opts);
    const compile = spy.reset();
    // the counters see the engine's calls: compilation made bind groups and buffers through them
    expect(compile.createBindGroup, 'bind groups made at compilation').to.be.greaterThan(0);
    expect(compile.createBuffer, 'buffers made at compilation').to.be.greaterThan(0);

    const before = await trainer.store.read(); // (one submit per parameter: not counted)
    spy.reset();
    // warm-up: one plain step, then one metrics step (makes the metrics read-back buffer once)
    trainer.writeBatch(data, index(0));
    trainer.step();
    trainer.writeBatch(data, index(1));
    await trainer.step(true);
    const warm = spy.reset();
    expect(warm.submit, 'warm-up submits').to.equal(2);
    expect(warm.createComputePipeline + warm.createComputePipelineAsync, 'pipelines made by the warm-up steps').to.equal(0);
    expect(warm.createBindGroup, 'bind groups made by the warm-up steps').to.equal(0);

    for (let k = 0; k < N; k++) {
      trainer.writeBatch(data, index(k + 2));
      trainer.step();
    }
    const steps = spy.reset();
    expect(steps.submit, `queue.submit calls in ${N} steps`).to.equal(N);
    // the CPU writes only the batch: images and labels (and one-hot targets for MSE models)
    const inputs = trainer.net.targets ? 3 : 2;
    expect(steps.writeBuffer, `CPU writes in ${N} steps (${inputs} batch inputs each)`).to.equal(N * inputs);
    expect(steps.createComputePipeline, 'createComputePipeline calls').to.equal(0);
    expect(steps.createComputePipelineAsync, 'createComputePipelineAsync calls').to.equal(0);
    expect(steps.createBindGroup, 'createBindGroup calls').to.equal(0);
    expect(steps.createBuffer, 'createBuffer calls').to.equal(0);
    expect(steps.createShaderModule, 'createShaderModule calls').to.equal(0);

    // a step that also reads the metrics back is still one command buffer and one submit
    trainer.writeBatch(data, index(0));
    const pending = trainer.step(true);
    const metricsStep = spy.reset();
    const m = await pending;
    expect(metricsStep.submit, 'submits of a read-metrics step').to.equal(1);
    expect(metricsStep.createComputePipeline + metricsStep.createComputePipelineAsync + metricsStep.createBindGroup, 'pipelines/bind groups of a read-metrics step').to.equal(0);
    expect(metricsStep.createBuffer, 'buffers made by a read-metrics step (its read-back buffer is reused)').to.equal(0);
    expect(m.steps, 'steps since the last read').to.equal(N + 1);
    expect(Number.isFinite(m.loss) && m.loss > 0, `mean loss ${m.loss}`).to.equal(true);

    // and the steps did train: every parameter moved
    const after = await trainer.store.read();
    for (const name of Object.keys(before)) {
      const moved = before[name].data.some((v, i) => v !== after[name].data[i]);
      expect(moved, `parameter ${name} changed over the steps`).to.equal(true);
    }
    lines.push(`${opts.net ?? opts.model!.name} b${opts.batch}: compile made ${compile.createComputePipeline} pipelines, ${compile.createBindGroup} bind groups, ${compile.createBuffer} buffers; ` +
      `${N} steps: ${steps.submit} submits, 0 created; metrics step: ${metricsStep.submit} submit (loss ${m.loss.toFixed(3)})`);
  } finally {
    spy.restore();
    trainer?.destroy();
  }
  // the prototypes hold the original methods again
  const restored = [owner(ctx.device.queue, 'submit').submit, owner(ctx.device, 'createBindGroup').createBindGroup, owner(ctx.device, 'createBuffer').createBuffer];
  restored.forEach((f, i) => expect(f === originals[i], 'prototype method restored').to.equal(true));
}

describe('recorder: one submit per training step, nothing created per step', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
  });
  after(() => {
    for (const l of lines) console.log(`      ${l}`);
  });

  it('mlp (SGD with momentum)', async () => {
    await checkSteps(ctx, { net: 'mlp', hidden: 32, layers: 2, keepProb: 0.8, seed: 1, batch: 16, optimizer: { kind: 'sgd', lr: 0.05, momentum: 0.9 } });
  });

  it('cnn (Adam, dropout, batch 4)', async () => {
    await checkSteps(ctx, { net: 'cnn', hidden: 32, keepProb: 0.5, seed: 2, batch: 4, optimizer: { kind: 'adam', lr: 1e-3 } });
  });

  it('rnn (2 stacked LSTM cells with dropout between them, Adam)', async () => {
    await checkSteps(ctx, { net: 'rnn', cell: 'lstm', hidden: 16, layers: 2, keepProb: 0.8, seed: 3, batch: 8, optimizer: { kind: 'adam', lr: 1e-3 } });
  });

  it('a custom CNN model (16x16x3 input, 4 classes: conv, both poolings, dropout; Adam)', async () => {
    const model = sequential([16, 16, 3], [
      conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu' }), maxPool2d(),
      conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', activation: 'tanh' }), avgPool2d({ poolSize: 2, strides: 1, padding: 'same' }),
      flatten(), dense({ units: 12, activation: 'relu' }), dropout({ rate: 0.3 }), dense({ units: 4, activation: 'softmax' }),
    ], { name: 'custom cnn' });
    await checkSteps(ctx, { model, seed: 4, batch: 6, optimizer: { kind: 'adam', lr: 1e-3 } });
  });

  it('mlp with AdamW, cosine schedule with warm-up, clipping by global norm and label smoothing', async () => {
    await checkSteps(ctx, {
      net: 'mlp', hidden: 32, layers: 2, keepProb: 0.8, seed: 6, batch: 16, labelSmoothing: 0.1,
      optimizer: { kind: 'adamw', lr: 1e-3, weightDecay: 0.01, schedule: { kind: 'cosine', decaySteps: 50, warmup: 3 }, clipNorm: 0.5 },
    });
  });

  it('rnn (LSTM) with SGD, momentum, L2 weight decay, a step schedule and clipping', async () => {
    await checkSteps(ctx, {
      net: 'rnn', cell: 'lstm', hidden: 16, layers: 1, seed: 7, batch: 8,
      optimizer: { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4, schedule: { kind: 'step', decaySteps: 2, decayRate: 0.5 }, clipNorm: 1 },
    });
  });

  it('a model with batch norm (running statistics updated in the step), layer norm and gelu (Adam)', async () => {
    const model = sequential([8, 8, 2], [
      conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false }), batchNorm(), activation('gelu'), maxPool2d(),
      flatten(), dense({ units: 10, activation: 'gelu' }), layerNorm(), dense({ units: 3 }),
    ], { name: 'norm cnn' });
    await checkSteps(ctx, { model, seed: 6, batch: 5, optimizer: { kind: 'adam', lr: 1e-3 } });
  });

  it('an Embedding model (u32 ids in; SGD)', async () => {
    const model = sequential([6], [embedding({ inputDim: 11, outputDim: 4 }), flatten(), dense({ units: 3 })], { name: 'ids model' });
    await checkSteps(ctx, { model, seed: 7, batch: 4, optimizer: { kind: 'sgd', lr: 0.1 } });
  });

  it('a custom recurrent model (2 stacked GRU layers with dropout between them, 5 classes; SGD)', async () => {
    const model = sequential([7, 5], [gru({ units: 9, returnSequences: true }), dropout({ rate: 0.2 }), gru({ units: 6 }), dense({ units: 5 })], { name: 'custom gru' });
    await checkSteps(ctx, { model, seed: 5, batch: 4, optimizer: { kind: 'sgd', lr: 0.05, momentum: 0.9 } });
  });
});
