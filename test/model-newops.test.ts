// Models that use the op registry's graph ops (g.add, g.concat, g.globalAvgPool,
// g.meanSquaredError, activation 'softmax'): a residual CNN, a two-branch concat model and an MSE
// model build, train a few steps on the GPU (loss finite and falling, every parameter moves), and
// keep to one submit per step.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { rng } from './support/cpu.js';
import type { GpuContext } from '../src/gpu/context.js';
import { Trainer } from '../src/nn/trainer.js';
import { trainSteps } from '../src/nn/loop.js';
import { activation, add, concat, conv2d, dense, flatten, globalAvgPool2d, input, maxPool2d } from '../src/nn/layers.js';
import { model, sequential, type Model } from '../src/nn/model.js';
import { modelFromSpec, modelToSpec } from '../src/nn/spec.js';

/** Examples whose class is the channel with the largest mean (learnable by every model here). */
function channelData(count: number, shape: number[], classes: number, seed: number) {
  const rand = rng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const C = shape[shape.length - 1];
  const images = new Float32Array(count * size);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const k = Math.floor(rand() * classes);
    labels[i] = k;
    for (let j = 0; j < size; j++) images[i * size + j] = rand() * 0.5 + ((j % C) % classes === k ? 0.5 : 0);
  }
  return { count, images, labels };
}

async function trainAndCheck(ctx: GpuContext, m: Model, steps: number, lr: number): Promise<number[]> {
  const data = channelData(256, m.inputShape, m.classes, 1);
  const trainer = await Trainer.create(ctx, { model: m, batch: 16, seed: 2, optimizer: { kind: 'adam', lr } });
  try {
    const before = await trainer.store.read();
    const losses: number[] = [];
    let submits = 0;
    const submit = ctx.device.queue.submit.bind(ctx.device.queue);
    ctx.device.queue.submit = (b) => { submits++; submit(b); };
    try {
      await trainSteps(trainer, data, { steps, readEvery: Math.max(1, steps / 4), onMetrics: (x) => { losses.push(x.loss); } });
    } finally {
      ctx.device.queue.submit = submit;
    }
    expect(submits, 'one submit per step').to.equal(steps);
    const after = await trainer.store.read();
    for (const name of Object.keys(before)) expect(before[name].data.some((v, i) => v !== after[name].data[i]), `${name} moved`).to.equal(true);
    for (const l of losses) expect(Number.isFinite(l), `loss ${l}`).to.equal(true);
    expect(losses[losses.length - 1], `${m.name}: the loss falls (${losses.join(', ')})`).to.be.lessThan(losses[0]);
    const ev = await trainer.evaluate(channelData(64, m.inputShape, m.classes, 9));
    console.log(`      ${m.name}: loss ${losses.map((l) => l.toFixed(4)).join(' → ')}; held-out accuracy ${ev.accuracy.toFixed(3)}`);
    return losses;
  } finally {
    trainer.destroy();
  }
}

describe('models with merge layers, global pooling and MSE (op registry ops)', function () {
  this.timeout(300_000);
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
  });

  it('a residual CNN (conv → add → global average pool → dense) builds, round-trips and trains', async () => {
    const x = input([8, 8, 4]);
    const h = conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x);
    const r = add([x, h]);
    const p = globalAvgPool2d().apply(r);
    const y = dense({ units: 4, activation: 'softmax' }).apply(p);
    const m = model({ inputs: x, outputs: y, name: 'residual' });
    expect(m.summary()).to.match(/^add \(Add\) +\(None, 8, 8, 4\) +0 +input, conv2d$/m);
    expect(modelToSpec(modelFromSpec(modelToSpec(m)))).to.deep.equal(modelToSpec(m));
    // the graph: the input and the conv's output meet in one add, then the global pool, then the logits
    const g = m.build({ get: () => ({}) as GPUBuffer }, 2, true, 1).graph;
    const fwd = g.nodes.filter((n) => n.phase === 'forward');
    expect(fwd.map((n) => n.op)).to.deep.equal(['conv2d', 'add', 'globalavgpool', 'dense', 'xent', 'accuracy']);
    expect(fwd[1].inputs.map((t) => t.name)).to.deep.equal(['images', 'conv2d/y']);
    await trainAndCheck(ctx, m, 8, 1e-2);
  });

  it('two branches joined by concat train', async () => {
    const x = input([6, 6, 2]);
    const a = flatten().apply(maxPool2d().apply(conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x)));
    const b = flatten().apply(x);
    const y = dense({ units: 2 }).apply(concat([a, b]));
    const m = model({ inputs: x, outputs: y, name: 'branches' });
    const cat = m.build({ get: () => ({}) as GPUBuffer }, 2, true, 1).graph.nodes.find((n) => n.op === 'concat')!;
    expect(cat.outputs[0].shape).to.deep.equal([2, 27 + 72]);
    await trainAndCheck(ctx, m, 8, 1e-2);
  });

  it('an MSE model with a softmax output (not folded: the loss sees probabilities) trains', async () => {
    const m = sequential([12], [dense({ units: 8, activation: 'tanh' }), dense({ units: 3 }), activation('softmax')], { name: 'mse', loss: 'mse' });
    await trainAndCheck(ctx, m, 8, 3e-2);
  });
});
