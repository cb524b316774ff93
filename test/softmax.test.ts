import { expect } from 'chai';
import { expectEachClose, worstElementError } from './support/per-element.js';
import { testContext } from './support/gpu.js';
import { dot, gradCheck, randomArray, relError, rng } from './support/cpu.js';
import { softmaxBackwardRef, softmaxRef } from './ref/softmax.js';
import { prepareSoftmax, prepareSoftmaxBackward } from '../src/kernels/softmax.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

const SHAPES: [number, number][] = [[1, 1], [1, 2], [3, 1], [7, 3], [50, 10], [13, 1000], [1001, 7], [20000, 10], [40000, 3]];
const notes: string[] = [];

describe('softmax over the last axis (shaders/softmax.wgsl) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  after(() => { if (process.env.SHOW_ERRORS) console.log(notes.join('\n')); });

  /** Forward, then backward from the GPU's y, plus an accumulating backward onto dx0. */
  async function run(x: Float32Array, dy: Float32Array, dx0: Float32Array, R: number, C: number) {
    const n = R * C;
    const bx = ctx.upload(x), y = ctx.storage(n * 4), bdy = ctx.upload(dy), dx = ctx.storage(n * 4), dxAcc = ctx.upload(dx0);
    ctx.poison(y); ctx.poison(dx);
    await runDispatches(ctx, [
      prepareSoftmax(ctx, { rows: R, cols: C }, { x: bx, y }),
      prepareSoftmaxBackward(ctx, { rows: R, cols: C }, { y, dy: bdy, dx }),
      prepareSoftmaxBackward(ctx, { rows: R, cols: C, accumulate: true }, { y, dy: bdy, dx: dxAcc }),
    ]);
    const out = { y: await ctx.readF32(y, n), dx: await ctx.readF32(dx, n), dxAcc: await ctx.readF32(dxAcc, n) };
    for (const b of [bx, y, bdy, dx, dxAcc]) ctx.release(b);
    return out;
  }

  async function check(R: number, C: number, seed: number, scale: number) {
    const rand = rng(seed);
    const n = R * C;
    const x = randomArray(n, rand, scale), dy = randomArray(n, rand), dx0 = randomArray(n, rand);
    const got = await run(x, dy, dx0, R, C);
    const y = softmaxRef(x, R, C);
    // The backward twin runs on the GPU's y, so the check isolates the backward kernel.
    const dx = softmaxBackwardRef(got.y, dy, R, C);
    const dxAcc = softmaxBackwardRef(got.y, dy, R, C, dx0);
    const what = `[${R},${C}] scale ${scale}`;
    expectEachClose(got.y, y, 1e-5, `${what} y`);
    expectEachClose(got.dx, dx, 1e-4, `${what} dx`);
    expectEachClose(got.dxAcc, dxAcc, 1e-4, `${what} dx +=`);
    // And against the all-float64 chain, per element too.
    const dx64 = softmaxBackwardRef(y, dy, R, C);
    expectEachClose(got.dx, dx64, 1e-4, `${what} dx (float64 y)`);
    notes.push(`${what}: y ${relError(got.y, y).toExponential(2)} (worst element ${worstElementError(got.y, y).error.toExponential(2)}), ` +
      `dx ${relError(got.dx, dx).toExponential(2)} (worst element ${worstElementError(got.dx, dx).error.toExponential(2)})`);
  }

  it(`forward and backward (= and +=) on ${SHAPES.length} shapes`, async () => {
    let seed = 1;
    for (const [R, C] of SHAPES) await check(R, C, seed++, 3);
  });

  it('inputs of ±1e4 give finite, correct probabilities (no overflow in exp)', async () => {
    let seed = 20;
    for (const [R, C] of [[7, 3], [50, 10]] as [number, number][]) await check(R, C, seed++, 1e4);
    const C = 4;
    const x = new Float32Array([1e4, -1e4, 0, 5, /**/ -1e4, 1e4, 1e4, -1e4, /**/ 88, 89, 90, 91]);
    const got = await run(x, new Float32Array(12).fill(1), new Float32Array(12), 3, C);
    expectEachClose(got.y, softmaxRef(x, 3, C), 1e-5, 'hand-made rows');
    expect(got.y[0]).to.equal(1);
    expect(got.y[5]).to.equal(0.5);
  });

  it('each row of y sums to 1 and a row of equal inputs gives 1/C', async () => {
    const R = 9, C = 17;
    const x = randomArray(R * C, rng(30), 5);
    for (let k = 0; k < C; k++) x[4 * C + k] = -2.5;
    const got = await run(x, new Float32Array(R * C), new Float32Array(R * C), R, C);
    for (let r = 0; r < R; r++) {
      let s = 0;
      for (let k = 0; k < C; k++) s += got.y[r * C + k];
      expect(s).to.be.closeTo(1, 1e-5);
    }
    for (let k = 0; k < C; k++) expect(got.y[4 * C + k]).to.be.closeTo(1 / C, 1e-7);
  });

  it('CPU backward twin passes a finite-difference check (float64)', () => {
    let seed = 60;
    for (const [R, C] of [[1, 1], [1, 2], [3, 4], [5, 10], [2, 7]] as [number, number][]) {
      const rand = rng(seed++);
      const x = Float64Array.from(randomArray(R * C, rand, 3));
      const w = randomArray(R * C, rand);
      const e = gradCheck((v) => dot(w, softmaxRef(v, R, C)), x, softmaxBackwardRef(softmaxRef(x, R, C), w, R, C));
      notes.push(`gradCheck [${R},${C}]: ${e.toExponential(2)}`);
      // C = 1: y ≡ 1, the gradient is exactly 0 and relError measures the absolute error.
      expect(e, `gradCheck [${R},${C}]`).to.be.lessThan(1e-6);
    }
  });

  it('rejects bad shapes and aliased buffers with messages naming the op', () => {
    const b = ctx.storage(16), c = ctx.storage(16);
    expect(() => prepareSoftmax(ctx, { rows: 0, cols: 3 }, { x: b, y: c })).to.throw(/softmax \[0,3\]: rows must be a positive integer/);
    expect(() => prepareSoftmax(ctx, { rows: 2, cols: 3 }, { x: b, y: c })).to.throw(/softmax \[2,3\]: buffer x has 16 bytes, needs 24/);
    expect(() => prepareSoftmax(ctx, { rows: 1, cols: 2 }, { x: b, y: b })).to.throw(/x and y must be different buffers/);
    expect(() => prepareSoftmaxBackward(ctx, { rows: 1, cols: 2 }, { y: b, dy: c, dx: c })).to.throw(/softmax backward \[1,2\]: dx must differ from y and dy/);
    ctx.release(b); ctx.release(c);
  });
});
