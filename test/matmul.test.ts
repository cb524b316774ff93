import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { expectClose, matmulRef, randomArray, rng, type Act } from './support/cpu.js';
import { hasSubgroupKernel, matmul, matmulKernelFor, matmulSplitK, splitKFactor, splitKPolicy, type MatmulSpec } from '../src/kernels/matmul.js';
import { MATMUL_VARIANTS } from '../src/kernels/matmul-variants.js';
import { conv2dKernelFor } from '../src/kernels/conv2d.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import type { GpuContext } from '../src/gpu/context.js';

const SHAPES: [number, number, number][] = [
  [1, 1, 1], [7, 33, 100], [33, 7, 257], [100, 10, 256], [100, 256, 784], [1, 257, 7],
  [257, 100, 33], [50, 64, 3136], [3, 784, 1], [64, 64, 64], [9, 1, 784], [130, 70, 45], [16, 12, 32], [37, 20, 28],
  [100, 36, 158], [52, 64, 20], [132, 24, 64],
];

interface Variant {
  transA?: boolean; transB?: boolean; bias?: boolean; act?: Act; accumulate?: boolean; portable?: boolean; tiled?: boolean;
  /** B scaled by 1/√K (as Glorot-initialised weights are), so that the sums are O(1), not O(√K). */
  unitSums?: boolean;
  /** Through matmulSplitK with K split into this many workgroup layers. */
  splits?: number;
  /** A tile variant's id (matmul-variants.ts) instead of the default tile. */
  tile?: string;
}

async function check(ctx: GpuContext, seed: number, M: number, N: number, K: number, o: Variant): Promise<Float32Array> {
  const rand = rng(seed);
  const A = randomArray(M * K, rand);
  const B = randomArray(K * N, rand, o.unitSums ? 1 / Math.sqrt(K) : 1);
  const bias = o.bias ? randomArray(N, rand) : undefined;
  const c0 = o.accumulate ? randomArray(M * N, rand) : undefined;
  const bufs = { a: ctx.upload(A), b: ctx.upload(B), c: ctx.storage(M * N * 4), bias: bias && ctx.upload(bias) };
  if (c0) ctx.write(bufs.c, c0); else ctx.poison(bufs.c);
  const spec = { M, N, K, transA: o.transA, transB: o.transB, activation: o.act, accumulate: o.accumulate, portable: o.portable, tiled: o.tiled, variant: o.tile };
  if (o.splits !== undefined) {
    const ds = matmulSplitK(ctx, { ...spec, splits: o.splits }, bufs);
    expect(ds.map((d) => d.workgroups[2]), 'one dispatch per layer of K, then their sum').to.deep.equal(o.splits > 1 ? [Math.ceil(K / (4 * Math.ceil(Math.ceil(K / o.splits) / 4))), 1] : [1]);
    await runDispatches(ctx, ds);
  } else {
    await runDispatches(ctx, [matmul(ctx, spec, bufs)]);
  }
  const got = await ctx.readF32(bufs.c, M * N);
  const ref = matmulRef(A, B, M, N, K, { transA: o.transA, transB: o.transB, bias, act: o.act, c0 });
  for (const b of [bufs.a, bufs.b, bufs.c, bufs.bias]) if (b) ctx.release(b);
  expectClose(got, ref, 1e-5, `matmul M=${M} N=${N} K=${K} ${JSON.stringify(o)} seed=${seed}`);
  return got;
}

