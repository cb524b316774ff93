import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { randomArray, rng } from './support/cpu.js';
import { argmaxRef, countCorrect, labelsNear, scoresWithTies } from './ref/argmax.js';
import { prepareArgmax } from '../src/kernels/argmax.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

const SHAPES: [number, number][] = [[1, 1], [1, 7], [7, 3], [50, 10], [100, 10], [13, 1000], [55000, 10], [10000, 10]];

describe('argmax and accuracy count (shaders/argmax.wgsl)', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  it(`predictions (first max on ties) and correct count on ${SHAPES.length} shapes`, async () => {
    let seed = 1;
    for (const [B, C] of SHAPES) {
      const rand = rng(seed++);
      const x = scoresWithTies(B, C, rand);
      const ref = argmaxRef(x, B, C);
      const labels = labelsNear(ref, C, rand);
      const bx = ctx.upload(x), bl = ctx.upload(labels), bp = ctx.storage(B * 4), bc = ctx.upload(new Uint32Array([7]));
      ctx.poison(bp);
      await runDispatches(ctx, [prepareArgmax(ctx, { batch: B, classes: C }, { x: bx, predictions: bp, labels: bl, correct: bc })]);
      const pred = await ctx.readU32(bp, B);
      const count = (await ctx.readU32(bc, 1))[0];
      for (const b of [bx, bl, bp, bc]) ctx.release(b);
      for (let r = 0; r < B; r++) if (pred[r] !== ref[r]) expect.fail(`[${B},${C}] row ${r}: predicted ${pred[r]}, expected ${ref[r]}`);
      expect(count, `[${B},${C}] correct count (+7 already in the counter)`).to.equal(7 + countCorrect(ref, labels));
    }
  });

  it('adds to the counter over several batches (one u32 read back for all)', async () => {
    const B = 100, C = 10, batches = 5;
    const rand = rng(20);
    const counter = ctx.upload(new Uint32Array([0]));
    const ds = [];
    let expected = 0;
    const bufs: GPUBuffer[] = [counter];
    for (let i = 0; i < batches; i++) {
      const x = randomArray(B * C, rand);
      const labels = labelsNear(argmaxRef(x, B, C), C, rand);
      expected += countCorrect(argmaxRef(x, B, C), labels);
      const bx = ctx.upload(x), bl = ctx.upload(labels), bp = ctx.storage(B * 4);
      bufs.push(bx, bl, bp);
      ds.push(prepareArgmax(ctx, { batch: B, classes: C }, { x: bx, predictions: bp, labels: bl, correct: counter }));
    }
    await runDispatches(ctx, ds);
    expect((await ctx.readU32(counter, 1))[0]).to.equal(expected);
    for (const b of bufs) ctx.release(b);
  });

  it('predictions only, without labels', async () => {
    const B = 777, C = 13;
    const x = randomArray(B * C, rng(30));
    const bx = ctx.upload(x), bp = ctx.storage(B * 4);
    ctx.poison(bp);
    await runDispatches(ctx, [prepareArgmax(ctx, { batch: B, classes: C }, { x: bx, predictions: bp })]);
    expect(Array.from(await ctx.readU32(bp, B))).to.deep.equal(Array.from(argmaxRef(x, B, C)));
    ctx.release(bx); ctx.release(bp);
  });

  it('rejects bad shapes and labels without a counter', () => {
    const b = ctx.storage(16);
    expect(() => prepareArgmax(ctx, { batch: 0, classes: 3 }, { x: b, predictions: b })).to.throw(/argmax \[0,3\]: batch must be a positive integer/);
    expect(() => prepareArgmax(ctx, { batch: 1, classes: 3 }, { x: b, predictions: b, labels: b })).to.throw(/labels and correct go together/);
    ctx.release(b);
  });
});
