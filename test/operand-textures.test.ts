import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { expectClose, matmulRef, randomArray, rng } from './support/cpu.js';
import { hasSubgroupKernel, matmul, type MatmulSpec } from '../src/kernels/matmul.js';
import { DispatchEncoder, encodeDispatch, runDispatches } from '../src/gpu/dispatch.js';
import { PassTimer } from '../src/gpu/profiler.js';
import { OPERAND_TEXTURE_WIDTH } from '../src/gpu/operand-textures.js';
import { MatmulTuner } from '../src/kernels/matmul-tuner.js';
import type { GpuContext } from '../src/gpu/context.js';

/** A dense [rows, cols] matrix stored at float `offset` with row stride `ld` (the gaps poisoned with NaN). */
function strided(dense: Float32Array, rows: number, cols: number, ld: number, offset: number): Float32Array {
  const out = new Float32Array(offset + (rows - 1) * ld + cols + 8).fill(NaN);
  for (let r = 0; r < rows; r++) out.set(dense.subarray(r * cols, (r + 1) * cols), offset + r * ld);
  return out;
}

// Products whose operands span several texture rows (4,096 floats each) and end in a partial one,
// at offsets and strides that keep them on 16-byte boundaries, with and without a K % 4 tail.
// `textured`: the operands the tile reads as vec4s, hence from textures (rows of 207 floats, and Aᵀ
// read by a 16-row tile, are read float by float, from their buffers). `panels`: B has 512 rows or
// more, 4 KiB or more apart, so it is read as panels of 128 columns (the last one partial where
// N % 128 > 0).
const CASES: { M: number; N: number; K: number; transA?: boolean; transB?: boolean; pad: number; offA: number; offB: number; tile?: string; textured: string; panels?: boolean }[] = [
  { M: 100, N: 256, K: 784, pad: 0, offA: 0, offB: 0, textured: 'AB' },
  { M: 37, N: 52, K: 148, pad: 4, offA: 8, offB: 4, textured: 'AB' },
  { M: 64, N: 20, K: 131, transA: true, pad: 8, offA: 4, offB: 12, textured: 'B' },
  { M: 64, N: 20, K: 131, transA: true, pad: 8, offA: 4, offB: 12, tile: 'subgroup-wg8-tm32', textured: 'AB' },
  { M: 45, N: 36, K: 202, transB: true, pad: 2, offA: 16, offB: 8, textured: 'AB' },
  { M: 45, N: 36, K: 203, transB: true, pad: 4, offA: 16, offB: 8, textured: '' },
  { M: 96, N: 128, K: 100, transA: true, transB: true, pad: 0, offA: 4096, offB: 0, tile: 'subgroup-wg16-tm32', textured: 'AB' },
  { M: 50, N: 1024, K: 600, pad: 0, offA: 0, offB: 0, textured: 'AB', panels: true },
  { M: 50, N: 1024, K: 600, pad: 0, offA: 0, offB: 0, tile: 'subgroup-wg32-tm16', textured: 'AB', panels: true },
  { M: 5, N: 1060, K: 517, pad: 28, offA: 4, offB: 8, textured: 'B', panels: true },
  { M: 50, N: 1024, K: 300, pad: 0, offA: 0, offB: 0, textured: 'AB' },
  { M: 7, N: 40, K: 1024, transB: true, pad: 0, offA: 4, offB: 0, textured: 'AB' },
];

