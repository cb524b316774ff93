import { expect } from 'chai';
import { expectEachClose } from './support/per-element.js';
import { testContext } from './support/gpu.js';
import { dot, gradCheck, randomArray, relError, rng } from './support/cpu.js';
import { addBackwardRef, addRef, concatBackwardRef, concatRef } from './ref/copy.js';
import { prepareAdd, prepareAddBackward, prepareConcat, prepareConcatBackward, prepareCopy } from '../src/kernels/copy.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

// Odd sizes run the scalar entry points, multiples of 4 the vec4 ones.
const SIZES = [1, 3, 7, 64, 1001, 4096, 100003];
const notes: string[] = [];

describe('add, concat and strided copy (shaders/copy.wgsl) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  after(() => { if (process.env.SHOW_ERRORS) console.log(notes.join('\n')); });

  /** A poisoned output buffer, or one holding `init` (for accumulation). */
  function output(n: number, init?: Float32Array): GPUBuffer {
    if (init) return ctx.upload(init);
    const b = ctx.storage(n * 4);
    ctx.poison(b);
    return b;
  }

  it(`y = a + b on ${SIZES.length} sizes`, async () => {
    let seed = 1;
    for (const n of SIZES) {
      const rand = rng(seed++);
      const a = randomArray(n, rand, 3), b = randomArray(n, rand, 3);
      const ba = ctx.upload(a), bb = ctx.upload(b), y = output(n);
      await runDispatches(ctx, [prepareAdd(ctx, { n }, { a: ba, b: bb, y })]);
      const got = await ctx.readF32(y, n);
      const ref = addRef(a, b);
      expectEachClose(got, ref, 1e-5, `add [${n}]`);
      notes.push(`add [${n}]: ${relError(got, ref).toExponential(2)}`);
      for (const buf of [ba, bb, y]) ctx.release(buf);
    }
  });

  it('y = a + a when both inputs are the same buffer', async () => {
    const n = 37;
    const a = randomArray(n, rng(2));
    const ba = ctx.upload(a), y = output(n);
    await runDispatches(ctx, [prepareAdd(ctx, { n }, { a: ba, b: ba, y })]);
    expectEachClose(await ctx.readF32(y, n), addRef(a, a), 1e-5, 'a + a');
    for (const buf of [ba, y]) ctx.release(buf);
  });

  for (const [accumulateA, accumulateB] of [[false, false], [true, false], [false, true], [true, true]]) {
    it(`add backward writes da ${accumulateA ? '+=' : '='} dy and db ${accumulateB ? '+=' : '='} dy in one pass`, async () => {
      let seed = 10 + (accumulateA ? 1 : 0) + (accumulateB ? 2 : 0);
      for (const n of SIZES) {
        const rand = rng(seed += 4);
        const dy = randomArray(n, rand), da0 = randomArray(n, rand), db0 = randomArray(n, rand);
        const bdy = ctx.upload(dy), da = output(n, accumulateA ? da0 : undefined), db = output(n, accumulateB ? db0 : undefined);
        const ds = prepareAddBackward(ctx, { n, accumulateA, accumulateB }, { dy: bdy, da, db });
        expect(ds).to.have.length(1);
        await runDispatches(ctx, ds);
        const ref = addBackwardRef(dy, accumulateA ? da0 : undefined, accumulateB ? db0 : undefined);
        expectEachClose(await ctx.readF32(da, n), ref.da, 1e-4, `[${n}] da`);
        expectEachClose(await ctx.readF32(db, n), ref.db, 1e-4, `[${n}] db`);
        for (const buf of [bdy, da, db]) ctx.release(buf);
      }
    });
  }

  it('add backward with one gradient wanted writes only that one; with none, no dispatch', async () => {
    for (const n of [13, 16]) {
      for (const accumulate of [false, true]) {
        const rand = rng(n + (accumulate ? 1 : 0));
        const dy = randomArray(n, rand), g0 = randomArray(n, rand);
        const bdy = ctx.upload(dy);
        const dA = output(n, accumulate ? g0 : undefined), dB = output(n, accumulate ? g0 : undefined);
        await runDispatches(ctx, [
          ...prepareAddBackward(ctx, { n, accumulateA: accumulate }, { dy: bdy, da: dA }),
          ...prepareAddBackward(ctx, { n, accumulateB: accumulate }, { dy: bdy, db: dB }),
        ]);
        const ref = addBackwardRef(dy, accumulate ? g0 : undefined, accumulate ? g0 : undefined);
        expectEachClose(await ctx.readF32(dA, n), ref.da, 1e-4, `[${n}] da only`);
        expectEachClose(await ctx.readF32(dB, n), ref.db, 1e-4, `[${n}] db only`);
        for (const buf of [bdy, dA, dB]) ctx.release(buf);
      }
    }
    expect(prepareAddBackward(ctx, { n: 4 }, { dy: ctx.dummyBuffer() })).to.deep.equal([]);
  });

  it('add backward of a + a (da and db one buffer) gives what the two writes in order give', async () => {
    const n = 21;
    const rand = rng(30);
    const dy = randomArray(n, rand), g0 = randomArray(n, rand);
    const cases: [boolean, boolean, (i: number) => number][] = [
      [false, false, (i) => dy[i]],              // db = dy overwrites da = dy
      [false, true, (i) => 2 * dy[i]],           // da = dy; da += dy
      [true, true, (i) => g0[i] + 2 * dy[i]],    // da += dy; da += dy
      [true, false, (i) => dy[i]],               // db = dy overwrites
    ];
    for (const [accumulateA, accumulateB, want] of cases) {
      const bdy = ctx.upload(dy), g = ctx.upload(g0);
      await runDispatches(ctx, prepareAddBackward(ctx, { n, accumulateA, accumulateB }, { dy: bdy, da: g, db: g }));
      expectEachClose(await ctx.readF32(g, n), Array.from({ length: n }, (_, i) => want(i)), 1e-4, `a + a, accumulate ${accumulateA}/${accumulateB}`);
      for (const buf of [bdy, g]) ctx.release(buf);
    }
  });

  it('strided copy y[offY + r·ldY + c] (+)= scale·x[offX + r·ldX + c] leaves the rest of y alone', async () => {
    const cases = [
      { rows: 5, cols: 3, ldX: 7, ldY: 4, offX: 2, offY: 1, scale: 1 },
      { rows: 9, cols: 8, ldX: 12, ldY: 16, offX: 4, offY: 8, scale: -0.5 },   // vec4
      { rows: 1, cols: 1001, ldX: 1001, ldY: 1001, offX: 0, offY: 0, scale: 2 },
      { rows: 300, cols: 1, ldX: 2, ldY: 3, offX: 1, offY: 2, scale: 1 },
      { rows: 3, cols: 4, ldX: 4, ldY: 4, offX: 0, offY: 2, scale: 1 },         // cols % 4 == 0 but offY not: scalar
      // More elements than one grid stride (512 groups × 64): invocations step (row, column) on.
      { rows: 3000, cols: 13, ldX: 15, ldY: 17, offX: 1, offY: 3, scale: 1 },
      { rows: 12000, cols: 12, ldX: 16, ldY: 12, offX: 4, offY: 0, scale: 1 },  // vec4: 3 per row, 36,000
    ];
    let seed = 40;
    for (const c of cases) {
      for (const accumulate of [false, true]) {
        const rand = rng(seed++);
        const nx = c.offX + (c.rows - 1) * c.ldX + c.cols, ny = c.offY + (c.rows - 1) * c.ldY + c.cols + 5;
        const x = randomArray(nx, rand), y0 = randomArray(ny, rand);
        const bx = ctx.upload(x), by = ctx.upload(y0);
        await runDispatches(ctx, [prepareCopy(ctx, { ...c, accumulate }, { x: bx, y: by })]);
        const ref = Float64Array.from(y0);
        for (let r = 0; r < c.rows; r++) {
          for (let k = 0; k < c.cols; k++) {
            const o = c.offY + r * c.ldY + k;
            ref[o] = c.scale * x[c.offX + r * c.ldX + k] + (accumulate ? y0[o] : 0);
          }
        }
        expectEachClose(await ctx.readF32(by, ny), ref, 1e-5, `copy ${JSON.stringify(c)} accumulate ${accumulate}`);
        for (const buf of [bx, by]) ctx.release(buf);
      }
    }
  });

  const CONCATS: [number, number[]][] = [[1, [1, 1]], [5, [3, 5, 1]], [7, [4, 8]], [33, [4, 3, 12]], [100, [10, 6]], [3, [1001]], [500, [7, 16, 9]], [5000, [7, 16, 9]]];

  for (const [rows, cols] of CONCATS) {
    it(`concat along the last axis, forward and backward (+ accumulate), [${rows}, ${cols.join('+')}]`, async () => {
      const rand = rng(rows * 31 + cols.length);
      const total = cols.reduce((s, c) => s + c, 0);
      const xs = cols.map((c) => randomArray(rows * c, rand, 3));
      const dy = randomArray(rows * total, rand);
      const dx0 = cols.map((c) => randomArray(rows * c, rand));
      const acc = cols.map((_, i) => i % 2 === 1);
      const bxs = xs.map((x) => ctx.upload(x));
      const y = output(rows * total);
      const bdy = ctx.upload(dy);
      const dxs = cols.map((c, i) => output(rows * c));
      const dxsAcc = cols.map((c, i) => output(rows * c, acc[i] ? dx0[i] : undefined));
      await runDispatches(ctx, [
        ...prepareConcat(ctx, { rows, cols }, { xs: bxs, y }),
        ...prepareConcatBackward(ctx, { rows, cols }, { dy: bdy, dxs }),
        ...prepareConcatBackward(ctx, { rows, cols, accumulate: acc }, { dy: bdy, dxs: dxsAcc }),
      ]);
      const what = `[${rows}, ${cols.join('+')}]`;
      const refY = concatRef(xs, rows, cols);
      const gotY = await ctx.readF32(y, rows * total);
      expectEachClose(gotY, refY, 1e-5, `${what} y`);
      const refDx = concatBackwardRef(dy, rows, cols);
      const refDxAcc = concatBackwardRef(dy, rows, cols, dx0.map((d, i) => (acc[i] ? d : undefined)));
      for (let i = 0; i < cols.length; i++) {
        expectEachClose(await ctx.readF32(dxs[i], rows * cols[i]), refDx[i], 1e-4, `${what} dx${i}`);
        expectEachClose(await ctx.readF32(dxsAcc[i], rows * cols[i]), refDxAcc[i], 1e-4, `${what} dx${i}${acc[i] ? ' +=' : ''}`);
      }
      notes.push(`concat ${what}: y ${relError(gotY, refY).toExponential(2)}`);
      for (const buf of [...bxs, y, bdy, ...dxs, ...dxsAcc]) ctx.release(buf);
    });
  }

  it('concat and its backward read and write tensors that start at element offsets', async () => {
    const rows = 9, cols = [5, 4, 3], total = 12, offsets = [3, 0, 8], yOffset = 4;
    const rand = rng(75);
    const xs = cols.map((c) => randomArray(rows * c, rand));
    const dy = randomArray(rows * total, rand);
    const padded = (v: Float32Array, off: number) => { const p = randomArray(off + v.length + 2, rand); p.set(v, off); return p; };
    const bxs = xs.map((x, i) => ctx.upload(padded(x, offsets[i])));
    const y0 = randomArray(yOffset + rows * total + 3, rand);
    const by = ctx.upload(y0), bdy = ctx.upload(padded(dy, yOffset));
    const dx0 = cols.map((c, i) => randomArray(offsets[i] + rows * c + 2, rand));
    const bdxs = dx0.map((d) => ctx.upload(d));
    await runDispatches(ctx, [
      ...prepareConcat(ctx, { rows, cols, offsets, yOffset }, { xs: bxs, y: by }),
      ...prepareConcatBackward(ctx, { rows, cols, offsets, yOffset }, { dy: bdy, dxs: bdxs }),
    ]);
    const refY = Float64Array.from(y0);
    refY.set(concatRef(xs, rows, cols), yOffset);
    expectEachClose(await ctx.readF32(by, y0.length), refY, 1e-5, 'y at an offset');
    const refDx = concatBackwardRef(dy, rows, cols);
    for (let i = 0; i < cols.length; i++) {
      const want = Float64Array.from(dx0[i]);
      want.set(refDx[i], offsets[i]);
      expectEachClose(await ctx.readF32(bdxs[i], dx0[i].length), want, 1e-4, `dx${i} at offset ${offsets[i]}`);
    }
    for (const buf of [...bxs, by, bdy, ...bdxs]) ctx.release(buf);
  });

  it('concat backward skips inputs that want no gradient', async () => {
    const rows = 6, cols = [3, 4, 2];
    const dy = randomArray(rows * 9, rng(70));
    const bdy = ctx.upload(dy), dx2 = output(rows * 2);
    const ds = prepareConcatBackward(ctx, { rows, cols }, { dy: bdy, dxs: [undefined, undefined, dx2] });
    expect(ds).to.have.length(1);
    await runDispatches(ctx, ds);
    expectEachClose(await ctx.readF32(dx2, rows * 2), concatBackwardRef(dy, rows, cols)[2], 1e-4, 'dx2 alone');
    for (const buf of [bdy, dx2]) ctx.release(buf);
  });

  describe('finite-difference checks of the CPU backward twins (float64)', () => {
    it('add: da = db = dy', () => {
      const n = 11;
      const rand = rng(80);
      const a = Float64Array.from(randomArray(n, rand)), b = Float64Array.from(randomArray(n, rand));
      const w = randomArray(n, rand);
      const g = addBackwardRef(w);
      const ea = gradCheck((v) => dot(w, addRef(v, b)), a, g.da);
      const eb = gradCheck((v) => dot(w, addRef(a, v)), b, g.db);
      notes.push(`gradCheck add: da ${ea.toExponential(2)}, db ${eb.toExponential(2)}`);
      expect(ea, 'da').to.be.lessThan(1e-6);
      expect(eb, 'db').to.be.lessThan(1e-6);
    });

    it('concat: dx_i = the column range of dy', () => {
      const rows = 4, cols = [3, 1, 5];
      const rand = rng(81);
      const xs = cols.map((c) => Float64Array.from(randomArray(rows * c, rand)));
      const w = randomArray(rows * 9, rand);
      const dxs = concatBackwardRef(w, rows, cols);
      cols.forEach((_, i) => {
        const e = gradCheck((v) => dot(w, concatRef(xs.map((x, k) => (k === i ? v : x)), rows, cols)), xs[i], dxs[i]);
        notes.push(`gradCheck concat dx${i}: ${e.toExponential(2)}`);
        expect(e, `dx${i}`).to.be.lessThan(1e-6);
      });
    });
  });

  it('rejects bad shapes and aliased buffers with messages naming the op', () => {
    const b = ctx.storage(16), c = ctx.storage(16);
    expect(() => prepareAdd(ctx, { n: 0 }, { a: b, b, y: c })).to.throw(/add \[0\]: n must be a positive integer/);
    expect(() => prepareAdd(ctx, { n: 5 }, { a: b, b, y: c })).to.throw(/add \[5\]: buffer a has 16 bytes, needs 20/);
    expect(() => prepareAdd(ctx, { n: 4 }, { a: b, b: c, y: b })).to.throw(/y must differ from a and b/);
    expect(() => prepareCopy(ctx, { rows: 2, cols: 3, ldX: 2 }, { x: b, y: c })).to.throw(/copy \[2,3\]: ldX must be an integer ≥ cols/);
    expect(() => prepareCopy(ctx, { rows: 1, cols: 3, offY: 2 }, { x: b, y: c })).to.throw(/buffer y has 16 bytes, needs 20/);
    expect(() => prepareConcat(ctx, { rows: 1, cols: [1, 1] }, { xs: [b], y: c })).to.throw(/concat \[1, 1\+1\]: 2 column counts but 1 input buffers/);
    expect(() => prepareConcatBackward(ctx, { rows: 1, cols: [2, 0] }, { dy: b, dxs: [c, c] })).to.throw(/cols\[1\] must be a positive integer/);
    expect(() => prepareAddBackward(ctx, { n: 4 }, { dy: b, da: b })).to.throw(/da and db must differ from dy/);
    ctx.release(b); ctx.release(c);
  });
});