const KERNEL_FILES = { subgroup: 'matmul_subgroup.wgsl', portable: 'matmul.wgsl', tiled: 'matmul_tiled.wgsl' } as const;
for (const kernelName of ['subgroup', 'portable', 'tiled'] as const) {
  const portable = kernelName === 'portable';
  const tiled = kernelName === 'tiled';
  describe(`matmul (shaders/${KERNEL_FILES[kernelName]}) against float64`, function () {
    let ctx: GpuContext;
    before(async function () {
      ctx = await testContext();
      if (kernelName === 'subgroup' && !hasSubgroupKernel(ctx)) {
        throw new Error(`adapter ${ctx.adapterDescription} cannot run matmul_subgroup.wgsl (it needs 'subgroups' and read-only storage textures); it cannot be tested here`);
      }
    });

    for (const variant of [{}, { transA: true }, { transB: true }, { transA: true, transB: true }]) {
      it(`C = ${variant.transA ? 'Aᵀ' : 'A'}·${variant.transB ? 'Bᵀ' : 'B'} on ${SHAPES.length} shapes`, async () => {
        let seed = 1;
        for (const [M, N, K] of SHAPES) await check(ctx, seed++, M, N, K, { ...variant, portable, tiled });
      });
    }

    for (const act of ['relu', 'sigmoid', 'tanh', 'none'] as Act[]) {
      // A sum of K unit terms is O(√K), and its float32 rounding error grows like ε·K (K additions, each off
      // by up to ε·√K); sigmoid and tanh squash the sum into (−1, 1) but not its error, so at K = 784 that
      // error alone is above 1e-5 of their outputs (seen: 1.3e-5 at an output of 0.14, the sum right to 1.4e-6
      // of its size). They get sums of O(1), as in a net with Glorot-scaled weights; relu and none keep unit inputs.
      const unitSums = act === 'sigmoid' || act === 'tanh';
      it(`fused bias + ${act} epilogue`, async () => {
        let seed = 100;
        for (const [M, N, K] of SHAPES.slice(0, 10)) await check(ctx, seed++, M, N, K, { bias: true, act, portable, tiled, unitSums });
      });
    }

    // Split K: weight-gradient shapes (a small output over a long K) and odd ones, chunks whose
    // lengths are not multiples of 4 at the end (the scalar k tail), and every epilogue in the sum.
    const SPLIT: [number, number, number, number][] = [
      [25, 32, 3921, 7], [33, 7, 1000, 3], [5, 9, 17, 2], [64, 50, 2803, 10], [1, 1, 300, 4], [100, 36, 1029, 5],
    ];
    it(`splits K into workgroup layers and sums them (matmulSplitK), all transposes, ${SPLIT.length} shapes`, async () => {
      let seed = 300;
      for (const [M, N, K, splits] of SPLIT) {
        for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
          await check(ctx, seed++, M, N, K, { transA, transB, splits, portable, tiled });
        }
      }
    });
    it('split K applies the bias, activation and accumulation once, in the sum', async () => {
      let seed = 400;
      for (const act of ['relu', 'sigmoid', 'tanh', 'none'] as Act[]) {
        for (const [M, N, K, splits] of SPLIT.slice(0, 3)) {
          await check(ctx, seed++, M, N, K, { bias: true, act, splits, portable, tiled, unitSums: act === 'sigmoid' || act === 'tanh' });
          await check(ctx, seed++, M, N, K, { accumulate: true, transA: true, splits, portable, tiled });
        }
      }
    });

    it('accumulates into C (C += A·B) for gradient accumulation, all transposes', async () => {
      let seed = 200;
      for (const [M, N, K] of SHAPES.slice(0, 10)) {
        await check(ctx, seed++, M, N, K, { accumulate: true, transA: seed % 2 === 0, transB: seed % 3 === 0, portable, tiled });
      }
    });

    for (const [offA, lda, offC, ldc] of [[3, 11, 2, 9], [4, 12, 4, 12]]) {
      it(`reads operands at element offsets and strides (offA=${offA}, lda=${lda}, offC=${offC}, ldc=${ldc})`, async () => {
        const rand = rng(7 + offA);
        const M = 5, N = 8, K = 8;
        const A = randomArray(offA + M * lda, rand);
        const B = randomArray(K * N, rand);
        const a = ctx.upload(A), b = ctx.upload(B), c = ctx.storage((offC + M * ldc) * 4);
        ctx.poison(c);
        await runDispatches(ctx, [matmul(ctx, { M, N, K, lda, ldc, offA, offC, portable, tiled }, { a, b, c })]);
        const got = await ctx.readF32(c, offC + M * ldc);
        const dense = new Float64Array(M * K);
        for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) dense[i * K + k] = A[offA + i * lda + k];
        const ref = matmulRef(dense, B, M, N, K);
        const picked = new Float64Array(M * N);
        for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) picked[i * N + j] = got[offC + i * ldc + j];
        expectClose(picked, ref, 1e-5, 'strided matmul');
        expect(Number.isNaN(got[0]) && Number.isNaN(got[offC + N]), 'elements outside C stay untouched').to.equal(true);
        for (const x of [a, b, c]) ctx.release(x);
      });
    }

    // Every load path of each operand, vec4 and scalar: aligned offsets/strides (vec4 along k or m
    // or n) and unaligned ones (the scalar fallbacks), K % 4 != 0 (the scalar k tail), M % 4 != 0.
    for (const [offA, lda, offB, ldb, M, N, K] of [
      [4, 20, 8, 16, 12, 8, 9], [3, 21, 5, 19, 12, 8, 9], [0, 16, 4, 12, 16, 12, 12], [1, 17, 2, 13, 13, 11, 12], [4, 36, 0, 36, 36, 20, 35],
      [4, 132, 0, 36, 132, 20, 35], [3, 133, 2, 37, 132, 20, 35],
    ]) {
      for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
        it(`reads ${transA ? 'Aᵀ' : 'A'}·${transB ? 'Bᵀ' : 'B'} at offsets and strides (offA=${offA}, lda=${lda}, offB=${offB}, ldb=${ldb}, M=${M}, N=${N}, K=${K})`, async () => {
          const rand = rng(11 + offA + lda + M);
          const [aRows, aCols] = transA ? [K, M] : [M, K];
          const [bRows, bCols] = transB ? [N, K] : [K, N];
          const A = randomArray(offA + aRows * lda, rand);
          const B = randomArray(offB + bRows * ldb, rand);
          const offC = 3, ldc = N + 2;
          const a = ctx.upload(A), b = ctx.upload(B), c = ctx.storage((offC + M * ldc) * 4);
          ctx.poison(c);
          await runDispatches(ctx, [matmul(ctx, { M, N, K, transA, transB, lda, ldb, ldc, offA, offB, offC, portable, tiled }, { a, b, c })]);
          const got = await ctx.readF32(c, offC + M * ldc);
          const denseA = new Float64Array(aRows * aCols);
          for (let i = 0; i < aRows; i++) for (let k = 0; k < aCols; k++) denseA[i * aCols + k] = A[offA + i * lda + k];
          const denseB = new Float64Array(bRows * bCols);
          for (let i = 0; i < bRows; i++) for (let k = 0; k < bCols; k++) denseB[i * bCols + k] = B[offB + i * ldb + k];
          const ref = matmulRef(denseA, denseB, M, N, K, { transA, transB });
          const picked = new Float64Array(M * N);
          for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) picked[i * N + j] = got[offC + i * ldc + j];
          expectClose(picked, ref, 1e-5, `strided matmul transA=${transA} transB=${transB}`);
          expect(Number.isNaN(got[0]) && Number.isNaN(got[offC + N]), 'elements outside C stay untouched').to.equal(true);
          for (const x of [a, b, c]) ctx.release(x);
        });
      }
    }
  });
}

