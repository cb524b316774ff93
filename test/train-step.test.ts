// Real training steps (the Trainer's training graph: dropout, backward, planner, recorder and the
// parameter updates interleaved with the backward pass) against a float64 CPU model of each net that
// runs the same steps: the same dropout masks (the CPU Philox twin at the GPU's seed, stream and step),
// softmax cross-entropy, backward and the optimizer's update. After every step every parameter and
// the step's loss must agree.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { relError, rng } from './support/cpu.js';
import { mlpCpu, cnnCpu, rnnCpu, type CpuResult, type ScaledMask, type Weights } from './ref/nets.js';
import { dropoutMaskRef } from './ref/dropout.js';
import { momentumRef, adamRef } from './ref/optimizer.js';
import { Trainer, type LabelledImages } from '../src/nn/trainer.js';
import { IMAGE, type BuiltNet, type NetConfig } from '../src/nn/nets.js';
import type { OptimizerConfig } from '../src/graph/recorder.js';
import { GpuContext } from '../src/gpu/context.js';
import { gentleWait } from '../src/gpu/gentle-wait.js';

const STEPS = 3;
const PIXELS = IMAGE.rows * IMAGE.cols;

const MOMENTUM: OptimizerConfig = { kind: 'sgd', lr: 0.05, momentum: 0.9 };
const ADAM: OptimizerConfig = { kind: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };

/**
 * Per element: |gpu − ref| ≤ PARAM_TOL·(|ref| + rms(ref)); the rms term is the floor for elements near 0
 * (biases that start at 0). The tightest elements are Adam steps of weights whose gradient is about ε
 * (1e-8): there g/(|g| + ε) follows the float32 gradient's last digits.
 */
const PARAM_TOL = 1e-4;
/** The step's mean loss, relative. */
const LOSS_TOL = 1e-5;
/**
 * What the steps changed, in norm: ‖(gpu − p0) − (ref − p0)‖ / ‖ref − p0‖. Float32 parameters carry a
 * rounding error of about 6e-8·|p| per update against updates of 1e-3..1e-2·|p| here (≲ 1e-4 of the
 * update), plus the float32 gradients' own error (the autodiff test holds those under 1e-4): 1e-3 is
 * loose enough for both and far below a wrong mask, bias correction or missing update.
 */
const UPDATE_TOL = 1e-3;

interface StepCase {
  title: string;
  cfg: NetConfig;
  batch: number;
  /** The CPU model of the net on weights W, a batch in the net's layout, and its dropout masks. */
  cpu(W: Weights, x: Float64Array, labels: ArrayLike<number>, masks: ScaledMask[]): CpuResult;
  /** Dense weights whose update (and their bias's) runs in their gradient product's epilogue. */
  fusedUpdates: number;
}

/**
 * Image-like batches: a blob of ink in [0, 1] on a zero background (so some pixels are 0 in every
 * image of a batch, as in MNIST), labels 0..9; a different batch at every call.
 */
function imageBatch(rand: () => number, count: number): LabelledImages {
  const images = new Float32Array(count * PIXELS);
  const labels = new Uint8Array(count);
  for (let b = 0; b < count; b++) {
    const cy = 6 + rand() * 16, cx = 6 + rand() * 16;
    const ry = 3 + rand() * 7, rx = 2 + rand() * 7;
    for (let r = 0; r < IMAGE.rows; r++) {
      for (let c = 0; c < IMAGE.cols; c++) {
        const d = ((r - cy) / ry) ** 2 + ((c - cx) / rx) ** 2;
        if (d < 1) images[b * PIXELS + r * IMAGE.cols + c] = Math.fround(0.2 + 0.8 * rand());
      }
    }
    labels[b] = Math.floor(rand() * IMAGE.classes);
  }
  return { count, images, labels };
}

/** The batch as the CPU model reads it: rows [B, 784], or time-major [28, B, 28] for the rnn. */
function cpuLayout(net: BuiltNet, data: LabelledImages): Float64Array {
  const B = data.count;
  const x = new Float64Array(B * PIXELS);
  if (net.layout === 'rows') {
    x.set(data.images);
    return x;
  }
  const T = IMAGE.rows, I = IMAGE.cols;
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) for (let i = 0; i < I; i++) x[(t * B + b) * I + i] = data.images[b * PIXELS + t * I + i];
  }
  return x;
}

