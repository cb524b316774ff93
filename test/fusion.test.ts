// Work moved into a neighbouring kernel by the graph's fusion passes: Adam into the epilogue of the
// product that computes a weight's gradient (the kernel against float64 and against the update
// kernel it replaces, bit for bit; src/graph/fuse-updates.ts), and an activation's derivative into
// the backward of the pooling that read its output (src/graph/fuse-activation-grads.ts; the kernel's
// own tests are in pool.test.ts). For each pass: where it fuses, where it must not, and that a
// fused step is the unfused step's bits.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { expectClose, matmulRef, randomArray, randomBetween, relError, rng } from './support/cpu.js';
import { adamwRef, sgdDecayRef } from './ref/train-control.js';
import { momentumRef } from './ref/optimizer.js';
import { adamEpilogue, prepareAdam, prepareSgd, sgdEpilogue } from '../src/kernels/optimizer.js';
import { BIAS_GRAD_MAX_K, matmul, matmulSplitK, matmulTileVariants, type MatmulSpec } from '../src/kernels/matmul.js';
import { prepareActivationBackward } from '../src/kernels/activation.js';
import { createStepCounter } from '../src/kernels/step.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import { CompiledGraph, type CompileOptions, type OptimizerConfig } from '../src/graph/recorder.js';
import { Graph } from '../src/graph/graph.js';
import { ParamStore } from '../src/nn/params.js';
import { model, sequential, type Model } from '../src/nn/model.js';
import { add, avgPool2d, conv2d, dense, dropout, flatten, input, maxPool2d } from '../src/nn/layers.js';
import type { GpuContext } from '../src/gpu/context.js';

const notes: string[] = [];
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/**
 * A weight gradient dW = xᵀ·dz [M, N] over a batch of K, with an optimizer step applied to w [M, N]:
 * `decay` as the optimizer's weight decay, `scheduled` reading the rate from a control buffer.
 */
interface EpilogueCase {
  optimizer: 'adam' | 'sgd' | 'momentum' | 'nesterov';
  M: number; N: number; K: number; t: number;
  decay?: 'l2' | 'decoupled';
  scheduled?: boolean;
  /** The bias gradient (the column sums of dz) stored, or with `bias` the bias updated from it. */
  biasGrad?: boolean;
  bias?: boolean;
}

// Widths that are no whole column quads (10, 7, 5) take the float-by-float epilogue.
const CASES: EpilogueCase[] = [
  { optimizer: 'adam', M: 37, N: 12, K: 5, t: 1 },
  { optimizer: 'adam', M: 130, N: 64, K: 33, t: 7, biasGrad: true },
  { optimizer: 'adam', M: 9, N: 4, K: 1, t: 1000, decay: 'l2' },
  { optimizer: 'adam', M: 61, N: 20, K: 100, t: 3, decay: 'decoupled', scheduled: true, biasGrad: true },
  { optimizer: 'sgd', M: 45, N: 16, K: 7, t: 1, decay: 'l2', biasGrad: true },
  { optimizer: 'momentum', M: 33, N: 8, K: 50, t: 1, scheduled: true },
  { optimizer: 'nesterov', M: 70, N: 36, K: 3, t: 1 },
  { optimizer: 'adam', M: 37, N: 10, K: 5, t: 2 },
  { optimizer: 'adam', M: 50, N: 24, K: 9, t: 4, bias: true },
  { optimizer: 'adam', M: 61, N: 10, K: 100, t: 3, decay: 'decoupled', scheduled: true, bias: true },
  { optimizer: 'sgd', M: 20, N: 5, K: 7, t: 1, decay: 'l2', biasGrad: true },
  { optimizer: 'momentum', M: 33, N: 7, K: 50, t: 1, bias: true },
  { optimizer: 'nesterov', M: 18, N: 12, K: 3, t: 1, bias: true },
];

