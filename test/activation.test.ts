import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { dot, expectClose, gradCheck, randomArray, relError, rng, type Act } from './support/cpu.js';
import { activationBackwardRef, activationRef, biasAddRef } from './ref/activation.js';
import { prepareActivation, prepareActivationBackward, prepareBiasAdd } from '../src/kernels/activation.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

const ACTS: Act[] = ['relu', 'sigmoid', 'tanh'];
// Odd sizes, a layer's real size (100 × 256), MNIST's 55000 × 10, and one above 65535 workgroups of 64.
const SIZES = [1, 7, 1000, 100 * 256, 55000 * 10];
const HUGE = 65535 * 64 + 77;
const errors: string[] = [];

function record(what: string, e: number) {
  errors.push(`${what}: ${e.toExponential(2)}`);
}

describe('activations (shaders/activation.wgsl) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  after(() => { if (process.env.SHOW_ERRORS) console.log(errors.join('\n')); });

  async function forward(n: number, act: Act, seed: number, scale = 4, inPlace = false) {
    const rand = rng(seed);
    const x = randomArray(n, rand, scale);
    const bx = ctx.upload(x);
    const by = inPlace ? bx : ctx.storage(n * 4);
    if (!inPlace) ctx.poison(by);
    await runDispatches(ctx, [prepareActivation(ctx, { n, activation: act }, { x: bx, y: by })]);
    const got = await ctx.readF32(by, n);
    const ref = activationRef(x, act);
    ctx.release(bx);
    if (!inPlace) ctx.release(by);
    const what = `${act} forward n=${n} scale=${scale}${inPlace ? ' in place' : ''}`;
    expectClose(got, ref, 1e-5, what);
    record(what, relError(got, ref));
  }

  async function backward(n: number, act: Act, seed: number, o: { accumulate?: boolean; inPlace?: boolean } = {}) {
    const rand = rng(seed);
    const x = randomArray(n, rand, 4);
    const y = Float32Array.from(activationRef(x, act)); // the forward output as the GPU would hold it
    const dy = randomArray(n, rand);
    const dx0 = o.accumulate ? randomArray(n, rand) : undefined;
    const by = ctx.upload(y), bdy = ctx.upload(dy);
    const bdx = o.inPlace ? bdy : ctx.storage(n * 4);
    if (dx0) ctx.write(bdx, dx0); else if (!o.inPlace) ctx.poison(bdx);
    await runDispatches(ctx, [prepareActivationBackward(ctx, { n, activation: act, accumulate: o.accumulate }, { y: by, dy: bdy, dx: bdx })]);
    const got = await ctx.readF32(bdx, n);
    const ref = activationBackwardRef(y, dy, act, dx0);
    for (const b of new Set([by, bdy, bdx])) ctx.release(b);
    const what = `${act} backward n=${n} ${JSON.stringify(o)}`;
    expectClose(got, ref, 1e-4, what);
    record(what, relError(got, ref));
  }

  for (const act of ACTS) {
    it(`${act} forward on ${SIZES.length} sizes (n = ${SIZES.join(', ')})`, async () => {
      let seed = 10;
      for (const n of SIZES) await forward(n, act, seed++);
    });

    it(`${act} backward dx = dy ⊙ f'(y), plain and accumulating (dx +=)`, async () => {
      let seed = 20;
      for (const n of SIZES) {
        await backward(n, act, seed++);
        await backward(n, act, seed++, { accumulate: true });
      }
    });

    it(`${act} forward keeps its relative accuracy on small inputs (|x| ≤ 1e-2, 1e-4, 1e-7)`, async () => {
      let seed = 35;
      for (const scale of [1e-2, 1e-4, 1e-7]) await forward(1000, act, seed++, scale);
    });

    it(`${act} in place: y = f(y) and dy ← dy ⊙ f'(y)`, async () => {
      await forward(1001, act, 30, 4, true);
      await backward(1001, act, 31, { inPlace: true });
    });

    it(`${act} CPU backward twin passes a finite-difference check (float64)`, () => {
      const rand = rng(40);
      for (const n of [1, 7, 64]) {
        const x = Float64Array.from(randomArray(n, rand, 4));
        for (let i = 0; i < n; i++) if (Math.abs(x[i]) < 1e-3) x[i] = 0.5; // relu's kink
        const w = randomArray(n, rand);
        const analytic = activationBackwardRef(activationRef(x, act), w, act);
        const e = gradCheck((v) => dot(w, activationRef(v, act)), x, analytic);
        record(`${act} gradCheck n=${n}`, e);
        expect(e, `${act} gradCheck n=${n}: ${e}`).to.be.lessThan(1e-6);
      }
    });
  }

  it(`relu on n = ${HUGE} (> 65535 workgroups of 64: grid-stride loop)`, async () => {
    await forward(HUGE, 'relu', 50);
    await backward(HUGE, 'relu', 51);
  });

  it('sigmoid and tanh stay finite and accurate for inputs of ±100', async () => {
    for (const act of ['sigmoid', 'tanh'] as Act[]) await forward(4099, act, 60, 100);
  });

  it('bias add y[i,j] = x[i,j] + b[j], plain and with each activation, on 6 shapes', async () => {
    const shapes: [number, number][] = [[1, 1], [7, 3], [100, 10], [50 * 28 * 28, 32], [55000, 10], [3, 1000]];
    let seed = 70;
    for (const act of ['none', ...ACTS] as Act[]) {
      for (const [rows, cols] of shapes) {
        for (const inPlace of [false, true]) {
          const rand = rng(seed++);
          const n = rows * cols;
          const x = randomArray(n, rand, 2);
          const b = randomArray(cols, rand, 2);
          const bx = ctx.upload(x), bb = ctx.upload(b);
          const by = inPlace ? bx : ctx.storage(n * 4);
          if (!inPlace) ctx.poison(by);
          await runDispatches(ctx, [prepareBiasAdd(ctx, { rows, cols, activation: act }, { x: bx, b: bb, y: by })]);
          const got = await ctx.readF32(by, n);
          const ref = biasAddRef(x, b, rows, cols, act);
          for (const buf of new Set([bx, bb, by])) ctx.release(buf);
          const what = `bias add + ${act} [${rows},${cols}]${inPlace ? ' in place' : ''}`;
          expectClose(got, ref, 1e-5, what);
          record(what, relError(got, ref));
        }
      }
    }
  });

  it('leaves elements past n untouched', async () => {
    const n = 77;
    const x = ctx.upload(randomArray(n + 20, rng(80)));
    const y = ctx.storage((n + 20) * 4);
    ctx.poison(y);
    await runDispatches(ctx, [prepareActivation(ctx, { n, activation: 'tanh' }, { x, y })]);
    const got = await ctx.readF32(y);
    expect(got.slice(0, n).every(Number.isFinite)).to.equal(true);
    expect(got.slice(n).every(Number.isNaN)).to.equal(true);
    ctx.release(x); ctx.release(y);
  });

  it('rejects bad sizes with messages naming the op', () => {
    const small = ctx.storage(16);
    expect(() => prepareActivation(ctx, { n: 0, activation: 'relu' }, { x: small, y: small })).to.throw(/activation relu: n must be a positive integer/);
    expect(() => prepareActivation(ctx, { n: 100, activation: 'relu' }, { x: small, y: small })).to.throw(/activation relu: buffer x has 16 bytes, needs 400/);
    expect(() => prepareBiasAdd(ctx, { rows: 2, cols: 3 }, { x: small, b: small, y: small })).to.throw(/bias add: buffer x/);
    ctx.release(small);
  });
});
