// Learning-rate schedules, global-norm clipping, weight decay (SGD, Adam L2, AdamW) and label
// smoothing, each against a float64 CPU twin written from its formula (test/ref/train-control.ts).
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { expectClose, gradCheck, randomArray, relError, rng } from './support/cpu.js';
import { adamwRef, clipRef, scheduleRef, sgdDecayRef, type ScheduleRef } from './ref/train-control.js';
import { softmaxXentRef } from './ref/softmax-xent.js';
import { prepareLrSchedule, prepareGlobalNormClip, clipPartials, CONTROL_SIZE, type ClipSource } from '../src/kernels/train-control.js';
import { prepareAdam, prepareSgd } from '../src/kernels/optimizer.js';
import { prepareSoftmaxXent } from '../src/kernels/softmax-xent.js';
import { createStepCounter, prepareStepIncrement } from '../src/kernels/step.js';
import { runDispatches, type Dispatch } from '../src/gpu/dispatch.js';
import { CompiledGraph, type OptimizerConfig } from '../src/graph/recorder.js';
import { decaysByDefault } from '../src/graph/train-control.js';
import { ParamStore } from '../src/nn/params.js';
import { sequential } from '../src/nn/model.js';
import { dense } from '../src/nn/layers.js';
import type { GpuContext } from '../src/gpu/context.js';

const notes: string[] = [];
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);

/** 20 step numbers: the first steps, the warm-up and decay boundaries, and far beyond the cosine's end. */
const STEPS = [0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 19, 20, 21, 49, 50, 99, 100, 101, 500, 1000];

const SCHEDULE_CASES: ScheduleRef[] = [
  { kind: 'constant' },
  { kind: 'step', decaySteps: 10, decayRate: 0.5 },
  { kind: 'exponential', decaySteps: 7, decayRate: 0.9 },
  { kind: 'cosine', decaySteps: 100, minLr: 1e-3 },
];