describe('optimizer steps in the weight-gradient product\'s epilogue (shaders/matmul_subgroup.wgsl optimizer_step)', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  after(() => { if (process.env.SHOW_ERRORS) console.log(notes.join('\n')); });

  for (const c of CASES) {
    const what = `${c.optimizer} ${c.M}x${c.N} over a batch of ${c.K}${c.optimizer === 'adam' ? ` at t = ${c.t}` : ''}${c.decay ? `, ${c.decay} decay` : ''}${c.scheduled ? ', scheduled rate' : ''}${c.biasGrad ? ', with the bias gradient' : ''}${c.bias ? ', with the bias\'s update' : ''}`;
    it(`${what}: every tile, from buffers and textures, matches float64 and the update kernel bit for bit`, async () => {
      const { M, N, K } = c;
      const sums = c.biasGrad || c.bias;
      const adam = c.optimizer === 'adam';
      const momentum = c.optimizer === 'sgd' ? undefined : 0.9;
      const rand = rng(M * 1000 + N * 10 + K);
      const x = randomArray(K * M, rand), dz = randomArray(K * N, rand);
      const w = randomArray(M * N, rand), m = randomArray(M * N, rand, 0.1), v = randomBetween(M * N, rand, 1e-4, 0.5);
      const lr = 0.01, scheduledLr = 0.003, wd = c.decay ? 0.2 : 0;
      const hyper = { lr, weightDecay: wd, decoupled: c.decay === 'decoupled', scheduled: c.scheduled };
      const sgdHyper = { ...hyper, momentum: adam ? undefined : momentum, nesterov: c.optimizer === 'nesterov' };

      // float64: the gradient, then the step (m is the momentum accumulator for SGD)
      const ref = { w: f64(w), m: f64(m), v: f64(v) };
      const grad = matmulRef(x, dz, M, N, K, { transA: true });
      const rate = c.scheduled ? scheduledLr : lr;
      if (adam) adamwRef(ref.w, grad, ref.m, ref.v, c.t, { lr: rate, wd, l2: c.decay === 'l2' });
      else if (c.optimizer === 'nesterov') momentumRef(ref.w, grad, ref.m, rate, 0.9, true);
      else sgdDecayRef(ref.w, grad, rate, wd, 1, momentum === undefined ? undefined : { a: ref.m, mu: momentum });
      const dbiasRef = matmulRef(new Float32Array(K).fill(1), dz, 1, N, K);
      const checked = adam ? (['w', 'm', 'v'] as const) : momentum === undefined ? (['w'] as const) : (['w', 'm'] as const);
      // The bias's state and its float64 step, from the column sums (with the weight's hyper-parameters).
      const bw = randomArray(N, rand), bm = randomArray(N, rand, 0.1), bv = randomBetween(N, rand, 1e-4, 0.5);
      const biasRef = { w: f64(bw), m: f64(bm), v: f64(bv) };
      if (adam) adamwRef(biasRef.w, dbiasRef, biasRef.m, biasRef.v, c.t, { lr: rate, wd, l2: c.decay === 'l2' });
      else if (c.optimizer === 'nesterov') momentumRef(biasRef.w, dbiasRef, biasRef.m, rate, 0.9, true);
      else sgdDecayRef(biasRef.w, dbiasRef, rate, wd, 1, momentum === undefined ? undefined : { a: biasRef.m, mu: momentum });

      const product: MatmulSpec = { M, N, K, transA: true, biasGrad: sums };
      const bx = ctx.upload(x), bdz = ctx.upload(dz);
      const control = ctx.upload(new Float32Array([scheduledLr, 1, 0, 0]));
      const step = createStepCounter(ctx, c.t - 1);
      const read = async (b: { param: GPUBuffer; m: GPUBuffer; v: GPUBuffer }, n = M * N) => ({ w: await ctx.readF32(b.param, n), m: await ctx.readF32(b.m, n), v: await ctx.readF32(b.v, n) });
      // The update kernel over a gradient buffer: the bits to match.
      const updateKernel = (s: { param: GPUBuffer; m: GPUBuffer; v: GPUBuffer }, grad: GPUBuffer, n: number) => (adam
        ? prepareAdam(ctx, { n, ...hyper }, { ...s, grad, step, control })
        : prepareSgd(ctx, { n, ...sgdHyper }, { param: s.param, accum: s.m, grad, control }));
      try {
        // The update kernel after a product that stores the gradient (and the bias's after the column sums).
        const state = () => ({ param: ctx.upload(w), m: ctx.upload(m), v: ctx.upload(v) });
        const biasState = () => ({ param: ctx.upload(bw), m: ctx.upload(bm), v: ctx.upload(bv) });
        const unfused = state(), unfusedBias = biasState();
        const gradBuf = ctx.storage(4 * M * N), dbiasUnfused = ctx.upload(new Float32Array(N).fill(NaN));
        await runDispatches(ctx, [
          matmul(ctx, product, { a: bx, b: bdz, c: gradBuf, dbias: sums ? dbiasUnfused : undefined }),
          updateKernel(unfused, gradBuf, M * N),
          ...(c.bias ? [updateKernel(unfusedBias, dbiasUnfused, N)] : []),
        ]);
        const want = await read(unfused);
        const wantBias = await read(unfusedBias, N);
        for (const b of [...Object.values(unfused), ...Object.values(unfusedBias), gradBuf, dbiasUnfused]) ctx.release(b);

        const variants = matmulTileVariants(ctx, product);
        for (const variant of variants) {
          for (const textures of [false, true]) {
            const tag = `${what}, tile ${variant}${textures ? ', textures' : ''}`;
            const fused = state(), fusedBias = biasState();
            const dbias = ctx.upload(new Float32Array(N).fill(NaN)); // poisoned: the product must write it
            try {
              const bias = c.bias ? { bias: { param: fusedBias.param, m: fusedBias.m, v: adam ? fusedBias.v : undefined } } : {};
              const epilogue = adam
                ? adamEpilogue(ctx, { rows: M, cols: N, ...hyper }, { ...fused, step, control, ...bias })
                : sgdEpilogue(ctx, { rows: M, cols: N, ...sgdHyper }, { param: fused.param, accum: momentum === undefined ? undefined : fused.m, control, ...bias });
              expect(epilogue.entry, tag).to.equal(N % 4 ? 'optimizer_step_scalar' : c.bias ? 'optimizer_step_bias' : 'optimizer_step');
              await runDispatches(ctx, [matmul(ctx, { ...product, epilogue, variant, textures }, { a: bx, b: bdz, c: fused.param, dbias: c.biasGrad ? dbias : undefined })]);
              const got = await read(fused);
              const gotBias = await read(fusedBias, N);
              for (const k of checked) {
                expectClose(got[k], ref[k], 1e-5, `${tag}: ${k}`);
                expect(bits(got[k]), `${tag}: ${k} bit for bit as the update kernel's`).to.deep.equal(bits(want[k]));
                if (!c.bias) continue;
                expectClose(gotBias[k], biasRef[k], 1e-5, `${tag}: the bias's ${k}`);
                expect(bits(gotBias[k]), `${tag}: the bias's ${k} bit for bit as the update kernel's`).to.deep.equal(bits(wantBias[k]));
              }
              for (const k of (['m', 'v'] as const).filter((k) => !(checked as readonly string[]).includes(k))) {
                expect(bits(got[k]), `${tag}: ${k} (no state of this optimizer) untouched`).to.deep.equal(bits(k === 'm' ? m : v));
                expect(bits(gotBias[k]), `${tag}: the bias's ${k} (no state of this optimizer) untouched`).to.deep.equal(bits(k === 'm' ? bm : bv));
              }
              if (!c.bias) expect(bits(gotBias.w), `${tag}: no bias update asked, the bias untouched`).to.deep.equal(bits(bw));
              if (c.biasGrad) expectClose(await ctx.readF32(dbias, N), dbiasRef, 1e-5, `${tag}: bias gradient`);
              notes.push(`${tag}: ${checked.map((k) => `${k} ${relError(got[k], ref[k]).toExponential(2)}`).join(', ')}`);
            } finally {
              for (const b of [...Object.values(fused), ...Object.values(fusedBias), dbias]) ctx.release(b);
            }
          }
        }
        expect(variants.length, 'tiles tried').to.be.greaterThan(1);
      } finally {
        for (const b of [bx, bdz, control, step]) ctx.release(b);
      }
    });
  }

  it('refuses what it cannot do, naming the way out', () => {
    const b = () => ctx.storage(4 * 64);
    const bufs = { param: b(), m: b(), v: b(), step: createStepCounter(ctx) };
    try {
      expect(() => adamEpilogue(ctx, { rows: 4, cols: 4, lr: 0.1, clipped: true } as never, bufs)).to.throw(/clipping needs every gradient/);
      expect(() => adamEpilogue(ctx, { rows: 8, cols: 12, lr: 0.1 }, bufs)).to.throw(/buffer param has 256 bytes, needs 384/);
      expect(() => adamEpilogue(ctx, { rows: 4, cols: 4, lr: 0.1 }, { ...bufs, v: bufs.m })).to.throw(/must be different buffers/);
      expect(() => sgdEpilogue(ctx, { rows: 4, cols: 4, lr: 0.1, momentum: 0.9 }, bufs)).to.throw(/momentum sgd epilogue \[4, 4\]: momentum needs an accum buffer/);
      expect(() => adamEpilogue(ctx, { rows: 4, cols: 4, lr: 0.1 }, { ...bufs, bias: { param: b() } })).to.throw(/adam epilogue \[4, 4\]: the bias's update needs its m buffer, as the weight's/);
      expect(() => adamEpilogue(ctx, { rows: 4, cols: 4, lr: 0.1 }, { ...bufs, bias: { param: b(), m: bufs.m, v: b() } })).to.throw(/the bias and its state must be buffers of their own/);
      expect(() => adamEpilogue(ctx, { rows: 4, cols: 4, lr: 0.1, biasOffset: 62 }, { ...bufs, bias: { param: b(), m: b(), v: b() } })).to.throw(/buffer bias param has 256 bytes, needs 264/);
      const epilogue = adamEpilogue(ctx, { rows: 4, cols: 8, lr: 0.1 }, bufs);
      expect(() => matmul(ctx, { M: 4, N: 4, K: 3, transA: true, epilogue }, { a: b(), b: b(), c: bufs.param }))
        .to.throw(/optimizer_step epilogue updates a \[4, 8\] tensor laid out as C .* this product's C is \[4, 4\]/);
      const withBias = adamEpilogue(ctx, { rows: 4, cols: 4, lr: 0.1 }, { ...bufs, bias: { param: b(), m: b(), v: b() } });
      expect(() => matmul(ctx, { M: 4, N: 4, K: 3, transA: true, epilogue: withBias }, { a: b(), b: b(), c: bufs.param }))
        .to.throw(/optimizer_step_bias epilogue updates a bias from the column sums of op\(B\): give the product biasGrad, unsplit/);
      // A width or offset of no whole column quads: float by float.
      expect(adamEpilogue(ctx, { rows: 4, cols: 6, lr: 0.1 }, bufs).entry).to.equal('optimizer_step_scalar');
      expect(sgdEpilogue(ctx, { rows: 4, cols: 4, lr: 0.1, offset: 2 }, bufs).entry).to.equal('optimizer_step_scalar');
    } finally {
      for (const x of Object.values(bufs)) ctx.release(x);
    }
  });
});

