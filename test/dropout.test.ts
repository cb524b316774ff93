import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { dot, expectClose, gradCheck, randomArray, relError, rng } from './support/cpu.js';
import { dropoutBackwardRef, dropoutMaskRef, dropoutRef, philox4x32_10 } from './ref/dropout.js';
import { dropoutKeepThreshold, prepareDropout, prepareDropoutBackward } from '../src/kernels/dropout.js';
import { createStepCounter, prepareStepIncrement } from '../src/kernels/step.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

const SIZES = [1, 7, 1000, 100 * 256, 10007];
const BIG = (1 << 20) + 3; // ≥ 1e6 elements for the statistics
const notes: string[] = [];

function keptFraction(mask: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < mask.length; i++) s += mask[i];
  return s / mask.length;
}

/** Pearson correlation of a[i] and b[i + lag]. */
function correlation(a: ArrayLike<number>, b: ArrayLike<number>, lag = 0): number {
  const n = a.length - lag;
  let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i], y = b[i + lag];
    sa += x; sb += y; saa += x * x; sbb += y * y; sab += x * y;
  }
  const cov = sab / n - (sa / n) * (sb / n);
  return cov / Math.sqrt((saa / n - (sa / n) ** 2) * (sbb / n - (sb / n) ** 2));
}

/** Wald–Wolfowitz runs test z-score of a 0/1 sequence. */
function runsZ(mask: ArrayLike<number>): number {
  const n = mask.length;
  let n1 = 0, runs = 1;
  for (let i = 0; i < n; i++) {
    n1 += mask[i];
    if (i > 0 && mask[i] !== mask[i - 1]) runs++;
  }
  const n0 = n - n1;
  const mu = (2 * n1 * n0) / n + 1;
  const v = ((mu - 1) * (mu - 2)) / (n - 1);
  return (runs - mu) / Math.sqrt(v);
}