/** A Philox mask of 0/1 at the GPU's keep threshold (round(keep·2^24) on 24 random bits), as 0 or 1/keep. */
function scaledMask(n: number, keep: number, seed: number, stream: number, step: number): Float64Array {
  const mask = dropoutMaskRef(n, Math.round(keep * 2 ** 24), seed, stream, step);
  expect(mask.includes(0) && mask.includes(1), `the dropout mask of stream ${stream} at step ${step} drops some units and keeps some`).to.equal(true);
  return Float64Array.from(mask, (m) => m / keep);
}

/**
 * The masks the training graph draws at `step`, in the order the CPU models take them: a dropout op
 * draws with (seed, its stream attribute = node count when it was built, step); a recurrent stack's
 * gap l between cells with stream (stack's stream << 8) + l over its [T, B, H_l] outputs.
 */
function dropoutMasks(net: BuiltNet, cfg: NetConfig, step: number): ScaledMask[] {
  const keep = cfg.keepProb ?? 1;
  const masks: ScaledMask[] = [];
  if (keep === 1) return masks;
  for (const n of net.graph.nodes.filter((node) => node.phase === 'forward')) {
    if (n.op === 'dropout') masks.push(scaledMask(n.outputs[0].size, keep, cfg.seed, n.attrs.stream as number, step));
    if (n.op === 'recurrent') {
      const hidden = n.attrs.hidden as number[];
      const [T, B] = n.inputs[0].shape;
      for (let l = 0; l + 1 < hidden.length; l++) {
        masks.push(scaledMask(T * B * hidden[l], keep, cfg.seed, ((n.attrs.stream as number) << 8) + l, step));
      }
    }
  }
  return masks;
}

/** The CPU optimizer: the float64 twins of shaders/optimizer.wgsl, with their state per parameter. */
function cpuOptimizer(opt: OptimizerConfig, W: Weights): (grads: Weights, t: number) => void {
  const zeros = () => Object.fromEntries(Object.entries(W).map(([k, v]) => [k, new Float64Array(v.length)]));
  if (opt.kind === 'adam') {
    const m = zeros(), v = zeros();
    return (grads, t) => {
      for (const k of Object.keys(W)) adamRef(W[k], grads[k], m[k], v[k], t, opt);
    };
  }
  const accum = zeros();
  return (grads) => {
    for (const k of Object.keys(W)) momentumRef(W[k], grads[k], accum[k], opt.lr, opt.momentum!);
  };
}

const report: string[] = [];

/** Per element within PARAM_TOL·(|ref| + rms(ref)); the update in norm within UPDATE_TOL. Returns the worst figures. */
function compareParam(what: string, got: Float32Array, ref: Float64Array, initial: Float64Array): { elem: number; update: number } {
  expect(got.length, `${what}: elements`).to.equal(ref.length);
  let sq = 0;
  for (const v of ref) sq += v * v;
  const rms = Math.sqrt(sq / ref.length);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    const tol = PARAM_TOL * (Math.abs(ref[i]) + rms);
    if (!(err <= tol)) {
      expect.fail(`${what}[${i}]: GPU ${got[i]} vs float64 ${ref[i]} (initial ${initial[i]}): error ${err.toExponential(2)} > ${tol.toExponential(2)}`);
    }
    worst = Math.max(worst, err / tol);
  }
  const dRef = ref.map((v, i) => v - initial[i]);
  const dGot = Float64Array.from(got, (v, i) => v - initial[i]);
  let moved = 0;
  for (const v of dRef) moved += v * v;
  expect(moved, `${what}: the reference update is zero (the check would be vacuous)`).to.be.greaterThan(0);
  const update = relError(dGot, dRef);
  expect(update, `${what}: update (new − initial) relative error ${update.toExponential(2)}`).to.be.lessThan(UPDATE_TOL);
  return { elem: worst, update };
}

/**
 * Three training steps of the Trainer (a new batch each) and of the CPU model from the same
 * initial parameters; after each: the step's loss and every parameter.
 */