/** The dispatches of a compiled step that apply an update in a product's epilogue. */
const fusedLabels = (g: CompiledGraph) => g.ops.flatMap((o) => o.dispatches.map((d) => d.label)).filter((l) => /\+(adam|sgd)$/.test(l));
/** The update nodes that run as dispatches of their own. */
const separateUpdates = (g: CompiledGraph) => g.ops.filter((o) => o.node?.phase === 'update').map((o) => o.label);

const B = 5;

/** `steps` steps of `model` compiled with `fusions`, from the same parameters and batches; the parameters after each. */
async function train(ctx: GpuContext, model: Model, opt: OptimizerConfig, fusions: Pick<CompileOptions, 'fuseUpdates' | 'fuseActivationGrads' | 'fuseAccuracy' | 'advanceStepInLoss'>, steps = 3) {
    const store = new ParamStore(ctx, 3);
    const stepCounter = createStepCounter(ctx, 0);
    const net = model.build(store, B, true, 3);
    const g = new CompiledGraph(ctx, net.graph, { loss: net.loss, optimizer: opt, stepCounter, incrementStep: true, keep: [net.loss, net.predictions], ...fusions });
    try {
      await g.ready();
      net.graph.tensors.filter((t) => t.role === 'param').forEach((p, i) => store.write(p.name, randomArray(p.size, rng(200 + i), 0.5)));
      const rand = rng(300);
      const after: Record<string, Float32Array>[] = [];
      /** After each step: the loss, its running sum, the correct count so far and the predictions. */
      const metrics: { loss: number[]; lossSum: number[]; correct: number[]; predictions: number[] }[] = [];
      for (let s = 0; s < steps; s++) {
        ctx.write(g.bufferOf(net.x), Float32Array.from({ length: net.x.size }, () => rand() * 2 - 1));
        ctx.write(g.bufferOf(net.labels), Uint32Array.from({ length: B }, () => Math.floor(rand() * 4)));
        const enc = ctx.device.createCommandEncoder();
        g.encode(enc);
        ctx.device.queue.submit([enc.finish()]);
        await ctx.wait(() => ctx.device.queue.onSubmittedWorkDone());
        after.push(Object.fromEntries(Object.entries(await store.read()).map(([k, v]) => [k, v.data])));
        metrics.push({
          loss: bits(await ctx.readF32(g.bufferOf(net.loss), 1)), lossSum: bits(await ctx.readF32(g.bufferOf(net.lossSum), 1)),
          correct: Array.from(await ctx.readU32(g.bufferOf(net.correct), 1)), predictions: Array.from(await ctx.readU32(g.bufferOf(net.predictions), B)),
        });
      }
      const labels = g.ops.flatMap((o) => o.dispatches.map((d) => d.label));
      const counter = (await ctx.readU32(stepCounter, 1))[0];
      return { after, metrics, labels, ops: g.ops.map((o) => o.label), fused: fusedLabels(g), separate: separateUpdates(g), dispatches: g.dispatchCount, planned: g.plan.plannedBytes, counter };
    } finally {
      g.destroy();
      store.destroy();
      ctx.release(stepCounter);
    }
}