describe('matmul with the bias gradient fused (dW = Xᵀ·dZ and db = 1ᵀ·dZ in one pass) against float64', () => {
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
  });

  // [M (inputs), N (units), K (batch)]: K up to BIAS_GRAD_MAX_K; N not a multiple of 4 too (scalar C path).
  const DENSE: [number, number, number][] = [[784, 256, 100], [256, 10, 100], [3136, 64, 50], [33, 7, 1], [28, 130, 256], [5, 1, 37], [100, 45, 3]];
  for (const accumulate of [false, true]) {
    it(`${accumulate ? 'accumulates into dW and db' : 'writes dW and db'}, ${DENSE.length} shapes, both store paths`, async function () {
      if (!hasSubgroupKernel(ctx)) throw new Error(`adapter ${ctx.adapterDescription} cannot run the subgroup kernel (it needs 'subgroups' and read-only storage textures)`);
      let seed = accumulate ? 400 : 300;
      for (const [M, N, K] of DENSE) {
        const rand = rng(seed++);
        const X = randomArray(K * M, rand); // stored [K, M]: used transposed
        const dZ = randomArray(K * N, rand);
        const c0 = accumulate ? randomArray(M * N, rand) : undefined;
        const db0 = accumulate ? randomArray(N, rand) : undefined;
        const a = ctx.upload(X), b = ctx.upload(dZ), c = ctx.storage(M * N * 4), dbias = ctx.storage((N + 2) * 4);
        if (c0) ctx.write(c, c0); else ctx.poison(c);
        ctx.poison(dbias);
        if (db0) ctx.write(dbias, db0, 4); // at offDbias = 1: the elements either side stay NaN
        const d = matmul(ctx, { M, N, K, transA: true, accumulate, biasGrad: true, offDbias: 1 }, { a, b, c, dbias });
        await runDispatches(ctx, [d]);
        const what = `dW+db M=${M} N=${N} K=${K} accumulate=${accumulate}`;
        expectClose(await ctx.readF32(c, M * N), matmulRef(X, dZ, M, N, K, { transA: true, c0 }), 1e-5, `${what}: dW`);
        const got = await ctx.readF32(dbias, N + 2);
        const ref = new Float64Array(N);
        for (let j = 0; j < N; j++) {
          let sum = db0 ? db0[j] : 0;
          for (let k = 0; k < K; k++) sum += dZ[k * N + j];
          ref[j] = sum;
        }
        expectClose(got.subarray(1, N + 1), ref, 1e-5, `${what}: db`);
        expect(Number.isNaN(got[0]) && Number.isNaN(got[N + 1]), `${what}: elements outside db stay untouched`).to.equal(true);
        for (const x of [a, b, c, dbias]) ctx.release(x);
      }
    });
  }

  it('is refused where the serial sum would be long, or without a dbias buffer, naming the fix', () => {
    const x = ctx.dummyBuffer();
    expect(() => matmul(ctx, { M: 4, N: 4, K: 257, transA: true, biasGrad: true }, { a: x, b: x, c: x, dbias: x })).to.throw(/K ≤ 256.*columnSum/);
    expect(() => matmul(ctx, { M: 4, N: 4, K: 8, transA: true, biasGrad: true }, { a: x, b: x, c: x })).to.throw(/needs a dbias buffer/);
    expect(() => matmul(ctx, { M: 4, N: 4, K: 8, biasGrad: true, portable: true }, { a: x, b: x, c: x, dbias: x })).to.throw(/subgroup kernel/);
  });
});