async function trainAgainstCpu(ctx: GpuContext, c: StepCase, opt: OptimizerConfig, encodeAhead?: boolean): Promise<void> {
  const tag = `${c.title}, ${opt.kind === 'adam' ? 'adam' : 'momentum'}${encodeAhead ? ', encoded ahead' : ''}`;
  const trainer = await Trainer.create(ctx, { ...c.cfg, batch: c.batch, optimizer: opt, encodeAhead });
  try {
    const fused = trainer.graph.ops.flatMap((o) => o.dispatches.map((d) => d.label)).filter((l) => /\+(adam|sgd)$/.test(l));
    expect(fused.length, `${tag}: updates in a product's epilogue (${fused.join(', ')})`).to.equal(c.fusedUpdates);
    const W: Weights = {};
    for (const [name, v] of Object.entries(await trainer.store.read())) W[name] = Float64Array.from(v.data);
    const initial: Weights = Object.fromEntries(Object.entries(W).map(([k, v]) => [k, Float64Array.from(v)]));
    const update = cpuOptimizer(opt, W);
    const rand = rng(c.cfg.seed * 7919 + (opt.kind === 'adam' ? 1 : 0));
    const index = Array.from({ length: c.batch }, (_, i) => i);
    let worstElem = 0, worstUpdate = 0, worstLoss = 0;
    for (let step = 0; step < STEPS; step++) {
      const data = imageBatch(rand, c.batch);
      trainer.writeBatch(data, index);
      const metrics = await trainer.step(true);
      expect(metrics.steps, 'steps in the metrics').to.equal(1);

      const ref = c.cpu(W, cpuLayout(trainer.net, data), data.labels, dropoutMasks(trainer.net, c.cfg, step));
      expect(Object.keys(ref.grads).sort(), `${tag}: parameters`).to.deep.equal([...trainer.store.names].sort());
      update(ref.grads, step + 1); // Adam's t: the step counter (0 at the first step) + 1

      const lossErr = Math.abs(metrics.loss - ref.loss) / Math.abs(ref.loss);
      expect(lossErr, `${tag}, step ${step + 1}: GPU loss ${metrics.loss} vs float64 ${ref.loss}`).to.be.lessThan(LOSS_TOL);
      worstLoss = Math.max(worstLoss, lossErr);
      const got = await trainer.store.read();
      for (const name of Object.keys(W)) {
        const e = compareParam(`${tag}, after step ${step + 1}: ${name}`, got[name].data, W[name], initial[name]);
        worstElem = Math.max(worstElem, e.elem);
        worstUpdate = Math.max(worstUpdate, e.update);
      }
    }
    report.push(`${tag}: worst loss rel err ${worstLoss.toExponential(1)}, worst element err ${worstElem.toFixed(3)} of its tolerance, worst update rel err ${worstUpdate.toExponential(1)}`);
  } finally {
    trainer.destroy();
  }
}

const CASES: StepCase[] = [
  {
    title: 'mlp 784-24 relu-24 relu-10, dropout keep 0.8 after each hidden layer, batch 5',
    cfg: { net: 'mlp', hidden: 24, layers: 2, keepProb: 0.8, seed: 21 },
    batch: 5,
    cpu: (W, x, labels, masks) => mlpCpu(W, x, labels, 5, 24, 2, masks),
    fusedUpdates: 3,
  },
  {
    title: 'cnn conv-pool-conv-pool-dense 32-dropout keep 0.75-10, batch 4',
    cfg: { net: 'cnn', hidden: 32, keepProb: 0.75, seed: 8 },
    batch: 4,
    cpu: (W, x, labels, masks) => cnnCpu(W, x, labels, 4, 32, masks[0]),
    fusedUpdates: 2,
  },
  {
    title: 'rnn 2 stacked LSTM cells of 8, dropout keep 0.8 between them, batch 3',
    cfg: { net: 'rnn', cell: 'lstm', hidden: 8, layers: 2, keepProb: 0.8, seed: 13 },
    batch: 3,
    cpu: (W, x, labels, masks) => rnnCpu(W, x, labels, 3, 'lstm', 8, 2, masks),
    fusedUpdates: 1,
  },
  {
    title: 'rnn 2 stacked GRU cells of 6, dropout keep 0.7 between them, batch 2',
    cfg: { net: 'rnn', cell: 'gru', hidden: 6, layers: 2, keepProb: 0.7, seed: 6 },
    batch: 2,
    cpu: (W, x, labels, masks) => rnnCpu(W, x, labels, 2, 'gru', 6, 2, masks),
    fusedUpdates: 1,
  },
];