/** Expects two runs' parameters equal bit for bit after every step. */
function expectSameBits(a: Record<string, Float32Array>[], b: Record<string, Float32Array>[]): void {
  expect(a.length).to.equal(b.length);
  a.forEach((step, s) => {
    for (const name of Object.keys(step)) expect(bits(step[name]), `${name} after step ${s + 1}`).to.deep.equal(bits(b[s][name]));
  });
}

describe('a product stored over an activation\'s output, or beside it, with its derivative (MatmulSpec.activationGrad, a dense layer\'s dx)', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  // dx = dz·wᵀ [M, N] over K, stored over y = f(x) of the layer before as dx ⊙ f'(y). N = 13: C
  // stored element by element (main); N = 16: as vec4s (main_c4).
  const derivative: Record<'relu' | 'sigmoid' | 'tanh', (y: number) => number> = { relu: (y) => (y > 0 ? 1 : 0), sigmoid: (y) => y * (1 - y), tanh: (y) => (1 - y) * (1 + y) };
  const outputs = { relu: (r: () => number) => Math.max(0, r() * 2 - 1), sigmoid: (r: () => number) => 0.02 + 0.96 * r(), tanh: (r: () => number) => r() * 1.96 - 0.98 };
  // The derivative is applied as C is stored, the same for every tile: each activation runs on the
  // default tile from buffers, relu' on every tile and from textures too.
  for (const act of ['relu', 'sigmoid', 'tanh'] as const) {
    for (const [M, N, K] of [[7, 13, 9], [20, 16, 33]]) {
      const everyTile = act === 'relu' && N === 16;
      it(`${act}', ${M}x${N} over ${K}: ${everyTile ? 'every tile, from buffers and textures,' : 'the default tile'} matches float64 and product + derivative pass bit for bit`, async () => {
        const rand = rng(M * 100 + N + K + act.length);
        const dz = randomArray(M * K, rand), w = randomArray(N * K, rand);
        const y = Float32Array.from({ length: M * N }, () => outputs[act](rand));
        if (act === 'relu') y[0] = 0; // relu' at 0 is 0
        const product = matmulRef(dz, w, M, N, K, { transB: true });
        const ref = Float64Array.from(product, (p, i) => p * derivative[act](y[i]));
        const spec: MatmulSpec = { M, N, K, transB: true };
        const bdz = ctx.upload(dz), bw = ctx.upload(w), by = ctx.upload(y), apart = ctx.storage(4 * M * N);
        try {
          await runDispatches(ctx, [
            matmul(ctx, spec, { a: bdz, b: bw, c: apart }),
            prepareActivationBackward(ctx, { n: M * N, activation: act }, { y: by, dy: apart, dx: apart }),
          ]);
          const want = await ctx.readF32(apart, M * N);
          const variants = matmulTileVariants(ctx, spec);
          const runs = everyTile ? [...variants.map((variant) => ({ variant, textures: false })), { variant: variants[0], textures: true }] : [{ variant: variants[0], textures: false }];
          for (const { variant, textures } of runs) {
            const tag = `${act}' ${M}x${N}x${K}, tile ${variant}${textures ? ', textures' : ''}`;
            const c = ctx.upload(y);
            // Beside y (activationGradFrom): y in a buffer of its own, at an offset of 4 (vec4s) or
            // 3 (float by float), C poisoned.
            const yOffset = N % 4 ? 3 : 4;
            const yApart = ctx.upload(Float32Array.from({ length: yOffset + M * N }, (_, i) => (i < yOffset ? NaN : y[i - yOffset])));
            const beside = ctx.storage(4 * M * N);
            ctx.poison(beside);
            try {
              await runDispatches(ctx, [
                matmul(ctx, { ...spec, activationGrad: act, variant, textures }, { a: bdz, b: bw, c }),
                matmul(ctx, { ...spec, activationGrad: act, activationGradFrom: { buffer: yApart, offset: yOffset }, variant, textures }, { a: bdz, b: bw, c: beside }),
              ]);
              for (const [where, buf] of [['over y', c], ['beside y', beside]] as const) {
                const got = await ctx.readF32(buf, M * N);
                expectClose(got, ref, 1e-5, `${tag}, ${where}`);
                expect(bits(got), `${tag}, ${where}: bit for bit as product + derivative pass`).to.deep.equal(bits(want));
              }
              expect(bits(await ctx.readF32(yApart, yOffset + M * N)).slice(yOffset), `${tag}: y beside untouched`).to.deep.equal(bits(y));
            } finally {
              for (const x of [c, yApart, beside]) ctx.release(x);
            }
          }
          if (everyTile) expect(variants.length, 'tiles tried').to.be.greaterThan(1);
        } finally {
          for (const b of [bdz, bw, by, apart]) ctx.release(b);
        }
      });
    }
  }

  it('refuses what it cannot do, naming the way out', () => {
    const b = ctx.storage(4096);
    try {
      const spec: MatmulSpec = { M: 8, N: 8, K: 8, transB: true, activationGrad: 'relu' };
      expect(() => matmul(ctx, { ...spec, accumulate: true }, { a: b, b, c: b })).to.throw(/activationGrad needs the subgroup kernel, unsplit, without accumulate.*prepareActivationBackward/);
      expect(() => matmul(ctx, { ...spec, portable: true }, { a: b, b, c: b })).to.throw(/activationGrad needs the subgroup kernel/);
      expect(() => matmulSplitK(ctx, { ...spec, splits: 2 }, { a: b, b, c: b })).to.throw(/K cannot be split with .* an activation's derivative/);
      expect(() => matmul(ctx, { ...spec, activationGrad: 'none' }, { a: b, b, c: b })).to.throw(/activationGrad takes relu, sigmoid, tanh/);
      expect(() => matmul(ctx, { ...spec, activationGrad: undefined, activationGradFrom: { buffer: b, offset: 0 } }, { a: b, b, c: b })).to.throw(/activationGradFrom says where y is for activationGrad, which is not given/);
    } finally {
      ctx.release(b);
    }
  });
});

