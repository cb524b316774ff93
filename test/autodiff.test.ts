// The autodiff engine's gradients for the mlp, cnn and rnn equal a float64 CPU
// model's on the same weights and batch; and a badly shaped graph fails naming the op and shapes.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { expectClose, relError, rng } from './support/cpu.js';
import { mlpCpu, cnnCpu, rnnCpu, type CpuResult, type Weights } from './ref/nets.js';
import { Graph, GraphError } from '../src/graph/graph.js';
import { CompiledGraph } from '../src/graph/recorder.js';
import { ParamStore } from '../src/nn/params.js';
import { buildNet, IMAGE, type NetConfig } from '../src/nn/nets.js';
import { createStepCounter } from '../src/kernels/step.js';
import type { GpuContext } from '../src/gpu/context.js';

const K = IMAGE.classes;

// ------------------------------------------------------------------ the GPU side

interface GpuResult {
  loss: number;
  grads: Record<string, Float32Array>;
  weights: Weights;
  x: Float32Array;
  labels: Uint32Array;
}

/**
 * Builds the net's evaluation graph (no dropout), compiles it with `gradientsOnly`, poisons every
 * planned buffer, runs one forward+backward on a random batch and reads every parameter's gradient.
 */
async function gpuGradients(ctx: GpuContext, cfg: NetConfig, B: number): Promise<GpuResult> {
  const store = new ParamStore(ctx, cfg.seed);
  const stepCounter = createStepCounter(ctx, 0);
  const net = buildNet(cfg, store, B, false);
  const compiled = new CompiledGraph(ctx, net.graph, { loss: net.loss, gradientsOnly: true, stepCounter, keep: [net.loss] });
  try {
    await compiled.ready();
    const rand = rng(cfg.seed * 7919 + B);
    // image-like inputs in [0, 1), in the net's layout (rows or time-major: any order is a valid batch)
    const x = Float32Array.from({ length: net.x.size }, () => rand());
    const labels = Uint32Array.from({ length: B }, () => Math.floor(rand() * K));
    for (const slot of compiled.plan.slots) ctx.poison(compiled.bufferOf(slot.tensors[0]));
    ctx.write(compiled.bufferOf(net.x), x);
    ctx.write(compiled.bufferOf(net.labels), labels);
    const enc = ctx.device.createCommandEncoder();
    compiled.encode(enc);
    ctx.device.queue.submit([enc.finish()]);
    await ctx.device.queue.onSubmittedWorkDone();
    ctx.throwIfFailed(`${cfg.net} gradients`);

    const params = net.graph.tensors.filter((t) => t.role === 'param');
    expect(params.length, 'parameters in the graph').to.be.greaterThan(0);
    const grads: Record<string, Float32Array> = {};
    for (const p of params) {
      const d = compiled.gradientOf(p);
      grads[p.name] = await ctx.readF32(compiled.bufferOf(d), d.size, d.root.external?.offset ?? 0);
    }
    const loss = (await ctx.readF32(compiled.bufferOf(net.loss), 1))[0];
    const read = await store.read();
    const weights: Weights = {};
    for (const [name, v] of Object.entries(read)) weights[name] = Float64Array.from(v.data);
    return { loss, grads, weights, x, labels };
  } finally {
    compiled.destroy();
    store.destroy();
    ctx.release(stepCounter);
  }
}

const report: string[] = [];

function compare(tag: string, gpu: GpuResult, cpu: CpuResult): void {
  expect(Object.keys(gpu.grads).sort(), `${tag}: parameters with gradients`).to.deep.equal(Object.keys(cpu.grads).sort());
  const lossErr = Math.abs(gpu.loss - cpu.loss) / Math.abs(cpu.loss);
  expect(lossErr, `${tag}: GPU loss ${gpu.loss} vs float64 ${cpu.loss}`).to.be.lessThan(1e-5);
  let worst = 0;
  let worstName = '';
  for (const name of Object.keys(cpu.grads)) {
    const ref = cpu.grads[name];
    let norm = 0;
    for (const v of ref) norm += v * v;
    expect(norm, `${tag}: reference gradient of ${name} is zero (the test would be vacuous)`).to.be.greaterThan(0);
    expectClose(gpu.grads[name], ref, 1e-4, `${tag} d${name}`);
    const e = relError(gpu.grads[name], ref);
    if (e > worst) [worst, worstName] = [e, name];
  }
  report.push(`${tag}: loss ${cpu.loss.toFixed(6)} (rel err ${lossErr.toExponential(1)}), worst gradient rel err ${worst.toExponential(2)} (${worstName})`);
}