describe('training step: three Trainer steps against a float64 CPU model (dropout, loss, optimizer update)', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
  });
  after(() => {
    for (const line of report) console.log(`      ${line}`);
  });

  for (const c of CASES) {
    it(`${c.title}: SGD with momentum`, async () => {
      await trainAgainstCpu(ctx, c, MOMENTUM);
    });
    it(`${c.title}: Adam`, async () => {
      await trainAgainstCpu(ctx, c, ADAM);
    });
  }
  // Each step's command buffer encoded while the GPU runs the one before (TrainerOptions.encodeAhead).
  for (const c of [CASES[0], CASES[2]]) {
    it(`${c.title}: Adam, each step encoded while the last one runs`, async () => {
      await trainAgainstCpu(ctx, c, ADAM, true);
    });
  }

  it('encodes each step ahead where asked (on a GPU by default): the call then submits a command buffer made before it, and encodes the next', async () => {
    const device = ctx.device;
    const events: string[] = [];
    const create = device.createCommandEncoder.bind(device);
    const submit = device.queue.submit.bind(device.queue);
    device.createCommandEncoder = (d?: GPUCommandEncoderDescriptor) => { events.push(`encode ${d?.label ?? ''}`); return create(d); };
    device.queue.submit = (buffers: Iterable<GPUCommandBuffer>) => { events.push(`submit ${[...buffers].length}`); return submit(buffers); };
    const rand = rng(5);
    try {
      for (const encodeAhead of [true, false]) {
        const trainer = await Trainer.create(ctx, { net: 'softmax', seed: 1, batch: 4, optimizer: ADAM, encodeAhead });
        try {
          trainer.writeBatch(imageBatch(rand, 4), [0, 1, 2, 3]);
          await trainer.step(true);
          trainer.writeBatch(imageBatch(rand, 4), [0, 1, 2, 3]);
          events.length = 0;
          await trainer.step(true);
          expect(events, `encodeAhead ${encodeAhead}: the second step's calls`).to.deep.equal(encodeAhead
            ? ['encode metrics readback', 'submit 2', 'encode training step']
            : ['encode training step', 'encode metrics readback', 'submit 2']);
        } finally {
          trainer.destroy();
        }
      }
    } finally {
      device.createCommandEncoder = create;
      device.queue.submit = submit;
    }
    const software = await Trainer.create(ctx, { net: 'softmax', seed: 1, batch: 4, optimizer: ADAM });
    const defaultOn = software.encodeAhead;
    software.destroy();
    expect(defaultOn, `the default on ${ctx.adapterDescription}`).to.equal(!ctx.softwareAdapter);
  });

  it('sleeps through a step before reading its metrics on a software adapter, and never on a GPU, where waiting costs the kernels nothing', async () => {
    /** The timer delays (ms) asked for while the steps' metrics are read: the read-back's sleeps. */
    const sleepsWhileReading = async (on: GpuContext): Promise<number[]> => {
      const trainer = await Trainer.create(on, { net: 'mlp', seed: 1, batch: 100, optimizer: ADAM, encodeAhead: false });
      const realTimeout = globalThis.setTimeout;
      const delays: number[] = [];
      const rand = rng(9);
      const data = imageBatch(rand, 100);
      const index = Array.from({ length: 100 }, (_, i) => i);
      try {
        for (let s = 0; s < 6; s++) {
          trainer.writeBatch(data, index);
          globalThis.setTimeout = ((fn: () => void, ms?: number) => { delays.push(ms ?? 0); return realTimeout(fn, ms); }) as typeof setTimeout;
          try {
            await trainer.step(true);
          } finally {
            globalThis.setTimeout = realTimeout;
          }
        }
      } finally {
        trainer.destroy();
      }
      return delays.filter((ms) => ms >= 1);
    };
    // The same device, once as what it is and once calling itself a GPU.
    const gpu = GpuContext.fromDevice(ctx.device, { adapterDescription: 'nvidia / nvidia-h200 / NVIDIA: 580.159.04', wait: gentleWait });
    expect(ctx.softwareAdapter, ctx.adapterDescription).to.equal(true);
    expect(await sleepsWhileReading(ctx), 'sleeps before the reads on a software adapter').to.not.be.empty;
    expect(await sleepsWhileReading(gpu), 'sleeps before the reads on a GPU').to.deep.equal([]);
  });
});
