// The embedding lookup and its deterministic table gradient (src/kernels/embedding.ts over
// shaders/embedding.wgsl) against float64.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { dot, gradCheck, randomArray, rng } from './support/cpu.js';
import { expectEachClose } from './support/per-element.js';
import { embeddingBackwardRef, embeddingRef } from './ref/embedding.js';
import { embedding, embeddingBackward } from '../src/kernels/embedding.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

// positions n, width D, vocabulary V: one id, repeats (V < n), ids absent (V > n), odd sizes
const CASES: [number, number, number][] = [[1, 1, 1], [7, 3, 2], [33, 5, 100], [64 * 9, 8, 10], [1000, 17, 37], [301, 64, 3]];

describe('embedding lookup and gradient (shaders/embedding.wgsl) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  for (const [n, D, V] of CASES) {
    it(`${n} ids of ${V} into width ${D}: lookup, gradient, gradient +=, and the same bits twice`, async () => {
      const rand = rng(n * 7 + D * 3 + V);
      // skewed ids, so some rows gather many positions and others none
      const ids = Uint32Array.from({ length: n }, () => Math.floor(V * rand() ** 2));
      const table = randomArray(V * D, rand), dy = randomArray(n * D, rand), dt0 = randomArray(V * D, rand);
      const bids = ctx.upload(ids), bt = ctx.upload(table), by = ctx.storage(n * D * 4), bdy = ctx.upload(dy);
      const bdt = ctx.storage(V * D * 4), bdt2 = ctx.storage(V * D * 4), bacc = ctx.upload(dt0);
      for (const b of [by, bdt, bdt2]) ctx.poison(b);
      const spec = { n, dim: D, vocab: V };
      await runDispatches(ctx, [
        embedding(ctx, spec, { ids: bids, table: bt, y: by }),
        ...embeddingBackward(ctx, spec, { ids: bids, dy: bdy, dtable: bdt }),
        ...embeddingBackward(ctx, spec, { ids: bids, dy: bdy, dtable: bdt2 }),
        ...embeddingBackward(ctx, { ...spec, accumulate: true }, { ids: bids, dy: bdy, dtable: bacc }),
      ]);
      const y = await ctx.readF32(by, n * D);
      expect(Array.from(y)).to.deep.equal(Array.from(embeddingRef(ids, table, D), Math.fround), 'y: rows copied exactly');
      const dt = await ctx.readF32(bdt, V * D), dt2 = await ctx.readF32(bdt2, V * D);
      expectEachClose(dt, embeddingBackwardRef(ids, dy, V, D), 1e-4, 'dtable');
      expectEachClose(await ctx.readF32(bacc, V * D), embeddingBackwardRef(ids, dy, V, D, dt0), 1e-4, 'dtable +=');
      expect(Buffer.from(dt.buffer).equals(Buffer.from(dt2.buffer)), 'two runs give the same bits').to.equal(true);
      for (const b of [bids, bt, by, bdy, bdt, bdt2, bacc]) ctx.release(b);
    });
  }

  it('sums each id\'s rows in the order of the positions (float32, left to right)', async () => {
    // 1 + 1e-8·… : the order of float32 additions shows in the result
    const n = 6, D = 1, V = 2;
    const ids = Uint32Array.from([1, 0, 1, 1, 0, 1]);
    const dy = Float32Array.from([1e8, 1, 1, -1e8, 3, 1]);
    const bids = ctx.upload(ids), bdy = ctx.upload(dy), bdt = ctx.storage(V * 4);
    ctx.poison(bdt);
    await runDispatches(ctx, embeddingBackward(ctx, { n, dim: D, vocab: V }, { ids: bids, dy: bdy, dtable: bdt }));
    const got = await ctx.readF32(bdt, V);
    let s = Math.fround(0);
    for (const v of [1e8, 1, -1e8, 1]) s = Math.fround(s + Math.fround(v));
    expect(Array.from(got)).to.deep.equal([4, s]);
    for (const b of [bids, bdy, bdt]) ctx.release(b);
  });

  it('CPU gradient twin passes a finite-difference check (float64)', () => {
    const rand = rng(5);
    const ids = [2, 0, 2, 1, 2];
    const table = Float64Array.from(randomArray(3 * 4, rand));
    const w = randomArray(ids.length * 4, rand);
    expect(gradCheck((t) => dot(w, embeddingRef(ids, t, 4)), table, embeddingBackwardRef(ids, w, 3, 4))).to.be.lessThan(1e-6);
  });

  it('rejects bad shapes with messages naming the op', () => {
    const b = ctx.storage(16);
    expect(() => embedding(ctx, { n: 2, dim: 4, vocab: 3 }, { ids: b, table: b, y: b })).to.throw(/embedding \[2\] of \[3,4\]: buffer table has 16 bytes, needs 48/);
    ctx.release(b);
  });
});
