import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { expectClose, gradCheck, randomArray, relError, rng } from './support/cpu.js';
import { softmaxXentRef } from './ref/softmax-xent.js';
import { argmaxRef, countCorrect, labelsNear, scoresWithTies } from './ref/argmax.js';
import { ONE_PASS_MAX_LOGITS, prepareSoftmaxXent, softmaxXentAdvancesStep } from '../src/kernels/softmax-xent.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

const SHAPES: [number, number][] = [[1, 2], [3, 1], [7, 3], [50, 10], [100, 10], [13, 1000], [55000, 10]];
const errors: string[] = [];

function randomLabels(B: number, C: number, rand: () => number): Uint32Array {
  const l = new Uint32Array(B);
  for (let i = 0; i < B; i++) l[i] = Math.min(C - 1, Math.floor(rand() * C));
  return l;
}

describe('softmax cross-entropy (shaders/softmax_xent.wgsl) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });
  after(() => { if (process.env.SHOW_ERRORS) console.log(errors.join('\n')); });

  /**
   * Runs the kernel `repeat` times (one submit) and returns what it wrote; with `correct0`, also the
   * accuracy (predictions, and the count added to correct0).
   */
  async function run(logits: Float32Array, labels: Uint32Array, B: number, C: number,
    o: { lossSum0?: number; repeat?: number; passes?: 1 | 2; correct0?: number; step0?: number } = {}) {
    const counting = o.correct0 !== undefined;
    const bufs = {
      logits: ctx.upload(logits), labels: ctx.upload(labels),
      loss: ctx.storage(B * 4), dlogits: ctx.storage(B * C * 4), meanLoss: ctx.storage(4),
      lossSum: o.lossSum0 !== undefined ? ctx.upload(new Float32Array([o.lossSum0])) : undefined,
      predictions: counting ? ctx.storage(B * 4) : undefined,
      correct: counting ? ctx.upload(new Uint32Array([o.correct0!])) : undefined,
      stepCounter: o.step0 !== undefined ? ctx.upload(new Uint32Array([o.step0])) : undefined,
    };
    ctx.poison(bufs.loss); ctx.poison(bufs.dlogits); ctx.poison(bufs.meanLoss);
    if (bufs.predictions) ctx.poison(bufs.predictions);
    const ds = prepareSoftmaxXent(ctx, { batch: B, classes: C, accumulateLoss: o.lossSum0 !== undefined, passes: o.passes }, bufs);
    await runDispatches(ctx, Array.from({ length: o.repeat ?? 1 }, () => ds).flat());
    const out = {
      dispatches: ds.length,
      loss: await ctx.readF32(bufs.loss, B),
      grad: await ctx.readF32(bufs.dlogits, B * C),
      mean: (await ctx.readF32(bufs.meanLoss, 1))[0],
      lossSum: bufs.lossSum ? (await ctx.readF32(bufs.lossSum, 1))[0] : NaN,
      predictions: bufs.predictions ? await ctx.readU32(bufs.predictions, B) : undefined,
      correct: bufs.correct ? (await ctx.readU32(bufs.correct, 1))[0] : NaN,
      step: bufs.stepCounter ? (await ctx.readU32(bufs.stepCounter, 1))[0] : NaN,
    };
    for (const b of Object.values(bufs)) if (b) ctx.release(b);
    return out;
  }

  async function check(B: number, C: number, seed: number, scale: number) {
    const rand = rng(seed);
    const logits = randomArray(B * C, rand, scale);
    const labels = randomLabels(B, C, rand);
    const got = await run(logits, labels, B, C);
    const ref = softmaxXentRef(logits, labels, B, C);
    const what = `[${B},${C}] scale ${scale}`;
    expectClose(got.loss, ref.loss, 1e-5, `${what} loss`);
    expectClose([got.mean], [ref.mean], 1e-5, `${what} mean loss`);
    expectClose(got.grad, ref.grad, 1e-4, `${what} dlogits`);
    errors.push(`${what}: loss ${relError(got.loss, ref.loss).toExponential(2)}, mean ${relError([got.mean], [ref.mean]).toExponential(2)}, dlogits ${relError(got.grad, ref.grad).toExponential(2)}`);
  }

  it(`loss, batch-mean loss and gradient on ${SHAPES.length} shapes`, async () => {
    let seed = 1;
    for (const [B, C] of SHAPES) await check(B, C, seed++, 3);
  });

  it('logits of ±1e4 give finite, correct loss and gradient (no overflow in exp)', async () => {
    let seed = 20;
    for (const [B, C] of [[7, 3], [50, 10], [100, 10]] as [number, number][]) await check(B, C, seed++, 1e4);
    // Hand-made rows: the label at +1e4, at −1e4, and between.
    const C = 4;
    const logits = new Float32Array([1e4, -1e4, 0, 5, /**/ 1e4, -1e4, 0, 5, /**/ -1e4, 1e4, 1e4, -1e4]);
    const labels = new Uint32Array([0, 1, 2]);
    const got = await run(logits, labels, 3, C);
    const ref = softmaxXentRef(logits, labels, 3, C);
    expectClose(got.loss, ref.loss, 1e-5, '±1e4 rows loss');
    expect(got.loss[1]).to.equal(2e4);
    expectClose(got.grad, ref.grad, 1e-4, '±1e4 rows dlogits');
    expectClose([got.mean], [ref.mean], 1e-5, '±1e4 rows mean');
  });

  it('all-equal logits give loss log C and gradient (1/C − onehot)/B', async () => {
    for (const [B, C, v] of [[5, 10, 0], [8, 3, 1e4], [3, 1000, -1e4], [1, 7, 2.5]] as [number, number, number][]) {
      const logits = new Float32Array(B * C).fill(v);
      const labels = randomLabels(B, C, rng(B * C));
      const got = await run(logits, labels, B, C);
      const ref = softmaxXentRef(logits, labels, B, C);
      for (let r = 0; r < B; r++) expect(ref.loss[r]).to.be.closeTo(Math.log(C), 1e-12);
      expectClose(got.loss, ref.loss, 1e-5, `all ${v}: loss`);
      expectClose(got.grad, ref.grad, 1e-4, `all ${v}: dlogits`);
      expectClose([got.mean], [Math.log(C)], 1e-5, `all ${v}: mean`);
    }
  });

  it('keeps the relative accuracy of tiny losses (confident, correct predictions)', async () => {
    const B = 64, C = 10;
    const rand = rng(30);
    const logits = randomArray(B * C, rand);
    const labels = randomLabels(B, C, rand);
    for (let r = 0; r < B; r++) logits[r * C + labels[r]] = 12 + 8 * rand(); // losses ~ 1e-5 … 1e-9
    const got = await run(logits, labels, B, C);
    const ref = softmaxXentRef(logits, labels, B, C);
    let worst = 0;
    for (let r = 0; r < B; r++) worst = Math.max(worst, Math.abs(got.loss[r] - ref.loss[r]) / ref.loss[r]);
    errors.push(`tiny losses: worst per-example relative error ${worst.toExponential(2)}`);
    expect(worst, `worst per-example relative error ${worst}`).to.be.lessThan(1e-5);
    expectClose(got.grad, ref.grad, 1e-4, 'tiny losses dlogits');
  });

  it('accumulates the batch-mean loss into a running sum on the GPU', async () => {
    const B = 100, C = 10;
    const rand = rng(40);
    const logits = randomArray(B * C, rand, 3);
    const labels = randomLabels(B, C, rand);
    const got = await run(logits, labels, B, C, { lossSum0: 0.25, repeat: 3 });
    const ref = softmaxXentRef(logits, labels, B, C);
    expectClose([got.lossSum], [0.25 + 3 * ref.mean], 1e-5, 'running loss sum');
    expectClose([got.mean], [ref.mean], 1e-5, 'mean loss');
  });

  it('an out-of-range label gives a NaN loss and gradient for that row only', async () => {
    const B = 4, C = 5;
    const logits = randomArray(B * C, rng(50));
    const labels = new Uint32Array([1, 5, 0, 4]);
    const got = await run(logits, labels, B, C);
    expect(Number.isNaN(got.loss[1])).to.equal(true);
    expect(Number.isNaN(got.mean)).to.equal(true);
    expect(got.grad.slice(C, 2 * C).every(Number.isNaN)).to.equal(true);
    const ok = [0, 2, 3];
    const ref = softmaxXentRef(logits, labels.map((l) => Math.min(l, C - 1)), B, C);
    expectClose(ok.map((r) => got.loss[r]), ok.map((r) => ref.loss[r]), 1e-5, 'other rows');
  });

  it('one dispatch (rows and mean in one workgroup) and two give the same bits, the default being one up to ONE_PASS_MAX_LOGITS', async () => {
    let seed = 70;
    for (const [B, C] of [...SHAPES, [64, 1024], [65, 1024]] as [number, number][]) {
      const rand = rng(seed++);
      const logits = randomArray(B * C, rand, 3);
      const labels = randomLabels(B, C, rand);
      const one = await run(logits, labels, B, C, { passes: 1, lossSum0: 0.5 });
      const two = await run(logits, labels, B, C, { passes: 2, lossSum0: 0.5 });
      const what = `[${B},${C}]`;
      expect([one.dispatches, two.dispatches], what).to.deep.equal([1, 2]);
      expect(Array.from(one.loss), `${what} loss`).to.deep.equal(Array.from(two.loss));
      expect(Array.from(one.grad), `${what} dlogits`).to.deep.equal(Array.from(two.grad));
      expect([one.mean, one.lossSum], `${what} mean loss and running sum`).to.deep.equal([two.mean, two.lossSum]);
      const ref = softmaxXentRef(logits, labels, B, C);
      expectClose([one.mean], [ref.mean], 1e-5, `${what} mean loss`);
      expect((await run(logits, labels, B, C)).dispatches, `${what} default`).to.equal(B * C <= ONE_PASS_MAX_LOGITS ? 1 : 2);
    }
  });

  it('with a step counter, advances it by one per run in either form, and computes the same bits', async () => {
    let seed = 80;
    for (const [B, C] of [[7, 3], [100, 10], [65, 1024]] as [number, number][]) {
      const rand = rng(seed++);
      const logits = randomArray(B * C, rand, 3);
      const labels = randomLabels(B, C, rand);
      for (const passes of [1, 2] as const) {
        const what = `[${B},${C}], ${passes} pass(es)`;
        const plain = await run(logits, labels, B, C, { passes, lossSum0: 0.5, correct0: 2 });
        const stepping = await run(logits, labels, B, C, { passes, lossSum0: 0.5, correct0: 2, step0: 41, repeat: 3 });
        expect(stepping.step, `${what}: the counter after three runs from 41`).to.equal(44);
        expect(stepping.dispatches, what).to.equal(passes);
        expect(Array.from(stepping.loss), `${what} loss`).to.deep.equal(Array.from(plain.loss));
        expect(Array.from(stepping.grad), `${what} dlogits`).to.deep.equal(Array.from(plain.grad));
        expect(stepping.mean, `${what} mean`).to.equal(plain.mean);
        expect(Array.from(stepping.predictions!), `${what} predictions`).to.deep.equal(Array.from(plain.predictions!));
      }
    }
  });

  it('advances the step counter only where the device allows its binding (8 storage buffers: the two-dispatch form only)', () => {
    const limited = (n: number) => ({ limits: { maxStorageBuffersPerShaderStage: n } }) as unknown as GpuContext;
    expect(softmaxXentAdvancesStep(limited(8), 100, 10), 'one workgroup, 8 buffers').to.equal(false);
    expect(softmaxXentAdvancesStep(limited(9), 100, 10), 'one workgroup, 9 buffers').to.equal(true);
    expect(softmaxXentAdvancesStep(limited(8), 65, 1024), 'two dispatches, 8 buffers').to.equal(true);
  });

  it('with predictions and a counter, also counts the accuracy (first max on ties), in either form', async () => {
    let seed = 90;
    for (const [B, C] of [...SHAPES, [64, 3], [200, 10]] as [number, number][]) {
      const rand = rng(seed++);
      const logits = scoresWithTies(B, C, rand);
      const expected = argmaxRef(logits, B, C);
      const labels = labelsNear(expected, C, rand);
      const plain = await run(logits, labels, B, C, { passes: 1 });
      for (const passes of [1, 2] as const) {
        const what = `[${B},${C}] in ${passes} dispatch(es)`;
        const got = await run(logits, labels, B, C, { passes, correct0: 7 });
        for (let r = 0; r < B; r++) if (got.predictions![r] !== expected[r]) expect.fail(`${what} row ${r}: predicted ${got.predictions![r]}, expected ${expected[r]}`);
        expect(got.correct, `${what}: correct count (+7 already in the counter)`).to.equal(7 + countCorrect(expected, labels));
        expect(Array.from(got.loss), `${what}: the loss as without counting`).to.deep.equal(Array.from(plain.loss));
        expect(Array.from(got.grad), `${what}: dlogits as without counting`).to.deep.equal(Array.from(plain.grad));
      }
    }
  });

  it('an out-of-range label still gets a prediction, never counted right', async () => {
    const B = 4, C = 5;
    const logits = randomArray(B * C, rng(95));
    const labels = new Uint32Array([1, 5, 0, 4]);
    const expected = argmaxRef(logits, B, C);
    for (const passes of [1, 2] as const) {
      const got = await run(logits, labels, B, C, { passes, correct0: 0 });
      expect(Array.from(got.predictions!), `${passes} dispatch(es)`).to.deep.equal(Array.from(expected));
      expect(got.correct).to.equal(countCorrect(expected, labels));
      expect(Number.isNaN(got.loss[1])).to.equal(true);
    }
  });

  it('CPU gradient twin passes a finite-difference check (float64)', () => {
    let seed = 60;
    for (const [B, C] of [[1, 2], [3, 4], [5, 10], [2, 1]] as [number, number][]) {
      const rand = rng(seed++);
      const x = Float64Array.from(randomArray(B * C, rand, 3));
      const labels = randomLabels(B, C, rand);
      const e = gradCheck((v) => softmaxXentRef(v, labels, B, C).mean, x, softmaxXentRef(x, labels, B, C).grad);
      errors.push(`gradCheck [${B},${C}]: ${e.toExponential(2)}`);
      expect(e, `gradCheck [${B},${C}]`).to.be.lessThan(1e-6);
    }
  });

  it('rejects bad shapes and a missing lossSum with messages naming the op', () => {
    const b = ctx.storage(16);
    const bufs = { logits: b, labels: b, loss: b, dlogits: b, meanLoss: b };
    expect(() => prepareSoftmaxXent(ctx, { batch: 0, classes: 3 }, bufs)).to.throw(/softmax cross-entropy \[0,3\]: batch must be a positive integer/);
    expect(() => prepareSoftmaxXent(ctx, { batch: 10, classes: 3 }, bufs)).to.throw(/buffer logits has 16 bytes, needs 120/);
    expect(() => prepareSoftmaxXent(ctx, { batch: 1, classes: 1, accumulateLoss: true }, bufs)).to.throw(/accumulateLoss needs a lossSum buffer/);
    expect(() => prepareSoftmaxXent(ctx, { batch: 1, classes: 1 }, { ...bufs, correct: b })).to.throw(/predictions and correct go together/);
    ctx.release(b);
  });
});
