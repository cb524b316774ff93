import { expect } from 'chai';
import { expectEachClose, worstElementError } from './support/per-element.js';
import { testContext } from './support/gpu.js';
import { gradCheck, randomArray, relError, rng } from './support/cpu.js';
import { mseRef } from './ref/mse.js';
import { prepareMse } from '../src/kernels/mse.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

// B·D odd runs the scalar pass, a multiple of 4 the vec4 one; the large shapes loop many times per invocation (the pass has at most 32 workgroups).
const SHAPES: [number, number][] = [[1, 1], [3, 1], [1, 7], [7, 3], [50, 10], [13, 1000], [55000, 10], [3, 100001]];
const notes: string[] = [];

describe('mean squared error (shaders/mse.wgsl) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  after(() => { if (process.env.SHOW_ERRORS) console.log(notes.join('\n')); });

  /** Runs the two dispatches `repeat` times (one submit) and returns what they wrote. */
  async function run(pred: Float32Array, target: Float32Array, B: number, D: number, o: { lossSum0?: number; repeat?: number } = {}) {
    const n = B * D;
    const bufs = {
      pred: ctx.upload(pred), target: ctx.upload(target), dpred: ctx.storage(n * 4), meanLoss: ctx.storage(4),
      lossSum: o.lossSum0 !== undefined ? ctx.upload(new Float32Array([o.lossSum0])) : undefined,
    };
    ctx.poison(bufs.dpred); ctx.poison(bufs.meanLoss);
    const ds = prepareMse(ctx, { batch: B, dim: D, accumulateLoss: o.lossSum0 !== undefined }, bufs);
    await runDispatches(ctx, Array.from({ length: o.repeat ?? 1 }, () => ds).flat());
    const out = {
      grad: await ctx.readF32(bufs.dpred, n),
      mean: (await ctx.readF32(bufs.meanLoss, 1))[0],
      lossSum: bufs.lossSum ? (await ctx.readF32(bufs.lossSum, 1))[0] : NaN,
    };
    for (const b of Object.values(bufs)) if (b) ctx.release(b);
    return out;
  }

  it(`mean loss and gradient on ${SHAPES.length} shapes`, async () => {
    let seed = 1;
    for (const [B, D] of SHAPES) {
      const rand = rng(seed++);
      const pred = randomArray(B * D, rand, 3), target = randomArray(B * D, rand, 3);
      const got = await run(pred, target, B, D);
      const ref = mseRef(pred, target);
      const what = `[${B},${D}]`;
      expectEachClose([got.mean], [ref.mean], 1e-5, `${what} mean loss`);
      expectEachClose(got.grad, ref.grad, 1e-4, `${what} dpred`);
      const worst = worstElementError(got.grad, ref.grad).error;
      notes.push(`${what}: mean ${relError([got.mean], [ref.mean]).toExponential(2)}, dpred ${relError(got.grad, ref.grad).toExponential(2)} (worst element ${worst.toExponential(2)})`);
    }
  });

  it('pred equal to target gives loss 0 and gradient 0', async () => {
    const x = randomArray(35, rng(10));
    const got = await run(x, x, 5, 7);
    expect(got.mean).to.equal(0);
    expect(Array.from(got.grad).every((v) => v === 0)).to.equal(true);
  });

  it('accumulates the mean loss into a running sum on the GPU', async () => {
    for (const [B, D] of [[100, 10], [9, 3]] as [number, number][]) {
      const rand = rng(40 + D);
      const pred = randomArray(B * D, rand, 3), target = randomArray(B * D, rand, 3);
      const got = await run(pred, target, B, D, { lossSum0: 0.25, repeat: 3 });
      const ref = mseRef(pred, target);
      expectEachClose([got.lossSum], [0.25 + 3 * ref.mean], 1e-5, `[${B},${D}] running loss sum`);
      expectEachClose([got.mean], [ref.mean], 1e-5, `[${B},${D}] mean loss`);
    }
  });

  it('gives the same loss, bit for bit, on every run (fixed reduction order)', async () => {
    const B = 3000, D = 7;
    const rand = rng(50);
    const pred = randomArray(B * D, rand, 3), target = randomArray(B * D, rand, 3);
    const means = new Set<number>();
    for (let i = 0; i < 3; i++) means.add((await run(pred, target, B, D)).mean);
    expect(means.size).to.equal(1);
  });

  it('CPU gradient twin passes a finite-difference check (float64)', () => {
    let seed = 60;
    for (const [B, D] of [[1, 1], [3, 4], [5, 2], [2, 9]] as [number, number][]) {
      const rand = rng(seed++);
      const pred = Float64Array.from(randomArray(B * D, rand, 3));
      const target = randomArray(B * D, rand, 3);
      const e = gradCheck((v) => mseRef(v, target).mean, pred, mseRef(pred, target).grad);
      notes.push(`gradCheck [${B},${D}]: ${e.toExponential(2)}`);
      expect(e, `gradCheck [${B},${D}]`).to.be.lessThan(1e-6);
    }
  });

  it('rejects bad shapes, aliased buffers and a missing lossSum with messages naming the op', () => {
    const b = ctx.storage(16), c = ctx.storage(16);
    const bufs = { pred: b, target: b, dpred: c, meanLoss: c };
    expect(() => prepareMse(ctx, { batch: 0, dim: 3 }, bufs)).to.throw(/mean squared error \[0,3\]: batch must be a positive integer/);
    expect(() => prepareMse(ctx, { batch: 2, dim: 3 }, bufs)).to.throw(/buffer pred has 16 bytes, needs 24/);
    expect(() => prepareMse(ctx, { batch: 1, dim: 1, accumulateLoss: true }, bufs)).to.throw(/accumulateLoss needs a lossSum buffer/);
    expect(() => prepareMse(ctx, { batch: 1, dim: 1 }, { ...bufs, dpred: b })).to.throw(/dpred must differ from pred and target/);
    ctx.release(b); ctx.release(c);
  });
});