describe('the tiled kernel\'s large tile (8 x 8 per invocation, 128 x 128 per workgroup) against float64', () => {
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
  });

  it('products of at least 1,024 x 1,024, all transposes, with a bias, an activation and a split K', async function () {
    this.timeout(600_000);
    let seed = 500;
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
      await check(ctx, seed++, 1030, 1027, 13, { transA, transB, tiled: true });
    }
    await check(ctx, seed++, 1024, 1033, 37, { bias: true, act: 'relu', tiled: true });
    await check(ctx, seed++, 1025, 1024, 600, { transA: true, splits: 3, tiled: true });
  });
});

// The tuner may give a product any tile of its kernel: each must be as right as the default, on odd
// shapes (partial tiles both ways, K % 4 ≠ 0, both store paths, vec4 loads of Aᵀ), every transpose,
// the epilogues, accumulation, split K and (subgroup) the fused bias gradient; and bit for bit the
// default's numbers, since every tile of a kernel sums each output over k in the same order.
describe('every matmul tile variant (the tuner\'s candidates) against float64 and the default tile', () => {
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
  });
  // Few products: each is a pipeline compile per variant (seconds on lavapipe).
  const CASES: [[number, number, number], Variant][] = [
    [[37, 20, 28], { transB: true, bias: true, act: 'relu' }],
    [[132, 70, 45], { transA: true, bias: true, act: 'sigmoid', unitSums: true, accumulate: true }],
    [[36, 24, 700], { splits: 3 }],
  ];
  for (const v of MATMUL_VARIANTS) {
    const kernel = { portable: v.family === 'portable', tiled: v.family === 'tiled' };
    it(`${v.id}: ${CASES.length} products (transposes, bias and activations, accumulation, split K, both stores of C)${v.family === 'subgroup' ? ' and a fused bias gradient' : ''}`, async () => {
      if (v.family === 'subgroup' && !hasSubgroupKernel(ctx)) throw new Error(`adapter ${ctx.adapterDescription} cannot run the subgroup kernel (it needs 'subgroups' and read-only storage textures)`);
      let seed = 500;
      for (const [[M, N, K], o] of CASES) {
        const got = await check(ctx, seed, M, N, K, { ...o, ...kernel, tile: v.id });
        const byDefault = await check(ctx, seed++, M, N, K, { ...o, ...kernel });
        expect(got.every((x, j) => Object.is(x, byDefault[j])), `${v.id} M=${M} N=${N} K=${K} ${JSON.stringify(o)}: bit for bit the default tile's result`).to.equal(true);
      }
      if (v.family !== 'subgroup') return;
      const [M, N, K] = [132, 30, 77];
      const rand = rng(seed);
      const X = randomArray(K * M, rand), dZ = randomArray(K * N, rand), c0 = randomArray(M * N, rand), db0 = randomArray(N, rand);
      const a = ctx.upload(X), b = ctx.upload(dZ), c = ctx.upload(c0), dbias = ctx.upload(db0);
      await runDispatches(ctx, [matmul(ctx, { M, N, K, transA: true, accumulate: true, biasGrad: true, variant: v.id }, { a, b, c, dbias })]);
      expectClose(await ctx.readF32(c, M * N), matmulRef(X, dZ, M, N, K, { transA: true, c0 }), 1e-5, `${v.id}: dW += Xᵀ·dZ`);
      const ref = Float64Array.from(db0);
      for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) ref[j] += dZ[k * N + j];
      expectClose(await ctx.readF32(dbias, N), ref, 1e-5, `${v.id}: db += 1ᵀ·dZ`);
      for (const x of [a, b, c, dbias]) ctx.release(x);
    });
  }

  it('a variant of another kernel, or an unknown one, is refused, naming the choices', async () => {
    const x = ctx.storage(4 * 64);
    const bufs = { a: x, b: x, c: ctx.storage(4 * 64) };
    expect(() => matmul(ctx, { M: 8, N: 8, K: 8, portable: true, variant: 'tiled-4x4' }, bufs)).to.throw(/the portable kernel has no tile variant "tiled-4x4" \(it has: portable-default, portable-wg32\)/);
    expect(() => matmul(ctx, { M: 8, N: 8, K: 8, tiled: true, variant: 'tiled-9x9' }, bufs)).to.throw(/no tile variant "tiled-9x9".*tiled-8x8/);
    ctx.release(bufs.c);
    ctx.release(x);
  });
});