describe('training control (shaders/train_control.wgsl, weight decay in shaders/optimizer.wgsl) against float64', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  after(() => { if (process.env.SHOW_ERRORS) console.log(notes.join('\n')); });

  for (const base of SCHEDULE_CASES) {
    for (const warmup of [0, 5]) {
      const s = { ...base, warmup };
      it(`${s.kind} schedule${warmup ? ' with a 5-step warm-up' : ''}: the learning rate at ${STEPS.length} step numbers`, async () => {
        const lr = 0.1;
        const step = createStepCounter(ctx, 0);
        const control = ctx.storage(4 * CONTROL_SIZE);
        const d = prepareLrSchedule(ctx, { lr, schedule: s }, { step, control });
        const got: number[] = [];
        for (const t of STEPS) {
          ctx.write(step, new Uint32Array([t]));
          ctx.poison(control);
          await runDispatches(ctx, [d]);
          got.push((await ctx.readF32(control, 1))[0]);
        }
        ctx.release(step);
        ctx.release(control);
        const ref = STEPS.map((t) => scheduleRef(lr, s, t));
        notes.push(`${s.kind} warm-up ${warmup}: ${relError(got, ref).toExponential(2)}`);
        expectClose(got, ref, 1e-5, `${s.kind} warm-up ${warmup} learning rates`);
        // each value on its own too: a rate near the cosine's minimum is not hidden by the large ones
        got.forEach((v, i) => expect(Math.abs(v - ref[i]), `step ${STEPS[i]}: ${v} vs ${ref[i]}`).to.be.at.most(1e-5 * ref[i]));
      });
    }
  }

  /** Gradients of several sizes, one a slice at an offset of a shared buffer; then clipping and SGD. */
  async function clippedSgd(clipOf: (norm: number) => number, seed: number) {
    const rand = rng(seed);
    const sizes = [7, 1000, 30001];
    const grads = sizes.map((n) => randomArray(n, rand));
    const params = sizes.map((n) => randomArray(n, rand));
    const norm = clipRef(grads, Infinity).norm;
    const clipNorm = clipOf(norm);
    // the second gradient lives 13 elements into a buffer
    const gBufs = grads.map((g, i) => (i === 1 ? ctx.upload(Float32Array.from([...new Array(13).fill(99), ...g])) : ctx.upload(g)));
    const sources: ClipSource[] = grads.map((g, i) => ({ buffer: gBufs[i], offset: i === 1 ? 13 : 0, n: g.length }));
    const pBufs = params.map((p) => ctx.upload(p));
    const plainBufs = params.map((p) => ctx.upload(p));
    const control = ctx.upload(new Float32Array([NaN, NaN, NaN, NaN]));
    const partials = ctx.storage(4 * clipPartials(sizes));
    ctx.poison(partials);
    const lr = 0.5;
    const ds: Dispatch[] = [
      ...prepareGlobalNormClip(ctx, { clipNorm }, sources, { partials, control }),
      ...sizes.map((n, i) => prepareSgd(ctx, { n, lr, clipped: true, gradOffset: sources[i].offset }, { param: pBufs[i], grad: gBufs[i], control })),
      // the same update without clipping, for the "no change" case
      ...sizes.map((n, i) => prepareSgd(ctx, { n, lr, gradOffset: sources[i].offset }, { param: plainBufs[i], grad: gBufs[i] })),
    ];
    await runDispatches(ctx, ds);
    const got = await Promise.all(pBufs.map((b, i) => ctx.readF32(b, sizes[i])));
    const plain = await Promise.all(plainBufs.map((b, i) => ctx.readF32(b, sizes[i])));
    const c = await ctx.readF32(control, CONTROL_SIZE);
    for (const b of [...gBufs, ...pBufs, ...plainBufs, control, partials]) ctx.release(b);
    const ref = clipRef(grads, clipNorm);
    const want = params.map((p, i) => {
      const r = f64(p);
      sgdDecayRef(r, grads[i], lr, 0, ref.scale);
      return r;
    });
    return { got, plain, want, control: c, ref, clipNorm };
  }

  it('clipping by global norm: a norm above the threshold scales every gradient (SGD update against CPU clipping)', async () => {
    const r = await clippedSgd((norm) => norm / 3, 1);
    expectClose([r.control[2]], [r.ref.norm], 1e-5, 'global norm');
    expectClose([r.control[1]], [r.ref.scale], 1e-5, 'clip scale');
    expect(r.ref.scale).to.be.closeTo(1 / 3, 1e-9);
    r.got.forEach((g, i) => expectClose(g, r.want[i], 1e-5, `clipped update of gradient ${i}`));
    // and clipping did change the update: the unclipped one is far from it
    expect(relError(r.plain[2], r.want[2]), 'the unclipped update differs').to.be.greaterThan(1e-3);
    notes.push(`clip above: norm ${r.ref.norm.toFixed(4)}, scale ${r.control[1]}, update ${relError(r.got[2], r.want[2]).toExponential(2)}`);
  });

  it('clipping by global norm: a norm below the threshold leaves the update unchanged (scale exactly 1)', async () => {
    const r = await clippedSgd((norm) => norm * 1.5, 2);
    expect(r.control[1], 'clip scale').to.equal(1);
    expectClose([r.control[2]], [r.ref.norm], 1e-5, 'global norm');
    r.got.forEach((g, i) => {
      expect(Array.from(g), `update of gradient ${i} equals the unclipped one bit for bit`).to.deep.equal(Array.from(r.plain[i]));
      expectClose(g, r.want[i], 1e-5, `update of gradient ${i}`);
    });
  });

  /**
   * `steps` optimizer steps on fresh random gradients, each step as the trainer encodes it: the
   * schedule writes the rate, clipping its scale, the update reads both, the counter advances.
   */
  async function run100(n: number, seed: number, kind: 'adamw' | 'adam-l2' | 'sgd' | 'momentum', steps = 100) {
    const rand = rng(seed);
    const lr = kind === 'sgd' || kind === 'momentum' ? 0.05 : 0.01;
    const wd = 0.1;
    const schedule = { kind: 'cosine' as const, decaySteps: 80, minLr: lr / 10, warmup: 10 };
    // gradients uniform in [-a, a], a in [0.4, 1.6), have norm ≈ a·sqrt(n/3): this clips about half the steps
    const clipNorm = Math.sqrt(n / 3);
    const p = randomArray(n, rand);
    const grads = Array.from({ length: steps }, () => randomArray(n, rand, 0.4 + 1.2 * rand()));
    const adam = kind === 'adamw' || kind === 'adam-l2';
    const bufs = {
      param: ctx.upload(p), grad: ctx.storage(4 * n), m: ctx.storage(4 * n), v: ctx.storage(4 * n), accum: ctx.storage(4 * n),
      step: createStepCounter(ctx, 0), control: ctx.upload(new Float32Array([NaN, NaN, NaN, NaN])), partials: ctx.storage(4 * clipPartials([n])),
    };
    for (const b of [bufs.m, bufs.v, bufs.accum]) ctx.write(b, new Float32Array(n));
    const update = adam
      ? prepareAdam(ctx, { n, lr, weightDecay: wd, decoupled: kind === 'adamw', scheduled: true, clipped: true }, bufs)
      : prepareSgd(ctx, { n, lr, weightDecay: wd, momentum: kind === 'momentum' ? 0.9 : undefined, scheduled: true, clipped: true }, bufs);
    const ds = [
      prepareLrSchedule(ctx, { lr, schedule }, bufs),
      ...prepareGlobalNormClip(ctx, { clipNorm }, [{ buffer: bufs.grad, offset: 0, n }], bufs),
      update,
      prepareStepIncrement(ctx, {}, { counter: bufs.step }),
    ];
    const ref = { p: f64(p), m: new Float64Array(n), v: new Float64Array(n), a: new Float64Array(n) };
    let clipped = 0;
    for (let t = 0; t < steps; t++) {
      ctx.write(bufs.grad, grads[t]);
      await runDispatches(ctx, ds);
      const lrT = scheduleRef(lr, schedule, t);
      const { scale } = clipRef([grads[t]], clipNorm);
      if (scale < 1) clipped++;
      if (adam) adamwRef(ref.p, grads[t], ref.m, ref.v, t + 1, { lr: lrT, wd, scale, l2: kind === 'adam-l2' });
      else sgdDecayRef(ref.p, grads[t], lrT, wd, scale, kind === 'momentum' ? { a: ref.a, mu: 0.9 } : undefined);
    }
    const got = { p: await ctx.readF32(bufs.param, n), m: await ctx.readF32(bufs.m, n), v: await ctx.readF32(bufs.v, n), a: await ctx.readF32(bufs.accum, n) };
    for (const b of Object.values(bufs)) ctx.release(b);
    return { got, ref, clipped };
  }

  for (const kind of ['adamw', 'adam-l2', 'sgd', 'momentum'] as const) {
    const title = { adamw: 'AdamW (decoupled weight decay)', 'adam-l2': 'Adam with L2 weight decay', sgd: 'SGD with weight decay', momentum: 'SGD with momentum and weight decay' }[kind];
    it(`${title} over 100 steps with cosine decay after warm-up and clipping, against the CPU`, async () => {
      for (const [n, seed] of [[7, 11], [1000, 12]]) { // 7: the scalar Adam kernel; 1000: adam4
        const { got, ref, clipped } = await run100(n, seed, kind);
        expect(clipped, 'steps that clipped').to.be.within(10, 90);
        expectClose(got.p, ref.p, 1e-5, `${kind} n=${n} parameters after 100 steps`);
        if (kind === 'adamw' || kind === 'adam-l2') {
          expectClose(got.m, ref.m, 1e-5, `${kind} n=${n} m`);
          expectClose(got.v, ref.v, 1e-5, `${kind} n=${n} v`);
        }
        if (kind === 'momentum') expectClose(got.a, ref.a, 1e-5, `${kind} n=${n} momentum`);
        notes.push(`${kind} n=${n}, 100 steps (${clipped} clipped): params ${relError(got.p, ref.p).toExponential(2)}`);
      }
    });
  }

  it('label smoothing: loss and gradient of the fused softmax cross-entropy against float64', async () => {
    let seed = 40;
    for (const [B, C, eps] of [[1, 2, 0.1], [7, 3, 0.2], [50, 10, 0.1], [13, 1000, 0.05], [3, 1, 0.3], [100, 10, 0.9]] as [number, number, number][]) {
      const rand = rng(seed++);
      const logits = randomArray(B * C, rand, 3);
      const labels = Uint32Array.from({ length: B }, () => Math.min(C - 1, Math.floor(rand() * C)));
      const bufs = { logits: ctx.upload(logits), labels: ctx.upload(labels), loss: ctx.storage(4 * B), dlogits: ctx.storage(4 * B * C), meanLoss: ctx.storage(4) };
      for (const b of [bufs.loss, bufs.dlogits, bufs.meanLoss]) ctx.poison(b);
      await runDispatches(ctx, prepareSoftmaxXent(ctx, { batch: B, classes: C, labelSmoothing: eps }, bufs));
      const got = { loss: await ctx.readF32(bufs.loss, B), grad: await ctx.readF32(bufs.dlogits, B * C), mean: (await ctx.readF32(bufs.meanLoss, 1))[0] };
      for (const b of Object.values(bufs)) ctx.release(b);
      const ref = softmaxXentRef(logits, labels, B, C, eps);
      const what = `[${B},${C}] ε ${eps}`;
      expectClose(got.loss, ref.loss, 1e-5, `${what} loss`);
      expectClose([got.mean], [ref.mean], 1e-5, `${what} mean loss`);
      expectClose(got.grad, ref.grad, 1e-4, `${what} dlogits`);
      // smoothing changed them: the unsmoothed loss is another number
      if (C > 1) expect(relError(got.loss, softmaxXentRef(logits, labels, B, C).loss), `${what}: differs from the unsmoothed loss`).to.be.greaterThan(1e-3);
      notes.push(`${what}: loss ${relError(got.loss, ref.loss).toExponential(2)}, dlogits ${relError(got.grad, ref.grad).toExponential(2)}`);
    }
  });

  it('label smoothing: the CPU twin\'s gradient passes a finite-difference check (float64)', () => {
    let seed = 60;
    for (const [B, C, eps] of [[1, 2, 0.1], [3, 4, 0.2], [5, 10, 0.1], [2, 1, 0.5]] as [number, number, number][]) {
      const rand = rng(seed++);
      const x = Float64Array.from(randomArray(B * C, rand, 3));
      const labels = Uint32Array.from({ length: B }, () => Math.min(C - 1, Math.floor(rand() * C)));
      const e = gradCheck((v) => softmaxXentRef(v, labels, B, C, eps).mean, x, softmaxXentRef(x, labels, B, C, eps).grad);
      expect(e, `gradCheck [${B},${C}] ε ${eps}`).to.be.lessThan(1e-6);
    }
  });

  it('through the recorder: one AdamW step with a schedule, clipping and the default decay groups equals the CPU update from the step\'s own gradients', async () => {
    const model = sequential([6], [dense({ units: 5, activation: 'tanh' }), dense({ units: 4 })], { name: 'tiny' });
    const B = 3;
    const rand = rng(70);
    const x = Float32Array.from({ length: B * 6 }, () => rand() * 2 - 1);
    const labels = Uint32Array.from({ length: B }, () => Math.floor(rand() * 4));
    const startStep = 7; // schedule t = 7 (in the warm-up), Adam t = 8
    const opt: OptimizerConfig = { kind: 'adamw', lr: 0.05, weightDecay: 0.3, schedule: { kind: 'cosine', decaySteps: 20, warmup: 10 }, clipNorm: 0.05 };

    /** Runs one step of `model` compiled with `opts` on the batch; returns the parameters before and after, and the gradients (gradientsOnly). */
    async function once(compile: { optimizer?: OptimizerConfig; gradientsOnly?: boolean }) {
      const store = new ParamStore(ctx, 5);
      const stepCounter = createStepCounter(ctx, startStep);
      const net = model.build(store, B, true, 5);
      const g = new CompiledGraph(ctx, net.graph, { loss: net.loss, stepCounter, incrementStep: true, ...compile });
      try {
        await g.ready();
        // random values everywhere, biases too (they start at zero, where decay would change nothing)
        net.graph.tensors.filter((t) => t.role === 'param').forEach((p, i) => store.write(p.name, randomArray(p.size, rng(100 + i), 0.5)));
        const before = await store.read();
        ctx.write(g.bufferOf(net.x), x);
        ctx.write(g.bufferOf(net.labels), labels);
        const enc = ctx.device.createCommandEncoder();
        g.encode(enc);
        ctx.device.queue.submit([enc.finish()]);
        await ctx.wait(() => ctx.device.queue.onSubmittedWorkDone());
        const after = await store.read();
        const grads: Record<string, Float32Array> = {};
        const params = net.graph.tensors.filter((t) => t.role === 'param');
        if (compile.gradientsOnly) for (const p of params) grads[p.name] = await ctx.readF32(g.bufferOf(g.gradientOf(p)), p.size);
        const shapes = Object.fromEntries(params.map((p) => [p.name, p.shape]));
        const control = g.control ? await ctx.readF32(g.control, CONTROL_SIZE) : undefined;
        return { before, after, grads, shapes, control };
      } finally {
        g.destroy();
        store.destroy();
        ctx.release(stepCounter);
      }
    }
    const base = await once({ gradientsOnly: true });
    const stepped = await once({ optimizer: opt });
    const names = Object.keys(base.grads);
    expect(names.length, 'parameters').to.equal(4);
    const { norm, scale } = clipRef(names.map((k) => base.grads[k]), opt.clipNorm!);
    expect(scale, 'the step clips').to.be.lessThan(0.9);
    const lrT = scheduleRef(opt.lr, opt.schedule!, startStep);
    expectClose([stepped.control![0]], [lrT], 1e-5, 'scheduled learning rate');
    expectClose([stepped.control![2]], [norm], 1e-5, 'global norm over all gradients');
    let decayed = 0;
    for (const k of names) {
      const decays = decaysByDefault({ name: k, shape: stepped.shapes[k] });
      if (decays) decayed++;
      const p = f64(base.before[k].data);
      adamwRef(p, base.grads[k], new Float64Array(p.length), new Float64Array(p.length), startStep + 1, { lr: lrT, wd: decays ? opt.weightDecay! : 0, scale });
      expectClose(stepped.after[k].data, p, 1e-5, `${k} after the step`);
    }
    expect(decayed, 'weight matrices decay, biases do not').to.equal(2);
  });
});
