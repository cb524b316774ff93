// gelu (exact erf form) in shaders/prelude.wgsl, through the activation kernel, against float64.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { dot, gradCheck, randomArray, rng } from './support/cpu.js';
import { expectEachClose } from './support/per-element.js';
import { erf, erfc, geluBackwardRef, geluGradScalar, geluRef, geluScalar } from './ref/gelu.js';
import { prepareActivation, prepareActivationBackward } from '../src/kernels/activation.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

const SIZES = [1, 7, 1001, 65537];

describe('gelu (shaders/prelude.wgsl, exact erf form) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  async function gpuGelu(x: Float32Array): Promise<Float32Array> {
    const bx = ctx.upload(x), by = ctx.storage(x.length * 4);
    ctx.poison(by);
    await runDispatches(ctx, [prepareActivation(ctx, { n: x.length, activation: 'gelu' }, { x: bx, y: by })]);
    const y = await ctx.readF32(by, x.length);
    ctx.release(bx); ctx.release(by);
    return y;
  }

  it('the float64 erf twin matches tabulated values', () => {
    const table: [number, number][] = [[0.1, 0.1124629160182849], [0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [2.9, 0.9999589021219005]];
    for (const [z, v] of table) expect(Math.abs(erf(z) - v), `erf(${z})`).to.be.lessThan(1e-12);
    const tails: [number, number][] = [[3, 2.209049699858544e-5], [4, 1.541725790028002e-8], [5, 1.537459794428035e-12], [8, 1.122429717298293e-29]];
    for (const [z, v] of tails) expect(Math.abs(erfc(z) / v - 1), `erfc(${z})`).to.be.lessThan(1e-12);
  });

  it('forward is within ~1e-7 relative of float64 on a dense grid of [-6, 6], tails included', async () => {
    // Every element relative to itself (no rms floor): the negative tail, where gelu is tiny, too.
    const n = 24001;
    const x = Float32Array.from({ length: n }, (_, i) => -6 + (12 * i) / (n - 1));
    const got = await gpuGelu(x);
    let worst = 0, at = 0;
    for (let i = 0; i < n; i++) {
      const ref = geluScalar(x[i]);
      const e = ref === 0 ? Math.abs(got[i]) : Math.abs(got[i] - ref) / Math.abs(ref);
      if (!(e <= worst)) { worst = e; at = i; }
    }
    console.log(`      gelu worst relative error on [-6, 6]: ${worst.toExponential(2)} at x = ${x[at]}`);
    expect(worst, `gelu(${x[at]}) = ${got[at]}, float64 ${geluScalar(x[at])}`).to.be.lessThan(1e-6);
  });

  for (const n of SIZES) {
    it(`forward, backward and backward += on ${n} values`, async () => {
      const rand = rng(n + 5);
      const x = randomArray(n, rand, 5), dy = randomArray(n, rand), dx0 = randomArray(n, rand);
      expectEachClose(await gpuGelu(x), geluRef(x), 1e-5, `gelu forward n=${n}`);
      // gelu's backward reads the forward INPUT x in the kernel's y slot
      const bx = ctx.upload(x), bdy = ctx.upload(dy), bdx = ctx.storage(n * 4), bacc = ctx.upload(dx0);
      ctx.poison(bdx);
      await runDispatches(ctx, [
        prepareActivationBackward(ctx, { n, activation: 'gelu' }, { y: bx, dy: bdy, dx: bdx }),
        prepareActivationBackward(ctx, { n, activation: 'gelu', accumulate: true }, { y: bx, dy: bdy, dx: bacc }),
      ]);
      expectEachClose(await ctx.readF32(bdx, n), geluBackwardRef(x, dy), 1e-4, `gelu backward n=${n}`);
      expectEachClose(await ctx.readF32(bacc, n), geluBackwardRef(x, dy, dx0), 1e-4, `gelu backward += n=${n}`);
      for (const b of [bx, bdy, bdx, bacc]) ctx.release(b);
    });
  }

  it('CPU backward twin passes a finite-difference check (float64)', () => {
    const rand = rng(77);
    const x = Float64Array.from(randomArray(50, rand, 4));
    const w = randomArray(50, rand);
    const e = gradCheck((v) => dot(w, geluRef(v)), x, geluBackwardRef(x, w));
    expect(e).to.be.lessThan(1e-6);
    expect(Math.abs(geluGradScalar(0) - 0.5)).to.be.lessThan(1e-15);
  });
});