describe('split K (matmulSplitK) by default', () => {
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
  });

  it('splits a weight gradient with few output tiles (the cnn\'s first conv: 25x32 over K = 39,200), not a product with many', () => {
    const dw: MatmulSpec = { M: 25, N: 32, K: 39200, transA: true };
    expect(splitKFactor(ctx, dw)).to.be.greaterThan(1);
    expect(39200 / splitKFactor(ctx, dw), 'each layer sums enough k\'s').to.be.at.least(splitKPolicy(ctx).minChunk);
    expect(splitKFactor(ctx, { M: 9800, N: 64, K: 800 }), 'the forward conv: many tiles').to.equal(1);
    expect(splitKFactor(ctx, { M: 25, N: 32, K: splitKPolicy(ctx).minChunk + 3 }), 'K too short to split').to.equal(1);
    expect(splitKFactor(ctx, { ...dw, biasGrad: true }), 'a fused bias gradient needs the whole sum').to.equal(1);
    const a = ctx.storage(25 * 39200 * 4), b = ctx.storage(39200 * 32 * 4), c = ctx.storage(25 * 32 * 4);
    expect(matmulSplitK(ctx, dw, { a, b, c })).to.have.length(2);
    expect(matmulSplitK(ctx, { M: 25, N: 32, K: splitKPolicy(ctx).minChunk + 3 }, { a, b, c })).to.have.length(1);
    for (const x of [a, b, c]) ctx.release(x);
  });

  it('refuses a split with a fused bias gradient, and a split count that is not a positive integer, naming them', () => {
    const a = ctx.storage(64), b = ctx.storage(64), c = ctx.storage(64), dbias = ctx.storage(64);
    expect(() => matmulSplitK(ctx, { M: 2, N: 2, K: 8, transA: true, biasGrad: true, splits: 2 }, { a, b, c, dbias })).to.throw(/cannot be split.*bias gradient/);
    expect(() => matmulSplitK(ctx, { M: 2, N: 2, K: 8, splits: 0 }, { a, b, c })).to.throw(/splits must be a positive integer/);
    for (const x of [a, b, c, dbias]) ctx.release(x);
  });
});

