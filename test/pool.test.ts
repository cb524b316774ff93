import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { dot, expectClose, gradCheck, randomArray, relError, rng } from './support/cpu.js';
import { avgPool2d, avgPool2dBackward, maxPool2d, maxPool2dBackward, pool2dGeometry, type Pool2dSpec } from '../src/kernels/pool.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';
import { activationBackwardRef, activationRef } from './ref/activation.js';
import { prepareActivationBackward } from '../src/kernels/activation.js';
import { avgPoolBackwardRef, avgPoolRef, maxPoolBackwardRef, maxPoolRef, poolOut, type PoolShape } from './ref/pool.js';

const SPECS: Pool2dSpec[] = [
  // The tutorial CNN's two pools: 28 → 14 → 7.
  { batch: 50, inH: 28, inW: 28, channels: 32, kH: 2, kW: 2, stride: 2, padding: 'SAME', label: 'pool1' },
  { batch: 50, inH: 14, inW: 14, channels: 64, kH: 2, kW: 2, stride: 2, padding: 'SAME', label: 'pool2' },
  // Odd sizes: 7 → 4 (padding on the bottom/right), VALID, non-square, overlapping windows, C > 64;
  // C % 4 == 0 runs the vec4 kernels (four channels per lane), other C the scalar ones.
  { batch: 3, inH: 7, inW: 7, channels: 5, kH: 2, kW: 2, stride: 2, padding: 'SAME' },
  { batch: 2, inH: 9, inW: 8, channels: 3, kH: 3, kW: 3, stride: 2, padding: 'VALID' },
  { batch: 2, inH: 10, inW: 7, channels: 70, kH: 3, kW: 2, stride: [2, 3], padding: 'SAME' },
  { batch: 1, inH: 5, inW: 5, channels: 1, kH: 3, kW: 3, stride: 1, padding: 'SAME' },
  { batch: 4, inH: 11, inW: 9, channels: 4, kH: 4, kW: 4, stride: 3, padding: 'SAME' },
  { batch: 2, inH: 6, inW: 7, channels: 2, kH: 1, kW: 1, stride: 2, padding: 'VALID' },
  { batch: 1, inH: 8, inW: 3, channels: 9, kH: 3, kW: 3, padding: 'SAME' },
  { batch: 3, inH: 7, inW: 9, channels: 264, kH: 3, kW: 3, stride: [2, 3], padding: 'VALID' },
];

function shapeOf(s: Pool2dSpec): PoolShape {
  const [strideH, strideW] = typeof s.stride === 'number' ? [s.stride, s.stride] : s.stride ?? [s.kH, s.kW];
  return { batch: s.batch, inH: s.inH, inW: s.inW, channels: s.channels, kH: s.kH, kW: s.kW, strideH, strideW, padding: s.padding };
}

function describeSpec(s: Pool2dSpec): string {
  const { outH, outW } = poolOut(shapeOf(s));
  return `[${s.batch},${s.inH},${s.inW},${s.channels}] ${s.kH}x${s.kW}/${JSON.stringify(s.stride ?? 'window')} ${s.padding} → ${outH}x${outW}`;
}

