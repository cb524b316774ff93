import { expect } from 'chai';
import { expectEachClose } from './support/per-element.js';
import { testContext } from './support/gpu.js';
import { dot, gradCheck, randomArray, relError, rng } from './support/cpu.js';
import { globalAvgPoolBackwardRef, globalAvgPoolRef } from './ref/global-pool.js';
import { globalAvgPool, globalAvgPoolBackward, type GlobalAvgPoolSpec } from '../src/kernels/global-pool.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

// C % 4 == 0 runs the pool's vec4 entry points, other C the scalar ones.
const SPECS: GlobalAvgPoolSpec[] = [
  { batch: 1, H: 1, W: 1, channels: 1 },
  { batch: 3, H: 7, W: 5, channels: 3 },
  { batch: 2, H: 1, W: 9, channels: 8 },
  { batch: 50, H: 7, W: 7, channels: 64 },
  { batch: 5, H: 13, W: 11, channels: 70 },
  { batch: 2, H: 32, W: 31, channels: 4 },
];

describe('global average pooling (src/kernels/global-pool.ts over shaders/pool.wgsl) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  for (const s of SPECS) {
    it(`forward, backward and backward += on [${s.batch},${s.H},${s.W},${s.channels}] → [${s.batch},${s.channels}]`, async () => {
      const { batch: N, H, W, channels: C } = s;
      const nx = N * H * W * C, ny = N * C;
      const rand = rng(nx + C);
      const x = randomArray(nx, rand), dy = randomArray(ny, rand), dx0 = randomArray(nx, rand);
      const bx = ctx.upload(x), y = ctx.storage(ny * 4), bdy = ctx.upload(dy), dx = ctx.storage(nx * 4), dxAcc = ctx.upload(dx0);
      ctx.poison(y); ctx.poison(dx);
      const t0 = performance.now();
      await runDispatches(ctx, [
        globalAvgPool(ctx, s, { x: bx, y }),
        globalAvgPoolBackward(ctx, s, { dy: bdy, dx }),
        globalAvgPoolBackward(ctx, { ...s, accumulate: true }, { dy: bdy, dx: dxAcc }),
      ]);
      const tGpu = performance.now() - t0;
      const got = { y: await ctx.readF32(y, ny), dx: await ctx.readF32(dx, nx), dxAcc: await ctx.readF32(dxAcc, nx) };
      for (const b of [bx, y, bdy, dx, dxAcc]) ctx.release(b);
      const refY = globalAvgPoolRef(x, N, H, W, C);
      expectEachClose(got.y, refY, 1e-5, 'y');
      expectEachClose(got.dx, globalAvgPoolBackwardRef(dy, N, H, W, C), 1e-4, 'dx');
      expectEachClose(got.dxAcc, globalAvgPoolBackwardRef(dy, N, H, W, C, dx0), 1e-4, 'dx +=');
      console.log(`      rel. error y ${relError(got.y, refY).toExponential(1)}; GPU ${tGpu.toFixed(0)} ms (incl. compile)`);
    });
  }

  it('CPU backward twin passes a finite-difference check (float64)', () => {
    for (const [N, H, W, C] of [[1, 1, 1, 1], [2, 3, 4, 2], [1, 5, 2, 3]]) {
      const rand = rng(N * 100 + H * 10 + W);
      const x = Float64Array.from(randomArray(N * H * W * C, rand));
      const w = randomArray(N * C, rand);
      const e = gradCheck((v) => dot(w, globalAvgPoolRef(v, N, H, W, C)), x, globalAvgPoolBackwardRef(w, N, H, W, C));
      expect(e, `[${N},${H},${W},${C}]`).to.be.lessThan(1e-6);
    }
  });

  it('rejects bad shapes with messages naming the op', () => {
    const b = ctx.storage(16);
    expect(() => globalAvgPool(ctx, { batch: 1, H: 0, W: 2, channels: 1 }, { x: b, y: b })).to.throw(/avgPool2d globalAvgPool: inH must be a positive integer/);
    expect(() => globalAvgPoolBackward(ctx, { batch: 1, H: 3, W: 3, channels: 2, label: 'gap' }, { dy: b, dx: b })).to.throw(/avgPool2dBackward gap: dx holds 16 bytes/);
    ctx.release(b);
  });
});