describe('matmul input checks', () => {
  it('rejects a non-positive dimension with a message naming it', async () => {
    const ctx = await testContext();
    const b = ctx.dummyBuffer();
    expect(() => matmul(ctx, { M: 0, N: 3, K: 3 }, { a: b, b, c: b })).to.throw(/M must be a positive integer/);
  });

  it('the subgroup kernel stores C as vec4s exactly when N, ldc and offC allow (both paths are in the tests above)', async () => {
    const ctx = await testContext();
    const [a, b, c] = [ctx.storage(4096), ctx.storage(4096), ctx.storage(4096)];
    const entry = (s: Partial<MatmulSpec>) => matmul(ctx, { M: 5, N: 8, K: 3, ...s }, { a, b, c }).kernel.entry;
    const c4 = hasSubgroupKernel(ctx) ? 'main_c4' : 'main'; // the portable kernel has one entry
    expect(entry({})).to.equal(c4);
    expect(entry({ offC: 4, ldc: 12 })).to.equal(c4);
    expect(entry({ N: 7 })).to.equal('main');
    expect(entry({ offC: 2 })).to.equal('main');
    expect(entry({ ldc: 10 })).to.equal('main');
    expect(entry({ portable: true })).to.equal('main');
    for (const x of [a, b, c]) ctx.release(x);
  });
});