describe('matmul operands read as textures (src/gpu/operand-textures.ts) against float64 and the buffer reads', () => {
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
    if (!hasSubgroupKernel(ctx)) throw new Error(`adapter ${ctx.adapterDescription} cannot run the subgroup kernel (it needs 'subgroups' and read-only storage textures); its texture reads cannot be tested here`);
  });

  for (const [i, c] of CASES.entries()) {
    const name = `${c.transA ? 'Aᵀ' : 'A'}·${c.transB ? 'Bᵀ' : 'B'}`;
    it(`${name} ${c.M}x${c.K}x${c.N} at offsets ${c.offA}, ${c.offB}${c.tile ? `, ${c.tile}` : ''}: textures for ${c.textured || 'neither'}${c.panels ? ', B as panels' : ''}; both reads match float64 and each other bit for bit`, async () => {
      const rand = rng(500 + i);
      const [aRows, aCols] = c.transA ? [c.K, c.M] : [c.M, c.K];
      const [bRows, bCols] = c.transB ? [c.N, c.K] : [c.K, c.N];
      const A = randomArray(c.M * c.K, rand), B = randomArray(c.K * c.N, rand, 1 / Math.sqrt(c.K));
      const lda = aCols + c.pad, ldb = bCols + c.pad;
      const a = ctx.upload(strided(A, aRows, aCols, lda, c.offA)), b = ctx.upload(strided(B, bRows, bCols, ldb, c.offB));
      const ref = matmulRef(A, B, c.M, c.N, c.K, { transA: c.transA, transB: c.transB });
      const results: Float32Array[] = [];
      for (const textures of [true, false]) {
        const out = ctx.storage(c.M * c.N * 4);
        ctx.poison(out);
        const spec: MatmulSpec = { M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, lda, ldb, offA: c.offA, offB: c.offB, variant: c.tile, textures };
        const d = matmul(ctx, spec, { a, b, c: out });
        const copied = (d.copies ?? []).map((x) => (x.source === a ? 'A' : x.source === b ? 'B' : '?')).join('');
        expect(copied, textures ? 'the operands read as vec4s are copied into textures' : 'no copies when reading buffers').to.equal(textures ? c.textured : '');
        expect([d.kernel.constants.TEX_A, d.kernel.constants.TEX_B], 'the kernel reads the textures it was given').to.deep.equal([copied.includes('A'), copied.includes('B')]);
        const panelled = !!d.copies?.some((x) => x.source === b && x.panels);
        expect([panelled, d.kernel.constants.B_PANELS], 'B is copied and read as panels where its rows lie 4 KiB apart').to.deep.equal([textures && !!c.panels, textures && !!c.panels]);
        await runDispatches(ctx, [d]);
        const got = await ctx.readF32(out, c.M * c.N);
        expectClose(got, ref, 1e-5, `${name} M=${c.M} N=${c.N} K=${c.K} textures=${textures}`);
        results.push(got);
        ctx.release(out);
      }
      expect(Buffer.from(results[0].buffer).equals(Buffer.from(results[1].buffer)), 'textures change where floats are read from, not the sums').to.equal(true);
      ctx.release(a);
      ctx.release(b);
    });
  }

  it('a tuned product that switches to a tile reading A as a texture copies A too (A read float by float before the switch)', async () => {
    // Aᵀ·B: the default 16-row tile reads Aᵀ float by float, from its buffer; the 32-row tile reads
    // it as vec4s, from a texture. A clock that makes the 32-row tile look fastest forces the switch.
    const M = 64, N = 32, K = 40;
    const rand = rng(31);
    const A = randomArray(K * M, rand), B = randomArray(K * N, rand, 1 / Math.sqrt(K));
    const a = ctx.upload(A), b = ctx.upload(B), out = ctx.storage(M * N * 4);
    ctx.poison(out);
    const ticks = [0, 100, 200, 201]; // default: 100 ms; the 32-row tile: 1 ms
    const tuner = new MatmulTuner(ctx, { wallClock: true, repetitions: 1, variants: ['subgroup-wg8-tm32'], clock: () => ticks.shift() ?? 0 });
    const made: string[] = [];
    const createTexture = ctx.device.createTexture.bind(ctx.device);
    ctx.device.createTexture = (desc) => {
      made.push(desc.label ?? '');
      return createTexture(desc);
    };
    let d;
    try {
      d = tuner.scope(() => matmul(ctx, { M, N, K, transA: true, textures: true }, { a, b, c: out }));
    } finally {
      ctx.device.createTexture = createTexture;
    }
    expect(d.copies?.map((c) => c.source), 'before tuning: only B is a texture').to.deep.equal([b]);
    expect(made.filter((label) => label.includes('as texture')).length, 'no texture made for an operand no tile reads from one yet').to.equal(1);
    await tuner.tunePending();
    expect(Object.values(tuner.choices).map((c) => c.variant)).to.deep.equal(['subgroup-wg8-tm32']);
    expect(d.kernel.constants.TEX_A, 'the tuned kernel reads A from a texture').to.equal(true);
    expect(d.copies?.map((c) => c.source), 'after tuning: A and B are copied').to.deep.equal([a, b]);
    await runDispatches(ctx, [d]);
    expectClose(await ctx.readF32(out, M * N), matmulRef(A, B, M, N, K, { transA: true }), 1e-5, 'the tuned Aᵀ·B');
    for (const x of [a, b, out]) ctx.release(x);
  });

  it('an operand off a 16-byte boundary is read from its buffer', () => {
    const a = ctx.storage(4 * 100 * 40), b = ctx.storage(4 * 40 * 40), out = ctx.storage(4 * 99 * 40);
    const d = matmul(ctx, { M: 99, N: 40, K: 40, offA: 2, lda: 42, textures: true }, { a, b, c: out });
    expect(d.copies?.map((x) => x.source), 'only B, whose offset is 0, is a texture').to.deep.equal([b]);
    for (const x of [a, b, out]) ctx.release(x);
  });

  it('a texture is copied once per command encoder while its buffer is unwritten, and again after a dispatch writes the buffer', async () => {
    // y1 = x·w; w = x2·w2 (a dispatch writing w); y2 = x·w. y2 must see the new w; w's texture
    // is copied before y1 and again before y2, x's only once.
    const M = 20, K = 64, N = 32;
    const rand = rng(77);
    const X = randomArray(M * K, rand), W = randomArray(K * N, rand), X2 = randomArray(K * 8, rand), W2 = randomArray(8 * N, rand);
    const x = ctx.upload(X), w = ctx.upload(W), x2 = ctx.upload(X2), w2 = ctx.upload(W2);
    const y1 = ctx.storage(M * N * 4), y2 = ctx.storage(M * N * 4), y0 = ctx.storage(M * N * 4);
    for (const y of [y0, y1, y2]) ctx.poison(y);
    const first = matmul(ctx, { M, N, K, textures: true }, { a: x, b: w, c: y1 });
    const again = matmul(ctx, { M, N, K, textures: true }, { a: x, b: w, c: y0 });
    const rewrite = matmul(ctx, { M: K, N, K: 8, textures: true }, { a: x2, b: w2, c: w });
    const after = matmul(ctx, { M, N, K, textures: true }, { a: x, b: w, c: y2 });
    await Promise.all([first, again, rewrite, after].map((d) => d.kernel.ready));

    const enc = ctx.device.createCommandEncoder();
    const copied: GPUTexture[] = [];
    const copyBufferToTexture = enc.copyBufferToTexture.bind(enc);
    enc.copyBufferToTexture = (src, dst, size) => {
      copied.push(dst.texture);
      copyBufferToTexture(src, dst, size);
    };
    new DispatchEncoder(enc).encode([first, again, rewrite, after]);
    ctx.device.queue.submit([enc.finish()]);
    const [xTex, wTex] = first.copies!.map((c) => c.texture);
    expect(copied.filter((t) => t === xTex).length, 'x: copied once').to.equal(1);
    expect(copied.filter((t) => t === wTex).length, 'w: copied before the first product and again after it was written').to.equal(2);

    const newW = matmulRef(X2, W2, K, N, 8);
    expectClose(await ctx.readF32(y1, M * N), matmulRef(X, W, M, N, K), 1e-5, 'y1 = x·w');
    expectClose(await ctx.readF32(y0, M * N), matmulRef(X, W, M, N, K), 1e-5, 'x·w again, from the same textures');
    expectClose(await ctx.readF32(y2, M * N), matmulRef(X, Float32Array.from(newW), M, N, K), 1e-5, 'y2 = x·(the rewritten w)');
    for (const b of [x, w, x2, w2, y0, y1, y2]) ctx.release(b);
  });

  it('a timed encode that texture copies break into several passes times them all, from the first pass to the last', async () => {
    if (!ctx.hasTimestamps) throw new Error(`adapter ${ctx.adapterDescription} has no 'timestamp-query': timed passes cannot be tested here`);
    // Each product after the first reads a new operand, so its copy breaks the pass: three passes.
    const M = 16, K = 32, N = 16;
    const bufs = [0, 1, 2, 3].map(() => ctx.upload(randomArray(K * N, rng(5))));
    const out = ctx.storage(M * N * 4);
    const products = [1, 2, 3].map((i) => matmul(ctx, { M, N, K, textures: true }, { a: bufs[0], b: bufs[i], c: out }));
    await Promise.all(products.map((d) => d.kernel.ready));
    const timer = new PassTimer(ctx, 1);
    try {
      const enc = ctx.device.createCommandEncoder();
      let passes = 0;
      const begin = enc.beginComputePass.bind(enc);
      enc.beginComputePass = (desc) => { passes++; return begin(desc); };
      new DispatchEncoder(enc).encode(products, timer.pass('three products'));
      timer.resolve(enc);
      ctx.device.queue.submit([enc.finish()]);
      const [timed] = await timer.read();
      ctx.throwIfFailed('a timed encode over several passes');
      expect(passes, 'passes').to.equal(3);
      expect(timed.label).to.equal('three products');
      expect(timed.ns, 'GPU time from the first pass\'s beginning to the last pass\'s end').to.be.greaterThan(0);
    } finally {
      timer.destroy();
      for (const b of [...bufs, out]) ctx.release(b);
    }
  });

  it('a dispatch that reads textures is refused by a bare compute pass, naming DispatchEncoder', () => {
    const a = ctx.storage(4 * 16 * 16), b = ctx.storage(4 * 16 * 16), out = ctx.storage(4 * 16 * 16);
    const d = matmul(ctx, { M: 16, N: 16, K: 16, textures: true }, { a, b, c: out });
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    expect(() => encodeDispatch(pass, d)).to.throw(/DispatchEncoder/);
    pass.end();
    for (const x of [a, b, out]) ctx.release(x);
  });

  it('rows of 1,024 texels: an operand of 4,096·n + 4 floats ends in a row of one texel', async () => {
    expect(OPERAND_TEXTURE_WIDTH).to.equal(1024);
    const M = 8, K = 1028, N = 4; // B: 4,112 floats = a row of 1,024 texels and a row of 4
    const rand = rng(9);
    const A = randomArray(M * K, rand), B = randomArray(K * N, rand, 1 / Math.sqrt(K));
    const a = ctx.upload(A), b = ctx.upload(B), out = ctx.storage(M * N * 4);
    ctx.poison(out);
    const d = matmul(ctx, { M, N, K, textures: true }, { a, b, c: out });
    expect(d.copies!.map((c) => c.texels)).to.deep.equal([M * K / 4, K * N / 4]);
    await runDispatches(ctx, [d]);
    expectClose(await ctx.readF32(out, M * N), matmulRef(A, B, M, N, K), 1e-5, 'a product whose B ends in a short texture row');
    for (const x of [a, b, out]) ctx.release(x);
  });
});