describe('optimizer updates fused into the weight-gradient products of a training step (src/graph/fuse-updates.ts)', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  const mlp = () => sequential([6], [dense({ units: 8, activation: 'relu' }), dense({ units: 12, activation: 'tanh' }), dense({ units: 4 })], { name: 'fusable' });
  const adamw: OptimizerConfig = { kind: 'adamw', lr: 0.05, weightDecay: 0.3, schedule: { kind: 'cosine', decaySteps: 20, warmup: 2 } };

  const momentum: OptimizerConfig = { kind: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0.01, schedule: { kind: 'step', decaySteps: 2, decayRate: 0.5 } };
  for (const opt of [{ kind: 'adam', lr: 0.02 } as OptimizerConfig, adamw, { kind: 'sgd', lr: 0.1 } as OptimizerConfig, momentum]) {
    it(`${opt.kind}${opt.momentum ? ' with momentum' : ''}${opt.schedule ? ' with decay and a schedule' : ''}: every weight's update in its gradient's product, three steps bit for bit those of the update dispatches`, async () => {
      // (Without fused updates, the dense layers' dx would apply the activations' derivatives: tested below.)
      const fused = await train(ctx, mlp(), opt, { fuseActivationGrads: false });
      const separate = await train(ctx, mlp(), opt, { fuseUpdates: false, fuseActivationGrads: false });
      // The biases' updates join their weights' where the hyper-parameters are the same: not where the
      // weights decay and the biases do not (the default).
      const biasesJoin = !opt.weightDecay;
      expect(fused.fused, 'products with the update in their epilogue').to.have.length(3);
      expect(separate.fused, 'with fusing off').to.deep.equal([]);
      expect(fused.separate, `updates left as dispatches: ${biasesJoin ? 'none' : 'the biases'}`).to.have.length(biasesJoin ? 0 : 3);
      expect(separate.dispatches - fused.dispatches, 'dispatches saved').to.equal(biasesJoin ? 6 : 3);
      expect(fused.planned, 'planned bytes: the weight gradients are never stored').to.be.lessThan(separate.planned);
      expectSameBits(fused.after, separate.after);
    });
  }

  it('weights of no whole column quads (5 and 10 columns) update float by float in their products, biases too: three steps bit for bit', async () => {
    const odd = () => sequential([6], [dense({ units: 8, activation: 'relu' }), dense({ units: 5, activation: 'tanh' }), dense({ units: 10 })], { name: 'odd widths' });
    for (const opt of [{ kind: 'adam', lr: 0.02 }, { kind: 'sgd', lr: 0.1, momentum: 0.9 }] as OptimizerConfig[]) {
      const fused = await train(ctx, odd(), opt, { fuseActivationGrads: false });
      const separate = await train(ctx, odd(), opt, { fuseUpdates: false, fuseActivationGrads: false });
      expect(fused.fused, `${opt.kind}: products with the updates in their epilogue`).to.have.length(3);
      expect(fused.separate, `${opt.kind}: updates left as dispatches`).to.deep.equal([]);
      expectSameBits(fused.after, separate.after);
    }
  });

  it('leaves an update a dispatch of its own where fusing would be wrong or cannot be done', async () => {
    // Clipping: the scale needs every gradient before any update.
    const clipped = await train(ctx, mlp(), { ...adamw, clipNorm: 0.01 }, {}, 1);
    expect(clipped.fused, 'with clipping').to.deep.equal([]);
    // A batch longer than the fused column sums take: the biases' gradients are sums of their own,
    // so their updates stay dispatches (the weights' still fuse).
    const long = sequential([6], [dense({ units: 8, activation: 'relu' }), dense({ units: 4 })], { name: 'long batch' });
    const store = new ParamStore(ctx, 3);
    const net = long.build(store, BIAS_GRAD_MAX_K + 1, true, 3);
    const g = new CompiledGraph(ctx, net.graph, { loss: net.loss, optimizer: { kind: 'adam', lr: 0.01 }, stepCounter: createStepCounter(ctx, 0) });
    try {
      expect(fusedLabels(g), 'the weights, with a long batch').to.have.length(2);
      expect(separateUpdates(g), 'the biases, with a long batch').to.have.length(2);
    } finally {
      g.destroy();
      store.destroy();
    }
  });

  it('leaves the update of a weight used twice a dispatch of its own (its gradient has two parts)', async () => {
    const g = new Graph('shared weight');
    const store = new ParamStore(ctx, 4);
    const stepCounter = createStepCounter(ctx, 0);
    const w = g.param('w', [8, 8], store.get('w', [8, 8], { kind: 'uniform', limit: 0.5 }));
    const x = g.input('x', [B, 8]);
    const h = g.dense(x, w, undefined, 'relu', 'first');
    const y = g.dense(h, w, undefined, 'none', 'second');
    const { loss } = g.softmaxCrossEntropy(y, g.input('labels', [B], 'u32'));
    const compiled = new CompiledGraph(ctx, g, { loss, optimizer: { kind: 'adam', lr: 0.01 }, stepCounter });
    try {
      expect(fusedLabels(compiled), 'fused products').to.deep.equal([]);
      expect(separateUpdates(compiled)).to.have.length(1);
    } finally {
      compiled.destroy();
      store.destroy();
      ctx.release(stepCounter);
    }
  });
});