describe('matmul on a device the caller created (the embedding path)', () => {
  /** A device made as a host app would make its own, with subgroups where the adapter has them. */
  async function callersDevice(): Promise<{ gpu: GPU; device: GPUDevice; subgroups: boolean }> {
    const { create } = await import('webgpu');
    const gpu = create([]);
    const adapter = await gpu.requestAdapter();
    expect(adapter, 'an adapter').to.not.equal(null);
    const subgroups = adapter!.features.has('subgroups');
    const device = await adapter!.requestDevice({ requiredFeatures: subgroups ? ['subgroups'] : [] });
    return { gpu, device, subgroups };
  }

  it('GpuContext.fromDevice wraps the caller\'s device; a matmul runs on it; destroy() releases every buffer and texture it made and leaves the device alive', async () => {
    const { gpu, device, subgroups } = await callersDevice();
    // Every texture made on the device, and whether it was destroyed.
    const textures: { label: string; destroyed: boolean }[] = [];
    const createTexture = device.createTexture.bind(device);
    device.createTexture = (desc) => {
      const texture = createTexture(desc);
      const entry = { label: desc.label ?? '', destroyed: false };
      textures.push(entry);
      const destroy = texture.destroy.bind(texture);
      texture.destroy = () => {
        entry.destroyed = true;
        destroy();
      };
      return texture;
    };
    try {
      const { GpuContext } = await import('../src/gpu/context.js');
      const ctx = GpuContext.fromDevice(device);
      expect(ctx.ownsDevice).to.equal(false);
      const rand = rng(99);
      const [M, N, K] = [33, 20, 57];
      const A = randomArray(M * K, rand), B = randomArray(K * N, rand);
      const a = ctx.upload(A), b = ctx.upload(B), c = ctx.storage(M * N * 4);
      ctx.poison(c);
      await runDispatches(ctx, [matmul(ctx, { M, N, K }, { a, b, c })]);
      expectClose(await ctx.readF32(c, M * N), matmulRef(A, B, M, N, K), 1e-5, 'matmul on the caller\'s device');
      ctx.destroy();
      expect(ctx.liveBuffers).to.equal(0);
      // On a software adapter with subgroups: B's texture, and the dummy bound for A's.
      if (subgroups && /llvmpipe|lavapipe|swiftshader|software/i.test(ctx.adapterDescription)) expect(textures.length, 'operand textures were made').to.be.at.least(2);
      expect(textures.filter((t) => !t.destroyed).map((t) => t.label), 'textures left behind').to.deep.equal([]);
      // The caller's device still works after the engine is gone.
      const own = device.createBuffer({ size: 16, usage: 0x0008 | 0x0001 });
      device.queue.writeBuffer(own, 0, new Float32Array([1, 2, 3, 4]));
      await own.mapAsync(0x0001);
      expect([...new Float32Array(own.getMappedRange())]).to.deep.equal([1, 2, 3, 4]);
      own.unmap();
    } finally {
      device.destroy();
    }
    void gpu; // keep the GPU object alive until the device is destroyed
  });

  it('where WGSL has no read-only storage textures, the products and convolutions use the kernels that do not declare them', async () => {
    const { gpu, device, subgroups } = await callersDevice();
    try {
      const { GpuContext } = await import('../src/gpu/context.js');
      const full = GpuContext.fromDevice(device, { wgslLanguageFeatures: new Set(['readonly_and_readwrite_storage_textures']) });
      expect(hasSubgroupKernel(full), 'with the feature: as the adapter\'s subgroups').to.equal(subgroups);
      full.destroy();
      const ctx = GpuContext.fromDevice(device, { wgslLanguageFeatures: new Set() });
      expect(ctx.readOnlyStorageTextures).to.equal(false);
      expect(hasSubgroupKernel(ctx)).to.equal(false);
      const [M, N, K] = [33, 20, 57];
      expect(matmulKernelFor(ctx, { M, N, K })).to.equal('portable');
      expect(conv2dKernelFor(ctx, { batch: 2, inH: 8, inW: 8, inC: 4, kH: 3, kW: 3, outC: 8, padding: 'SAME' }, 128, 8, 36)).to.equal('tiled');
      const rand = rng(98);
      const A = randomArray(M * K, rand), B = randomArray(K * N, rand);
      const a = ctx.upload(A), b = ctx.upload(B), c = ctx.storage(M * N * 4);
      ctx.poison(c);
      const product = matmul(ctx, { M, N, K }, { a, b, c });
      expect(product.kernel.label).to.match(/^matmul\.wgsl/);
      await runDispatches(ctx, [product]);
      expectClose(await ctx.readF32(c, M * N), matmulRef(A, B, M, N, K), 1e-5, 'the portable kernel\'s product');
      ctx.destroy();
    } finally {
      device.destroy();
    }
    void gpu;
  });
});
