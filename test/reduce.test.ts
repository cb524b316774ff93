import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { expectClose, randomArray, relError, rng } from './support/cpu.js';
import { columnSum } from '../src/kernels/reduce.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

/** Float64 column sums of x [rows, cols] (+ out0). */
function columnSumRef(x: ArrayLike<number>, rows: number, cols: number, out0?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(cols);
  if (out0) for (let j = 0; j < cols; j++) out[j] = out0[j];
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j] += x[i * cols + j];
  return out;
}

const SHAPES: [number, number][] = [
  [1, 1], [1, 10], [7, 1], [7, 10], [7, 1024], [50, 10], [255, 3], [256, 64], [257, 65],
  [1000, 33], [39200, 32], [55000, 1], [55000, 10], [9800, 64], [300, 1024], [65537, 3],
];

describe('columnSum (shaders/reduce.wgsl) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  async function check(seed: number, rows: number, cols: number, accumulate: boolean, offsetMean = 0): Promise<number> {
    const rand = rng(seed);
    const x = randomArray(rows * cols, rand);
    if (offsetMean) for (let i = 0; i < x.length; i++) x[i] += offsetMean;
    const out0 = accumulate ? randomArray(cols, rand) : undefined;
    const bx = ctx.upload(x);
    const out = ctx.storage(cols * 4);
    if (out0) ctx.write(out, out0); else ctx.poison(out);
    const live = ctx.liveBuffers;
    const ds = columnSum(ctx, { rows, cols, accumulate }, { x: bx, out });
    const scratch = ctx.liveBuffers - live;
    await runDispatches(ctx, ds);
    const got = await ctx.readF32(out, cols);
    const ref = columnSumRef(x, rows, cols, out0);
    ctx.release(bx);
    ctx.release(out);
    expect(ds.length, `passes for ${rows} rows`).to.equal(rows <= 256 ? 1 : rows <= 65536 ? 2 : 3);
    expect(scratch, 'scratch buffers made at prepare time').to.equal(ds.length - 1 + ds.length /* uniforms */);
    expectClose(got, ref, 1e-5, `columnSum rows=${rows} cols=${cols} accumulate=${accumulate} seed=${seed}`);
    return relError(got, ref);
  }

  it(`out = column sums on ${SHAPES.length} shapes (rows 1…65537, cols 1…1024)`, async () => {
    let seed = 1;
    const errs: string[] = [];
    for (const [rows, cols] of SHAPES) errs.push(`${rows}x${cols}: ${(await check(seed++, rows, cols, false)).toExponential(1)}`);
    console.log(`      rel. errors ${errs.join(', ')}`);
  });

  it('out += column sums (gradient accumulation)', async () => {
    let seed = 50;
    for (const [rows, cols] of SHAPES.slice(0, 12)) await check(seed++, rows, cols, true);
  });

  it('stays accurate on 55,000 rows of a repeated value, where one serial float32 sum fails 1e-5', async () => {
    const rows = 55000, cols = 10;
    // Column j repeats 0.1 + 0.07·j: rounding errors of a serial sum then all go the same way.
    const x = new Float32Array(rows * cols);
    for (let i = 0; i < x.length; i++) x[i] = 0.1 + 0.07 * (i % cols);
    const bx = ctx.upload(x);
    const out = ctx.storage(cols * 4);
    ctx.poison(out);
    await runDispatches(ctx, columnSum(ctx, { rows, cols }, { x: bx, out }));
    const got = await ctx.readF32(out, cols);
    ctx.release(bx);
    ctx.release(out);
    const ref = columnSumRef(x, rows, cols);
    // What one serial loop over all rows would give in float32: the case this test must catch.
    const serial = new Float32Array(cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) serial[j] = Math.fround(serial[j] + x[i * cols + j]);
    const eSerial = relError(serial, ref);
    console.log(`      tree rel. error ${relError(got, ref).toExponential(2)}; one serial float32 loop: ${eSerial.toExponential(2)}`);
    expect(eSerial, 'the data defeats a serial float32 sum').to.be.greaterThan(1e-5);
    expectClose(got, ref, 1e-5, 'columnSum 55000x10 of repeated values');
  });

  it('rejects bad shapes with a message naming the op', () => {
    const b = ctx.dummyBuffer();
    expect(() => columnSum(ctx, { rows: 0, cols: 3 }, { x: b, out: b })).to.throw(/columnSum: rows must be a positive integer/);
    expect(() => columnSum(ctx, { rows: 100, cols: 3, label: 'dB' }, { x: b, out: b })).to.throw(/columnSum dB: x holds 16 bytes/);
  });
});