describe('an activation\'s derivative applied by the backward of the pooling or dense layer that read its output (src/graph/fuse-activation-grads.ts)', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  const adam: OptimizerConfig = { kind: 'adam', lr: 0.02 };
  /** The dispatches that apply an activation's derivative on their own (prepareActivationBackward's labels). */
  const derivativePasses = (labels: string[]) => labels.filter((l) => /'$/.test(l));

  it('conv relu → max pool and conv tanh → average pool: three steps bit for bit, two passes and two gradient buffers fewer', async () => {
    const convNet = () => sequential([8, 8, 3], [
      conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }), maxPool2d(),
      conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'tanh' }), avgPool2d(),
      flatten(), dense({ units: 4 }),
    ], { name: 'convs' });
    const fused = await train(ctx, convNet(), adam, {});
    const apart = await train(ctx, convNet(), adam, { fuseActivationGrads: false });
    expect(derivativePasses(apart.labels), 'without fusing: each conv applies its derivative').to.have.length(2);
    expect(derivativePasses(fused.labels), 'fused: the pools apply them').to.deep.equal([]);
    expect(apart.dispatches - fused.dispatches, 'dispatches saved').to.equal(2);
    expect(fused.planned, 'planned bytes: the convs\' output gradients live over their outputs').to.be.lessThan(apart.planned);
    expectSameBits(fused.after, apart.after);
  });

  it('dense relu → dense and dense sigmoid → dense: the next layer\'s dx product applies the derivative; three steps bit for bit, two passes and two gradient buffers fewer', async () => {
    // The updates as dispatches of their own, so that dx comes after dW (fused, they take precedence: below).
    const denseNet = () => sequential([6], [dense({ units: 8, activation: 'relu' }), dense({ units: 5, activation: 'sigmoid' }), dense({ units: 3 })], { name: 'denses' });
    const fused = await train(ctx, denseNet(), adam, { fuseUpdates: false });
    const apart = await train(ctx, denseNet(), adam, { fuseUpdates: false, fuseActivationGrads: false });
    expect(derivativePasses(apart.labels), 'without fusing: each layer applies its derivative').to.have.length(2);
    expect(derivativePasses(fused.labels), 'fused: the next layers\' dx apply them').to.deep.equal([]);
    expect(fused.labels.filter((l) => /\/dx \(⊙ (relu|sigmoid)'\)$/.test(l)), 'the dx products that apply them').to.have.length(2);
    expect(apart.dispatches - fused.dispatches, 'dispatches saved').to.equal(2);
    expect(fused.planned, 'planned bytes: the output gradients live over the outputs').to.be.lessThan(apart.planned);
    expectSameBits(fused.after, apart.after);
  });

  it('where the next layer\'s update is fused into its dW, its dx (which then runs first, while x is still needed) applies the derivative beside x: three steps bit for bit, one pass fewer', async () => {
    for (const act of ['tanh', 'relu', 'sigmoid'] as const) {
      // 12 columns: whole quads (dx as vec4s); 10: float by float.
      for (const units of [12, 10]) {
        const denseNet = () => sequential([6], [dense({ units: 8, activation: act }), dense({ units })], { name: 'update fused' });
        const fused = await train(ctx, denseNet(), adam, {});
        const apart = await train(ctx, denseNet(), adam, { fuseActivationGrads: false });
        const what = `${act}, ${units} units`;
        expect(fused.fused.filter((l) => l.startsWith('dense_1/dW')), `${what}: the second layer's update in its dW`).to.have.length(1);
        expect(derivativePasses(fused.labels), `${what}: no derivative pass`).to.deep.equal([]);
        expect(fused.labels.indexOf(`dense_1/dx (⊙ ${act}')`), `${what}: dx applies it, before the dW`).to.be.within(0, fused.labels.findIndex((l) => l.startsWith('dense_1/dW')));
        expect(apart.dispatches - fused.dispatches, `${what}: dispatches saved`).to.equal(1);
        expectSameBits(fused.after, apart.after);
      }
    }
  });

  it('leaves the derivative to the conv where its output has two readers (its gradient has two parts)', async () => {
    const x = input([6, 6, 2]);
    const a = conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x);
    const pooled = add([maxPool2d().apply(a), avgPool2d().apply(a)]);
    const twoReaders = () => model({ inputs: x, outputs: dense({ units: 4 }).apply(flatten().apply(pooled)), name: 'two readers' });
    const fused = await train(ctx, twoReaders(), adam, {}, 2);
    const apart = await train(ctx, twoReaders(), adam, { fuseActivationGrads: false }, 2);
    expect(derivativePasses(fused.labels), 'the conv still applies relu\'').to.have.length(1);
    expect(fused.dispatches).to.equal(apart.dispatches);
    expectSameBits(fused.after, apart.after);
  });
});

