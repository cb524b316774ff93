import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { expectClose, randomArray, randomBetween, relError, rng } from './support/cpu.js';
import { adamRef, momentumRef, sgdRef } from './ref/optimizer.js';
import { prepareAdam, prepareSgd } from '../src/kernels/optimizer.js';
import { createStepCounter, prepareStepIncrement } from '../src/kernels/step.js';
import { matmul } from '../src/kernels/matmul.js';
import { runDispatches, type Dispatch } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

const SIZES = [1, 7, 1000, 100 * 256, 55000 * 10]; // 1 and 7: the scalar Adam kernel; the others: adam4
const notes: string[] = [];
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);

describe('optimizers (shaders/optimizer.wgsl) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  after(() => { if (process.env.SHOW_ERRORS) console.log(notes.join('\n')); });

  it(`SGD p −= lr·g on ${SIZES.length} sizes`, async () => {
    let seed = 1;
    for (const n of SIZES) {
      const rand = rng(seed++);
      const p = randomArray(n, rand), g = randomArray(n, rand);
      const bp = ctx.upload(p), bg = ctx.upload(g);
      await runDispatches(ctx, [prepareSgd(ctx, { n, lr: 0.7 }, { param: bp, grad: bg })]);
      const got = await ctx.readF32(bp, n);
      const ref = f64(p);
      sgdRef(ref, g, 0.7);
      ctx.release(bp); ctx.release(bg);
      expectClose(got, ref, 1e-5, `sgd n=${n}`);
      notes.push(`sgd n=${n}: ${relError(got, ref).toExponential(2)}`);
    }
  });

  for (const nesterov of [false, true]) {
    it(`${nesterov ? 'Nesterov momentum' : 'momentum'} (TF MomentumOptimizer), 3 steps, on ${SIZES.length} sizes`, async () => {
      let seed = nesterov ? 20 : 10;
      for (const n of SIZES) {
        const rand = rng(seed++);
        const p = randomArray(n, rand), a = randomArray(n, rand);
        const grads = [0, 1, 2].map(() => randomArray(n, rand));
        const bp = ctx.upload(p), ba = ctx.upload(a), bgs = grads.map((g) => ctx.upload(g));
        const ds = bgs.map((bg) => prepareSgd(ctx, { n, lr: 0.3, momentum: 0.9, nesterov }, { param: bp, grad: bg, accum: ba }));
        await runDispatches(ctx, ds);
        const gotP = await ctx.readF32(bp, n), gotA = await ctx.readF32(ba, n);
        const refP = f64(p), refA = f64(a);
        for (const g of grads) momentumRef(refP, g, refA, 0.3, 0.9, nesterov);
        for (const b of [bp, ba, ...bgs]) ctx.release(b);
        expectClose(gotP, refP, 1e-5, `momentum n=${n} param`);
        expectClose(gotA, refA, 1e-5, `momentum n=${n} accum`);
        notes.push(`${nesterov ? 'nesterov' : 'momentum'} n=${n}: param ${relError(gotP, refP).toExponential(2)}, accum ${relError(gotA, refA).toExponential(2)}`);
      }
    });
  }

  /** One Adam update at step t (counter t − 1, stepOffset 1) on random state; returns the GPU results. */
  async function adamOnce(n: number, t: number, seed: number, zeroParam: boolean) {
    const rand = rng(seed);
    const p = zeroParam ? new Float32Array(n) : randomArray(n, rand);
    const g = randomArray(n, rand);
    const m = randomArray(n, rand, 0.5);
    const v = randomBetween(n, rand, 1e-4, 1);
    const bufs = { param: ctx.upload(p), grad: ctx.upload(g), m: ctx.upload(m), v: ctx.upload(v), step: createStepCounter(ctx, t - 1) };
    const lr = 0.3;
    await runDispatches(ctx, [prepareAdam(ctx, { n, lr }, bufs)]);
    const got = { p: await ctx.readF32(bufs.param, n), m: await ctx.readF32(bufs.m, n), v: await ctx.readF32(bufs.v, n) };
    for (const b of Object.values(bufs)) ctx.release(b);
    const ref = { p: f64(p), m: f64(m), v: f64(v) };
    adamRef(ref.p, g, ref.m, ref.v, t, { lr });
    return { got, ref };
  }

  it(`Adam (TF 1.x) one update at t = 1 … 20,000 on ${SIZES.length} sizes, t from the GPU step counter`, async () => {
    let seed = 30;
    for (const t of [1, 2, 10, 1000, 20000]) {
      for (const n of SIZES) {
        for (const zeroParam of [true, false]) {
          const { got, ref } = await adamOnce(n, t, seed++, zeroParam);
          const what = `adam t=${t} n=${n}${zeroParam ? ' (p = 0: the update itself)' : ''}`;
          expectClose(got.p, ref.p, 1e-5, `${what} param`);
          expectClose(got.m, ref.m, 1e-5, `${what} m`);
          expectClose(got.v, ref.v, 1e-5, `${what} v`);
          notes.push(`${what}: param ${relError(got.p, ref.p).toExponential(2)}, m ${relError(got.m, ref.m).toExponential(2)}, v ${relError(got.v, ref.v).toExponential(2)}`);
        }
      }
    }
  });

  it('Adam: 100 steps on a fixed quadratic (gradient by matmul on the GPU) match float64 Adam to 1e-5', async () => {
    // f(p) = ½ pᵀHp + bᵀp with H symmetric positive definite; g = pH + b by matmul [1,n]·[n,n] + bias.
    for (const [n, seed] of [[37, 40], [300, 41]]) {
      const rand = rng(seed);
      const A = randomArray(n * n, rand);
      const H = new Float32Array(n * n);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let k = 0; k < n; k++) s += A[k * n + i] * A[k * n + j];
          const h = s / n + (i === j ? 1 : 0);
          H[i * n + j] = h; H[j * n + i] = h;
        }
      }
      const c = Float32Array.from({ length: n }, () => (rand() < 0.5 ? -1 : 1) * (3 + 2 * rand())); // the minimiser
      const b = new Float32Array(n);
      for (let i = 0; i < n; i++) { let s = 0; for (let k = 0; k < n; k++) s += H[i * n + k] * c[k]; b[i] = -s; }
      const p0 = randomArray(n, rand);
      const lr = 0.02, steps = 100;
      const bufs = { param: ctx.upload(p0), grad: ctx.storage(n * 4), m: ctx.upload(new Float32Array(n)), v: ctx.upload(new Float32Array(n)), step: createStepCounter(ctx, 0) };
      const bh = ctx.upload(H), bb = ctx.upload(b);
      const gradD = matmul(ctx, { M: 1, N: n, K: n }, { a: bufs.param, b: bh, bias: bb, c: bufs.grad });
      const trainStep: Dispatch[] = [gradD, prepareAdam(ctx, { n, lr }, bufs), prepareStepIncrement(ctx, {}, { counter: bufs.step })];
      await runDispatches(ctx, Array.from({ length: steps }, () => trainStep).flat());
      const got = await ctx.readF32(bufs.param, n);
      expect((await ctx.readU32(bufs.step, 1))[0]).to.equal(steps);
      for (const x of [...Object.values(bufs), bh, bb]) ctx.release(x);

      const p = f64(p0), m = new Float64Array(n), v = new Float64Array(n), g = new Float64Array(n);
      for (let t = 1; t <= steps; t++) {
        for (let j = 0; j < n; j++) { let s = b[j]; for (let k = 0; k < n; k++) s += p[k] * H[k * n + j]; g[j] = s; }
        adamRef(p, g, m, v, t, { lr });
      }
      const moved = p.map((x, i) => x - p0[i]);
      const gotMoved = got.map((x, i) => x - p0[i]);
      notes.push(`adam 100 steps n=${n}: param rel. error ${relError(got, p).toExponential(2)}, displacement (‖Δp‖ = ${Math.hypot(...moved).toFixed(3)}) rel. error ${relError(gotMoved, moved).toExponential(2)}`);
      expectClose(got, p, 1e-5, `adam 100 steps n=${n} param`);
      expectClose(gotMoved, moved, 1e-5, `adam 100 steps n=${n} displacement`);
    }
  });

  it('updates a slice of buffers holding several tensors (offsets) and nothing else, scalar and vec4 paths', async () => {
    // [off, gradOffset, kernel]: slices not aligned to 4 floats take the scalar kernel, aligned ones adam4
    for (const [off, goff, entry] of [[13, 3, 'adam'], [12, 4, 'adam4']] as const) {
      const total = 50, n = 20;
      const rand = rng(50 + off);
      const p = randomArray(total, rand), g = randomArray(total, rand), m = randomArray(total, rand), v = randomBetween(total, rand, 0.1, 1);
      for (let i = 0; i < total; i++) if (i < off || i >= off + n) { p[i] = NaN; m[i] = NaN; v[i] = NaN; }
      const bufs = { param: ctx.upload(p), grad: ctx.upload(g), m: ctx.upload(m), v: ctx.upload(v), step: createStepCounter(ctx, 4) };
      const d = prepareAdam(ctx, { n, lr: 0.1, offset: off, gradOffset: goff }, bufs);
      expect(d.kernel.entry).to.equal(entry);
      await runDispatches(ctx, [d]);
      const got = { p: await ctx.readF32(bufs.param, total), m: await ctx.readF32(bufs.m, total), v: await ctx.readF32(bufs.v, total) };
      for (const b of Object.values(bufs)) ctx.release(b);
      const ref = { p: f64(p.slice(off, off + n)), m: f64(m.slice(off, off + n)), v: f64(v.slice(off, off + n)) };
      adamRef(ref.p, g.slice(goff, goff + n), ref.m, ref.v, 5, { lr: 0.1 });
      expectClose(got.p.slice(off, off + n), ref.p, 1e-5, `sliced ${entry} param`);
      expectClose(got.m.slice(off, off + n), ref.m, 1e-5, `sliced ${entry} m`);
      expectClose(got.v.slice(off, off + n), ref.v, 1e-5, `sliced ${entry} v`);
      for (const arr of [got.p, got.m, got.v]) {
        const touched = Array.from(arr).flatMap((x, i) => ((i >= off && i < off + n) || Number.isNaN(x) ? [] : [`[${i}] = ${x}`]));
        expect(touched, `${entry}: elements outside the slice untouched`).to.deep.equal([]);
      }
    }
  });

  it('rejects bad sizes, a missing accumulator and bad betas with messages naming the op', () => {
    const b = ctx.storage(16), c = ctx.storage(16), s = createStepCounter(ctx);
    expect(() => prepareSgd(ctx, { n: 5, lr: 0.1 }, { param: b, grad: c })).to.throw(/sgd \[5\]: buffer param has 16 bytes, needs 20/);
    expect(() => prepareSgd(ctx, { n: 2, lr: 0.1, momentum: 0.9 }, { param: b, grad: c })).to.throw(/momentum needs an accum buffer/);
    expect(() => prepareSgd(ctx, { n: 2, lr: 0.1 }, { param: b, grad: b })).to.throw(/must be different buffers/);
    expect(() => prepareAdam(ctx, { n: 2, lr: 0.1, beta2: 1 }, { param: b, grad: c, m: ctx.storage(16), v: ctx.storage(16), step: s })).to.throw(/adam \[2\]: beta2 must be in \(0, 1\)/);
    for (const x of [b, c, s]) ctx.release(x);
  });
});
