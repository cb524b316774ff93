// Batch normalization and layer normalization (src/kernels/norm.ts over shaders/norm.wgsl) against float64.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { dot, gradCheck, randomArray, rng } from './support/cpu.js';
import { expectEachClose } from './support/per-element.js';
import { batchNormInferenceRef, normBackwardRef, normRef, runningUpdateRef } from './ref/norm.js';
import { batchNormInference, batchNormTrain, layerNorm, normBackward } from '../src/kernels/norm.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

// [rows, cols]: a dense batch, NHWC images viewed as [N·H·W, C], odd sizes, one row, one column.
const SHAPES: [number, number][] = [[1, 1], [2, 3], [7, 5], [33, 1], [1, 17], [64, 10], [3 * 9 * 7, 13], [2 * 28 * 28, 8], [129, 130]];
const EPS = 1e-3;

describe('batch and layer normalization (shaders/norm.wgsl) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  for (const kind of ['batch', 'layer'] as const) {
    for (const [R, C] of SHAPES) {
      // (one row in batch norm: every xhat is 0, y = β and dx = 0, which the [1, C] shapes check)
      for (const affine of [true, false]) {
        it(`${kind} norm [${R}, ${C}]${affine ? '' : ' without γ and β'}: forward, backward, and backward +=`, async () => {
          const rand = rng(R * 1000 + C + (affine ? 1 : 0));
          // an offset and scale per column, so the statistics matter
          const x = Float32Array.from({ length: R * C }, (_, i) => 3 * Math.sin(i % C) + (1 + (i % C) / C) * (rand() * 2 - 1));
          const gamma = affine ? randomArray(C, rand, 2) : undefined, beta = affine ? randomArray(C, rand) : undefined;
          const dy = randomArray(R * C, rand);
          const S = kind === 'batch' ? C : R;
          const bx = ctx.upload(x), by = ctx.storage(R * C * 4), bm = ctx.storage(S * 4), bi = ctx.storage(S * 4);
          const bg = gamma && ctx.upload(gamma), bb = beta && ctx.upload(beta);
          const bdy = ctx.upload(dy), bdx = ctx.storage(R * C * 4), bdg = ctx.storage(C * 4), bdb = ctx.storage(C * 4);
          const dx0 = randomArray(R * C, rand), dg0 = randomArray(C, rand), db0 = randomArray(C, rand);
          const adx = ctx.upload(dx0), adg = ctx.upload(dg0), adb = ctx.upload(db0);
          for (const b of [by, bm, bi, bdx, bdg, bdb]) ctx.poison(b);
          const spec = { rows: R, cols: C, epsilon: EPS };
          const forward = kind === 'batch'
            ? batchNormTrain(ctx, spec, { x: bx, y: by, mean: bm, invstd: bi, gamma: bg, beta: bb })
            : layerNorm(ctx, spec, { x: bx, y: by, mean: bm, invstd: bi, gamma: bg, beta: bb });
          const common = { x: bx, mean: bm, invstd: bi, dy: bdy, gamma: bg };
          await runDispatches(ctx, [
            ...forward,
            ...normBackward(ctx, kind, spec, { ...common, dx: bdx, dgamma: affine ? bdg : undefined, dbeta: affine ? bdb : undefined }),
            ...normBackward(ctx, kind, { ...spec, accumulate: { dx: true, dgamma: true, dbeta: true } }, { ...common, dx: adx, dgamma: adg, dbeta: adb }),
          ]);
          const ref = normRef(kind, x, R, C, EPS, gamma, beta);
          const back = normBackwardRef(kind, x, dy, R, C, EPS, gamma);
          expectEachClose(await ctx.readF32(by, R * C), ref.y, 1e-5, 'y');
          expectEachClose(await ctx.readF32(bm, S), ref.mean, 1e-5, 'mean');
          expectEachClose(await ctx.readF32(bi, S), ref.invstd, 1e-5, 'invstd');
          expectEachClose(await ctx.readF32(bdx, R * C), back.dx, 1e-4, 'dx');
          if (affine) {
            expectEachClose(await ctx.readF32(bdg, C), back.dgamma, 1e-4, 'dγ');
            expectEachClose(await ctx.readF32(bdb, C), back.dbeta, 1e-4, 'dβ');
          }
          expectEachClose(await ctx.readF32(adx, R * C), back.dx.map((v, i) => v + dx0[i]), 1e-4, 'dx +=');
          expectEachClose(await ctx.readF32(adg, C), back.dgamma.map((v, i) => v + dg0[i]), 1e-4, 'dγ +=');
          expectEachClose(await ctx.readF32(adb, C), back.dbeta.map((v, i) => v + db0[i]), 1e-4, 'dβ +=');
          for (const b of [bx, by, bm, bi, bg, bb, bdy, bdx, bdg, bdb, adx, adg, adb]) if (b) ctx.release(b);
        });
      }
    }
  }

  it('batch norm updates the running mean and variance with the momentum in the same pass, and evaluation reads them', async () => {
    const [R, C] = [3 * 5 * 5, 6];
    const rand = rng(91);
    const x = Float32Array.from({ length: R * C }, (_, i) => 2 + (i % C) + rand());
    const rm0 = randomArray(C, rand), rv0 = Float32Array.from({ length: C }, () => 0.5 + rand());
    const gamma = randomArray(C, rand), beta = randomArray(C, rand);
    const bx = ctx.upload(x), by = ctx.storage(R * C * 4), bm = ctx.storage(C * 4), bi = ctx.storage(C * 4);
    const rm = ctx.upload(rm0), rv = ctx.upload(rv0), bg = ctx.upload(gamma), bb = ctx.upload(beta), ye = ctx.storage(R * C * 4);
    ctx.poison(ye);
    const spec = { rows: R, cols: C, epsilon: EPS };
    await runDispatches(ctx, [
      ...batchNormTrain(ctx, { ...spec, momentum: 0.99 }, { x: bx, y: by, mean: bm, invstd: bi, gamma: bg, beta: bb, running: { mean: rm, variance: rv } }),
      batchNormInference(ctx, spec, { x: bx, y: ye, runningMean: rm, runningVar: rv, gamma: bg, beta: bb }),
    ]);
    const ref = normRef('batch', x, R, C, EPS);
    const rmRef = runningUpdateRef(rm0, ref.mean, 0.99), rvRef = runningUpdateRef(rv0, ref.variance, 0.99);
    expectEachClose(await ctx.readF32(rm, C), rmRef, 1e-5, 'running mean');
    expectEachClose(await ctx.readF32(rv, C), rvRef, 1e-5, 'running variance');
    expectEachClose(await ctx.readF32(ye, R * C), batchNormInferenceRef(x, R, C, EPS, rmRef, rvRef, gamma, beta), 1e-5, 'evaluation y');
    for (const b of [bx, by, bm, bi, rm, rv, bg, bb, ye]) ctx.release(b);
  });

  it('CPU backward twins pass a finite-difference check (float64)', () => {
    for (const kind of ['batch', 'layer'] as const) {
      for (const [R, C] of [[4, 3], [5, 1], [2, 6]] as [number, number][]) {
        const rand = rng(R * 10 + C);
        const x = Float64Array.from(randomArray(R * C, rand, 2));
        const gamma = Float64Array.from(randomArray(C, rand, 2)), beta = Float64Array.from(randomArray(C, rand));
        const w = randomArray(R * C, rand);
        const back = normBackwardRef(kind, x, w, R, C, EPS, gamma);
        const what = `${kind} [${R},${C}]`;
        expect(gradCheck((v) => dot(w, normRef(kind, v, R, C, EPS, gamma, beta).y), x, back.dx), `${what} dx`).to.be.lessThan(1e-6);
        expect(gradCheck((v) => dot(w, normRef(kind, x, R, C, EPS, v, beta).y), gamma, back.dgamma), `${what} dγ`).to.be.lessThan(1e-6);
        expect(gradCheck((v) => dot(w, normRef(kind, x, R, C, EPS, gamma, v).y), beta, back.dbeta), `${what} dβ`).to.be.lessThan(1e-6);
      }
    }
  });

  it('rejects bad shapes with messages naming the op', () => {
    const b = ctx.storage(16);
    expect(() => layerNorm(ctx, { rows: 0, cols: 2, epsilon: EPS }, { x: b, y: b, mean: b, invstd: b })).to.throw(/layerNorm \[0,2\]: rows must be a positive integer/);
    expect(() => batchNormTrain(ctx, { rows: 3, cols: 4, epsilon: EPS }, { x: b, y: b, mean: b, invstd: b })).to.throw(/batchNorm \[3,4\]: buffer x has 16 bytes, needs 48/);
    ctx.release(b);
  });
});