describe('a classifier\'s accuracy counted by its softmax cross-entropy (src/graph/fuse-accuracy.ts)', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  const adam: OptimizerConfig = { kind: 'adam', lr: 0.02 };

  it('three steps bit for bit (weights, loss, its running sum, the correct count, the predictions), with the accuracy\'s op and dispatch gone', async () => {
    const net = () => sequential([6], [dense({ units: 8, activation: 'relu' }), dense({ units: 4 })], { name: 'classifier' });
    // The step counter advanced in a dispatch of its own in both: an accuracy op after the loss
    // would keep the loss from advancing it, and only the accuracy's dispatch is counted here.
    const fused = await train(ctx, net(), adam, { advanceStepInLoss: false });
    const apart = await train(ctx, net(), adam, { fuseAccuracy: false, advanceStepInLoss: false });
    expect(apart.ops, 'without fusing').to.include('accuracy');
    expect(fused.ops, 'fused').not.to.include('accuracy');
    expect(fused.labels.filter((l) => l.startsWith('xent')), 'fused: rows, mean and count in one dispatch').to.deep.equal(['xent']);
    expect(apart.dispatches - fused.dispatches, 'dispatches saved').to.equal(1);
    expect(fused.metrics).to.deep.equal(apart.metrics);
    expect(fused.metrics[2].correct[0], 'the count is of 3 batches of 5').to.be.within(1, 14);
    expectSameBits(fused.after, apart.after);
  });

  it('leaves the accuracy an op of its own under a mean squared error', async () => {
    const net = () => sequential([6], [dense({ units: 4, activation: 'softmax' })], { name: 'mse classifier', loss: 'mean_squared_error' });
    const fused = await train(ctx, net(), adam, {}, 1);
    expect(fused.ops).to.include('accuracy');
  });
});