describe('dropout (shaders/dropout.wgsl, Philox4x32-10) and the GPU step counter (shaders/step.wgsl)', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  after(() => { if (process.env.SHOW_ERRORS) console.log(notes.join('\n')); });

  /** Runs the forward at the given step (written to a fresh counter) and returns mask and y. */
  async function forward(x: Float32Array, keepProb: number, seed: number, step: number, stream = 0) {
    const n = x.length;
    const bufs = { x: ctx.upload(x), y: ctx.storage(n * 4), mask: ctx.storage(n * 4), step: createStepCounter(ctx, step) };
    ctx.poison(bufs.y); ctx.poison(bufs.mask);
    await runDispatches(ctx, [prepareDropout(ctx, { n, keepProb, seed, stream }, bufs)]);
    const out = { mask: await ctx.readF32(bufs.mask, n), y: await ctx.readF32(bufs.y, n) };
    for (const b of Object.values(bufs)) ctx.release(b);
    return out;
  }

  it('the CPU Philox4x32-10 twin reproduces the Random123 known-answer vectors', () => {
    expect(philox4x32_10([0, 0, 0, 0], [0, 0])).to.deep.equal([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(philox4x32_10([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))
      .to.deep.equal([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    expect(philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))
      .to.deep.equal([0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
  });

  it(`GPU masks equal the CPU Philox masks bit for bit, and y = x·mask/keep_prob (${SIZES.length} sizes)`, async () => {
    let seed = 1;
    for (const n of SIZES) {
      for (const keepProb of [0.5, 0.9, 0.3]) {
        const rand = rng(seed++);
        const x = randomArray(n, rand, 3);
        const key = (rand() * 2 ** 32) >>> 0, step = (rand() * 2 ** 32) >>> 0, stream = seed % 3;
        const got = await forward(x, keepProb, key, step, stream);
        const mask = dropoutMaskRef(n, dropoutKeepThreshold(keepProb), key, stream, step);
        for (let i = 0; i < n; i++) if (got.mask[i] !== mask[i]) expect.fail(`n=${n} keep ${keepProb}: mask[${i}] = ${got.mask[i]}, CPU Philox ${mask[i]}`);
        const ref = dropoutRef(x, mask, keepProb);
        expectClose(got.y, ref, 1e-5, `dropout n=${n} keep ${keepProb}`);
        notes.push(`forward n=${n} keep ${keepProb}: y rel. error ${relError(got.y, ref).toExponential(2)}`);
      }
    }
  });

  for (const keepProb of [0.5, 0.9]) {
    it(`keep_prob ${keepProb} over ${BIG} elements: kept fraction within 4σ, no lag-1 correlation, runs test, new mask each step`, async () => {
      const x = randomArray(BIG, rng(10), 2);
      const a = await forward(x, keepProb, 1234, 7);
      const b = await forward(x, keepProb, 1234, 8);
      const a2 = await forward(x, keepProb, 1234, 7);
      const p = dropoutKeepThreshold(keepProb) / 2 ** 24;
      const sigma = Math.sqrt((p * (1 - p)) / BIG);
      const lines = [];
      for (const [name, m] of [['step 7', a.mask], ['step 8', b.mask]] as const) {
        const f = keptFraction(m);
        const lag1 = correlation(m, m, 1);
        const z = runsZ(m);
        lines.push(`${name}: kept ${f.toFixed(5)} (${((f - p) / sigma).toFixed(2)}σ), lag-1 corr ${lag1.toExponential(2)}, runs z ${z.toFixed(2)}`);
        expect(Math.abs(f - keepProb), `${name}: kept fraction ${f}`).to.be.lessThan(4 * sigma);
        expect(Math.abs(lag1), `${name}: lag-1 correlation ${lag1}`).to.be.lessThan(0.01);
        for (const lag of [2, 3, 4, 5, 8]) expect(Math.abs(correlation(m, m, lag)), `${name}: lag-${lag} correlation`).to.be.lessThan(0.01);
        expect(Math.abs(z), `${name}: runs test z = ${z}`).to.be.lessThan(4);
      }
      // Two steps: different masks, uncorrelated; the same step again: the same mask.
      const cross = correlation(a.mask, b.mask);
      let differ = 0;
      for (let i = 0; i < BIG; i++) if (a.mask[i] !== b.mask[i]) differ++;
      const pd = 2 * p * (1 - p);
      lines.push(`steps 7 vs 8: correlation ${cross.toExponential(2)}, ${differ} elements differ (expected ${(pd * BIG).toFixed(0)})`);
      expect(Math.abs(cross)).to.be.lessThan(0.01);
      expect(Math.abs(differ / BIG - pd)).to.be.lessThan(4 * Math.sqrt((pd * (1 - pd)) / BIG));
      expect(Buffer.compare(Buffer.from(a.mask.buffer), Buffer.from(a2.mask.buffer)), 'same seed and step reproduce the mask').to.equal(0);
      expect(Buffer.compare(Buffer.from(a.y.buffer), Buffer.from(a2.y.buffer)), 'same seed and step reproduce y').to.equal(0);
      notes.push(`keep ${keepProb}: ${lines.join('; ')}`);
    });
  }

  it('takes the step from the GPU counter: one recording, steps advanced by the step kernel', async () => {
    const n = 1003, keepProb = 0.7, seed = 99, start = 41;
    const x = randomArray(n, rng(20));
    const step = createStepCounter(ctx, start);
    const bx = ctx.upload(x);
    const outs = [0, 1].map(() => ({ y: ctx.storage(n * 4), mask: ctx.storage(n * 4) }));
    for (const o of outs) { ctx.poison(o.y); ctx.poison(o.mask); }
    const inc = prepareStepIncrement(ctx, {}, { counter: step });
    // A "training step" recorded once: dropout, then step += 1; replayed twice per submit, two submits.
    const d0 = prepareDropout(ctx, { n, keepProb, seed }, { x: bx, step, ...outs[0] });
    const d1 = prepareDropout(ctx, { n, keepProb, seed }, { x: bx, step, ...outs[1] });
    const thr = dropoutKeepThreshold(keepProb);
    for (let submit = 0; submit < 2; submit++) {
      await runDispatches(ctx, [d0, inc, d1, inc]);
      const s0 = start + 2 * submit;
      expect(Array.from(await ctx.readF32(outs[0].mask, n))).to.deep.equal(Array.from(dropoutMaskRef(n, thr, seed, 0, s0)));
      expect(Array.from(await ctx.readF32(outs[1].mask, n))).to.deep.equal(Array.from(dropoutMaskRef(n, thr, seed, 0, s0 + 1)));
      expect((await ctx.readU32(step, 1))[0]).to.equal(s0 + 2);
    }
    // Another stream (layer) at the same step draws another mask.
    const m0 = dropoutMaskRef(n, thr, seed, 0, 5), m1 = dropoutMaskRef(n, thr, seed, 1, 5);
    expect(m0.some((v, i) => v !== m1[i])).to.equal(true);
    for (const b of [step, bx, ...outs.flatMap((o) => [o.y, o.mask])]) ctx.release(b);
  });

  it('keep_prob 1 is an exact identity (every unit kept, y bit-identical to x)', async () => {
    const x = randomArray(10007, rng(30), 1e3);
    x[5] = 1e-40; x[6] = -3.4e38; x[7] = 0;
    const got = await forward(x, 1, 5, 6);
    expect(got.mask.every((v) => v === 1)).to.equal(true);
    expect(Buffer.compare(Buffer.from(got.y.buffer), Buffer.from(x.buffer))).to.equal(0);
  });

  it(`backward dx = dy·mask/keep_prob, plain and accumulating, on ${SIZES.length + 1} sizes`, async () => {
    let seed = 40;
    for (const n of [...SIZES, 55000 * 10]) {
      for (const accumulate of [false, true]) {
        const rand = rng(seed++);
        const keepProb = 0.6;
        const dy = randomArray(n, rand);
        const mask = dropoutMaskRef(n, dropoutKeepThreshold(keepProb), seed, 0, seed);
        const dx0 = accumulate ? randomArray(n, rand) : undefined;
        const bufs = { dy: ctx.upload(dy), mask: ctx.upload(mask), dx: ctx.storage(n * 4) };
        if (dx0) ctx.write(bufs.dx, dx0); else ctx.poison(bufs.dx);
        await runDispatches(ctx, [prepareDropoutBackward(ctx, { n, keepProb, accumulate }, bufs)]);
        const got = await ctx.readF32(bufs.dx, n);
        for (const b of Object.values(bufs)) ctx.release(b);
        const ref = dropoutBackwardRef(dy, mask, keepProb, dx0);
        expectClose(got, ref, 1e-4, `dropout backward n=${n} accumulate=${accumulate}`);
        notes.push(`backward n=${n} accumulate=${accumulate}: ${relError(got, ref).toExponential(2)}`);
      }
    }
  });

  it('CPU backward twin passes a finite-difference check (float64)', () => {
    let seed = 60;
    for (const n of [1, 7, 100]) {
      const rand = rng(seed++);
      const x = Float64Array.from(randomArray(n, rand));
      const w = randomArray(n, rand);
      const mask = dropoutMaskRef(n, dropoutKeepThreshold(0.5), seed, 0, 0);
      const e = gradCheck((v) => dot(w, dropoutRef(v, mask, 0.5)), x, dropoutBackwardRef(w, mask, 0.5));
      notes.push(`gradCheck n=${n}: ${e.toExponential(2)}`);
      expect(e).to.be.lessThan(1e-6);
    }
  });

  it('rejects keep_prob outside (0, 1] and aliased buffers', () => {
    const b = ctx.storage(64), c = ctx.storage(64), d = ctx.storage(64), s = createStepCounter(ctx);
    expect(() => prepareDropout(ctx, { n: 4, keepProb: 0, seed: 1 }, { x: b, y: c, mask: d, step: s })).to.throw(/keepProb must be in \(0, 1\]/);
    expect(() => prepareDropout(ctx, { n: 4, keepProb: 0.5, seed: 1 }, { x: b, y: b, mask: d, step: s })).to.throw(/different buffers/);
    expect(() => prepareDropoutBackward(ctx, { n: 4, keepProb: 1.5 }, { dy: b, mask: c, dx: d })).to.throw(/keepProb/);
    for (const x of [b, c, d, s]) ctx.release(x);
  });
});