describe('pooling (shaders/pool.wgsl) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  it('computes output sizes and padding as TensorFlow does', () => {
    const g = (inH: number, k: number, stride: number, padding: 'SAME' | 'VALID') =>
      pool2dGeometry({ batch: 1, inH, inW: inH, channels: 1, kH: k, kW: k, stride, padding });
    expect(g(28, 2, 2, 'SAME')).to.include({ outH: 14, padTop: 0, padBottom: 0 });
    expect(g(14, 2, 2, 'SAME')).to.include({ outH: 7, padTop: 0, padBottom: 0 });
    expect(g(7, 2, 2, 'SAME')).to.include({ outH: 4, padTop: 0, padBottom: 1 });
    expect(g(7, 3, 2, 'SAME')).to.include({ outH: 4, padTop: 1, padBottom: 1 });
    expect(g(7, 2, 2, 'VALID')).to.include({ outH: 3, padTop: 0, padBottom: 0 });
    expect(pool2dGeometry({ batch: 1, inH: 8, inW: 3, channels: 1, kH: 3, kW: 3, padding: 'SAME' })).to.include({ outH: 3, outW: 1, strideH: 3 });
  });

  for (const s of SPECS) {
    it(`max and average pool, forward + backward, ${describeSpec(s)}`, async () => {
      const sh = shapeOf(s);
      const { outH, outW } = poolOut(sh);
      const nx = s.batch * s.inH * s.inW * s.channels, ny = s.batch * outH * outW * s.channels;
      const rand = rng(nx + s.kH * 7 + s.kW);
      const x = randomArray(nx, rand);
      const dy = randomArray(ny, rand);
      const bx = ctx.upload(x), bdy = ctx.upload(dy);
      const ym = ctx.storage(ny * 4), arg = ctx.storage(ny * 4), ya = ctx.storage(ny * 4), dxm = ctx.storage(nx * 4), dxa = ctx.storage(nx * 4);
      for (const b of [ym, arg, ya, dxm, dxa]) ctx.poison(b);
      const t0 = performance.now();
      await runDispatches(ctx, [
        maxPool2d(ctx, s, { x: bx, y: ym, argmax: arg }),
        maxPool2dBackward(ctx, s, { dy: bdy, argmax: arg, dx: dxm }),
        avgPool2d(ctx, s, { x: bx, y: ya }),
        avgPool2dBackward(ctx, s, { dy: bdy, dx: dxa }),
      ]);
      const [gym, garg, gya, gdxm, gdxa] = [await ctx.readF32(ym, ny), await ctx.readU32(arg, ny), await ctx.readF32(ya, ny), await ctx.readF32(dxm, nx), await ctx.readF32(dxa, nx)];
      const tGpu = performance.now() - t0;
      for (const b of [bx, bdy, ym, arg, ya, dxm, dxa]) ctx.release(b);

      const ref = maxPoolRef(sh, x);
      const what = describeSpec(s);
      expectClose(gym, ref.y, 1e-5, `${what} max y`);
      expect(Array.from(garg).every((v, i) => v === ref.argmax[i]), `${what} argmax`).to.equal(true);
      const refDxm = maxPoolBackwardRef(sh, x, dy);
      expectClose(gdxm, refDxm, 1e-4, `${what} max dx`);
      const refYa = avgPoolRef(sh, x);
      expectClose(gya, refYa, 1e-5, `${what} avg y`);
      const refDxa = avgPoolBackwardRef(sh, dy);
      expectClose(gdxa, refDxa, 1e-4, `${what} avg dx`);
      console.log(`      rel. errors max y ${relError(gym, ref.y).toExponential(1)}, max dx ${relError(gdxm, refDxm).toExponential(1)}, ` +
        `avg y ${relError(gya, refYa).toExponential(1)}, avg dx ${relError(gdxa, refDxa).toExponential(1)}; GPU ${tGpu.toFixed(0)} ms (incl. compile + readback)`);
    });
  }

  // channels 3 runs the scalar kernels, 8 the vec4 ones.
  for (const channels of [3, 8]) it(`breaks ties by the first maximum (row-major in the window) and routes the gradient there only (C ${channels})`, async () => {
    // Values from {-1, 0.5, 1} make ties common, including ties between overlapping windows.
    const s: Pool2dSpec = { batch: 2, inH: 7, inW: 6, channels, kH: 3, kW: 3, stride: [2, 1], padding: 'SAME' };
    const sh = shapeOf(s);
    const { outH, outW } = poolOut(sh);
    const nx = s.batch * s.inH * s.inW * s.channels, ny = s.batch * outH * outW * s.channels;
    const rand = rng(5);
    const levels = [-1, 0.5, 1];
    const x = Float32Array.from({ length: nx }, () => levels[Math.floor(rand() * 3)]);
    const dy = randomArray(ny, rand);
    const bx = ctx.upload(x), bdy = ctx.upload(dy), y = ctx.storage(ny * 4), arg = ctx.storage(ny * 4), dx = ctx.storage(nx * 4);
    for (const b of [y, arg, dx]) ctx.poison(b);
    await runDispatches(ctx, [maxPool2d(ctx, s, { x: bx, y, argmax: arg }), maxPool2dBackward(ctx, s, { dy: bdy, argmax: arg, dx })]);
    const ref = maxPoolRef(sh, x);
    const got = await ctx.readU32(arg, ny);
    let ties = 0;
    for (let o = 0; o < ny; o++) if (x[ref.argmax[o]] === 1) ties++;
    expect(ties, 'windows whose maximum is tied').to.be.greaterThan(ny / 2);
    expect(Array.from(got)).to.deep.equal(Array.from(ref.argmax));
    expectClose(await ctx.readF32(dx, nx), maxPoolBackwardRef(sh, x, dy), 1e-4, 'max dx with ties');
    for (const b of [bx, bdy, y, arg, dx]) ctx.release(b);
  });

  for (const channels of [6, 8]) it(`accumulates dx (+=) for both pools (C ${channels})`, async () => {
    const s: Pool2dSpec = { batch: 2, inH: 7, inW: 5, channels, kH: 3, kW: 2, stride: 2, padding: 'SAME' };
    const sh = shapeOf(s);
    const { outH, outW } = poolOut(sh);
    const nx = s.batch * s.inH * s.inW * s.channels, ny = s.batch * outH * outW * s.channels;
    const rand = rng(11);
    const x = randomArray(nx, rand), dy = randomArray(ny, rand), dx0 = randomArray(nx, rand);
    const bx = ctx.upload(x), bdy = ctx.upload(dy), y = ctx.storage(ny * 4), arg = ctx.storage(ny * 4);
    const dxm = ctx.upload(dx0), dxa = ctx.upload(dx0);
    await runDispatches(ctx, [
      maxPool2d(ctx, s, { x: bx, y, argmax: arg }),
      maxPool2dBackward(ctx, { ...s, accumulate: true }, { dy: bdy, argmax: arg, dx: dxm }),
      avgPool2dBackward(ctx, { ...s, accumulate: true }, { dy: bdy, dx: dxa }),
    ]);
    const plus = (a: Float64Array) => a.map((v, i) => v + dx0[i]);
    expectClose(await ctx.readF32(dxm, nx), plus(maxPoolBackwardRef(sh, x, dy)), 1e-4, 'max dx +=');
    expectClose(await ctx.readF32(dxa, nx), plus(avgPoolBackwardRef(sh, dy)), 1e-4, 'avg dx +=');
    for (const b of [bx, bdy, y, arg, dxm, dxa]) ctx.release(b);
  });

  // The derivative of the activation that made the pooled tensor, applied by the backward over that
  // tensor in place (what src/graph/fuse-activation-grads.ts asks of it): against float64, and bit
  // for bit the pool backward followed by the activation backward it replaces.
  for (const [k, act] of (['relu', 'sigmoid', 'tanh'] as const).entries()) {
    for (const s of [SPECS[2], SPECS[4], SPECS[6], SPECS[7]]) {
      it(`max and average pool backward through ${act} in place of its output, ${describeSpec(s)}`, async () => {
        const sh = shapeOf(s);
        const { outH, outW } = poolOut(sh);
        const nx = s.batch * s.inH * s.inW * s.channels, ny = s.batch * outH * outW * s.channels;
        const rand = rng(nx * 3 + k);
        const x = Float32Array.from(activationRef(randomArray(nx, rand, 2), act)); // the activation's output, pooled
        const dy = randomArray(ny, rand);
        const bx = ctx.upload(x), bdy = ctx.upload(dy), y = ctx.storage(ny * 4), arg = ctx.storage(ny * 4);
        const fused = { max: ctx.upload(x), avg: ctx.upload(x) };
        const apart = { max: ctx.storage(nx * 4), avg: ctx.storage(nx * 4) };
        for (const b of [y, arg, apart.max, apart.avg]) ctx.poison(b);
        const activationBackward = (dx: GPUBuffer) => prepareActivationBackward(ctx, { n: nx, activation: act }, { y: bx, dy: dx, dx });
        await runDispatches(ctx, [
          maxPool2d(ctx, s, { x: bx, y, argmax: arg }),
          maxPool2dBackward(ctx, { ...s, activationGrad: act }, { dy: bdy, argmax: arg, dx: fused.max }),
          avgPool2dBackward(ctx, { ...s, activationGrad: act }, { dy: bdy, dx: fused.avg }),
          maxPool2dBackward(ctx, s, { dy: bdy, argmax: arg, dx: apart.max }), activationBackward(apart.max),
          avgPool2dBackward(ctx, s, { dy: bdy, dx: apart.avg }), activationBackward(apart.avg),
        ]);
        const what = `${describeSpec(s)} through ${act}`;
        const refs = { max: maxPoolBackwardRef(sh, x, dy), avg: avgPoolBackwardRef(sh, dy) };
        for (const pool of ['max', 'avg'] as const) {
          const got = await ctx.readF32(fused[pool], nx);
          expectClose(got, activationBackwardRef(x, refs[pool], act), 1e-4, `${what}: ${pool} dx`);
          expect(Array.from(new Uint32Array(got.buffer)), `${what}: ${pool} dx bit for bit as pool backward + activation backward`)
            .to.deep.equal(Array.from(new Uint32Array((await ctx.readF32(apart[pool], nx)).buffer)));
        }
        for (const b of [bx, bdy, y, arg, ...Object.values(fused), ...Object.values(apart)]) ctx.release(b);
      });
    }
  }

  it('rejects an activation derivative it cannot apply, naming the way out', () => {
    const b = ctx.dummyBuffer();
    const s: Pool2dSpec = { batch: 1, inH: 2, inW: 2, channels: 1, kH: 2, kW: 2, padding: 'VALID', label: 'p1' };
    expect(() => maxPool2dBackward(ctx, { ...s, activationGrad: 'gelu' as never }, { dy: b, argmax: b, dx: b })).to.throw(/maxPool2dBackward p1: the derivative of gelu is not a function of its output; apply it with prepareActivationBackward/);
    expect(() => avgPool2dBackward(ctx, { ...s, activationGrad: 'relu', accumulate: true }, { dy: b, dx: b })).to.throw(/avgPool2dBackward p1: activationGrad reads the activation's output from dx, so dx cannot also accumulate/);
  });

  it('rejects bad shapes with messages naming the op', () => {
    const b = ctx.dummyBuffer();
    const s: Pool2dSpec = { batch: 1, inH: 3, inW: 3, channels: 2, kH: 4, kW: 4, padding: 'VALID', label: 'p1' };
    expect(() => maxPool2d(ctx, s, { x: b, y: b, argmax: b })).to.throw(/maxPool2d p1: VALID padding needs the window \(4\) no larger than the input \(3\)/);
    expect(() => avgPool2d(ctx, { ...s, kH: 0 }, { x: b, y: b })).to.throw(/avgPool2d p1: kH must be a positive integer/);
    expect(() => avgPool2dBackward(ctx, { ...s, padding: 'SAME' }, { dy: b, dx: b })).to.throw(/avgPool2dBackward p1: dx holds 16 bytes, dx \[1, 3, 3, 2\] needs 72/);
  });

  describe('finite-difference checks of the CPU backward twins (float64)', () => {
    const small: PoolShape[] = [
      { batch: 2, inH: 7, inW: 7, channels: 2, kH: 2, kW: 2, strideH: 2, strideW: 2, padding: 'SAME' },
      { batch: 1, inH: 6, inW: 5, channels: 3, kH: 3, kW: 3, strideH: 2, strideW: 1, padding: 'SAME' },
      { batch: 2, inH: 9, inW: 8, channels: 1, kH: 3, kW: 2, strideH: 2, strideW: 3, padding: 'VALID' },
    ];
    for (const sh of small) {
      it(`max-pool and avg-pool dx of [${sh.batch},${sh.inH},${sh.inW},${sh.channels}] ${sh.kH}x${sh.kW}/${sh.strideH},${sh.strideW} ${sh.padding}`, () => {
        const rand = rng(sh.inH * 13 + sh.kH);
        const { outH, outW } = poolOut(sh);
        const x = Float64Array.from(randomArray(sh.batch * sh.inH * sh.inW * sh.channels, rand));
        const w = randomArray(sh.batch * outH * outW * sh.channels, rand);
        const em = gradCheck((v) => dot(w, maxPoolRef(sh, v).y), x, maxPoolBackwardRef(sh, x, w));
        const ea = gradCheck((v) => dot(w, avgPoolRef(sh, v)), x, avgPoolBackwardRef(sh, w));
        console.log(`      finite differences: max-pool dx ${em.toExponential(1)}, avg-pool dx ${ea.toExponential(1)}`);
        expect(em, 'max-pool dx').to.be.lessThan(1e-6);
        expect(ea, 'avg-pool dx').to.be.lessThan(1e-6);
      });
    }
  });
});