describe('autodiff: gradients of whole nets against float64 CPU models', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
  });
  after(() => {
    for (const line of report) console.log(`      ${line}`);
  });

  it('mlp (784-24 relu-24 relu-10, batch 5)', async () => {
    const cfg: NetConfig = { net: 'mlp', hidden: 24, layers: 2, seed: 11 };
    const B = 5;
    const gpu = await gpuGradients(ctx, cfg, B);
    compare('mlp 2×24 B=5', gpu, mlpCpu(gpu.weights, gpu.x, gpu.labels, B, 24, 2));
  });

  it('cnn (conv5x5x32-pool-conv5x5x64-pool-dense 20-10, batch 3)', async () => {
    const cfg: NetConfig = { net: 'cnn', hidden: 20, seed: 5 };
    const B = 3;
    const gpu = await gpuGradients(ctx, cfg, B);
    compare('cnn H=20 B=3', gpu, cnnCpu(gpu.weights, gpu.x, gpu.labels, B, 20));
  });

  it('rnn: 2 stacked LSTM cells of 7 over 28 steps, batch 3', async () => {
    const cfg: NetConfig = { net: 'rnn', cell: 'lstm', hidden: 7, layers: 2, seed: 3 };
    const B = 3;
    const gpu = await gpuGradients(ctx, cfg, B);
    compare('rnn lstm 2×7 B=3', gpu, rnnCpu(gpu.weights, gpu.x, gpu.labels, B, 'lstm', 7, 2));
  });

  it('rnn: one GRU cell of 9, batch 2', async () => {
    const cfg: NetConfig = { net: 'rnn', cell: 'gru', hidden: 9, layers: 1, seed: 4 };
    const B = 2;
    const gpu = await gpuGradients(ctx, cfg, B);
    compare('rnn gru 1×9 B=2', gpu, rnnCpu(gpu.weights, gpu.x, gpu.labels, B, 'gru', 9, 1));
  });
});

describe('graph: shape errors name the op, its inputs and their shapes', () => {
  // The planner and shape checks never touch parameter storage: a stand-in buffer will do.
  const fake = {} as GPUBuffer;

  function expectGraphError(fn: () => unknown, ...parts: string[]): void {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err, 'an error is thrown').to.be.instanceOf(GraphError);
    const msg = (err as Error).message;
    for (const p of parts) expect(msg, `the message names ${p}`).to.contain(p);
  }

  it('dense: w rows ≠ x features', () => {
    const g = new Graph();
    const x = g.input('x', [4, 10]);
    const w = g.param('w', [12, 5], fake);
    const b = g.param('b', [5], fake);
    expectGraphError(() => g.dense(x, w, b, 'relu', 'fc'), 'fc (dense)', 'x [4, 10]', 'w [12, 5]', 'b [5]');
  });

  it('dense: bias of the wrong length, and a 4-D x', () => {
    const g = new Graph();
    const x = g.input('x', [4, 10]);
    const w = g.param('w', [10, 5], fake);
    const b = g.param('b', [6], fake);
    expectGraphError(() => g.dense(x, w, b), 'dense', 'x [4, 10]', 'w [10, 5]', 'b [6]');
    const img = g.input('img', [2, 3, 3, 1]);
    expectGraphError(() => g.dense(img, w, undefined, 'none', 'head'), 'head (dense)', 'img [2, 3, 3, 1]', 'w [10, 5]');
  });

  it('conv2d: filter in_channels ≠ x channels, and a 2-D x', () => {
    const g = new Graph();
    const x = g.input('x', [2, 8, 8, 3]);
    const f = g.param('f', [3, 3, 4, 6], fake);
    const b = g.param('fb', [6], fake);
    expectGraphError(() => g.conv2d(x, f, b, {}, 'conv1'), 'conv1 (conv2d)', 'x [2, 8, 8, 3]', 'f [3, 3, 4, 6]', 'fb [6]');
    const flat = g.input('flat', [2, 192]);
    const f3 = g.param('f3', [3, 3, 3, 6], fake);
    expectGraphError(() => g.conv2d(flat, f3, undefined, {}, 'conv2'), 'conv2 (conv2d)', 'flat [2, 192]', 'f3 [3, 3, 3, 6]');
  });

  it('recurrent: weights of the wrong shape, and a 2-D x', () => {
    const g = new Graph();
    const x = g.input('seq', [5, 2, 3]);
    const w = g.param('lstm/w', [6, 16], fake); // needs [3 + 4, 16]
    const b = g.param('lstm/b', [16], fake);
    expectGraphError(() => g.recurrent(x, [{ w, b }], { cell: 'lstm', hidden: [4] }, 'lstm'),
      'lstm (recurrent)', 'seq [5, 2, 3]', 'lstm/w [6, 16]', 'lstm/b [16]');
    const x2 = g.input('x2', [5, 3]);
    const w2 = g.param('gru/w', [7, 12], fake);
    const b2 = g.param('gru/b', [12], fake);
    expectGraphError(() => g.recurrent(x2, [{ w: w2, b: b2 }], { cell: 'gru', hidden: [4] }, 'gru'), 'gru (recurrent)', 'x2 [5, 3]', 'gru/w [7, 12]');
    // and a correct one builds
    const ok = g.param('ok/w', [7, 16], fake);
    expect(g.recurrent(x, [{ w: ok, b }], { cell: 'lstm', hidden: [4] }).shape).to.deep.equal([2, 4]);
  });
});