describe('the step counter advanced by the loss\'s kernel (LowerEnv.stepAdvance)', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  const adam: OptimizerConfig = { kind: 'adam', lr: 0.02 };

  it('three steps with dropout and Adam bit for bit as with the counter\'s own dispatch, which is gone; the counter ends at 3 both ways', async () => {
    const net = () => sequential([6], [dense({ units: 8, activation: 'relu' }), dropout({ rate: 0.3 }), dense({ units: 4 })], { name: 'classifier' });
    const inLoss = await train(ctx, net(), adam, {});
    const apart = await train(ctx, net(), adam, { advanceStepInLoss: false });
    expect(apart.ops, 'a dispatch of its own').to.include('step counter');
    expect(inLoss.ops, 'in the loss').not.to.include('step counter');
    expect(apart.dispatches - inLoss.dispatches, 'dispatches saved').to.equal(1);
    expect([inLoss.counter, apart.counter], 'the counter after three steps').to.deep.equal([3, 3]);
    expect(inLoss.metrics).to.deep.equal(apart.metrics);
    expectSameBits(inLoss.after, apart.after);
  });

  it('stays a dispatch of its own under a mean squared error', async () => {
    const net = () => sequential([6], [dense({ units: 4, activation: 'softmax' })], { name: 'mse classifier', loss: 'mean_squared_error' });
    const run = await train(ctx, net(), adam, {}, 1);
    expect(run.ops).to.include('step counter');
    expect(run.counter).to.equal(1);
  });
});
