import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { dot, expectClose, gradCheck, randomArray, relError, rng, type Act } from './support/cpu.js';
import { conv2dBackward, conv2dForward, conv2dGeometry, conv2dKernelFor, type Conv2dKernel, type Conv2dSpec } from '../src/kernels/conv2d.js';
import { defaultMatmulVariant, matmulVariantsOf } from '../src/kernels/matmul-variants.js';
import { hasSubgroupKernel, splitKFactor } from '../src/kernels/matmul.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import { GpuContext } from '../src/gpu/context.js';
import { conv2dBackwardRef, conv2dRef, convOut, type ConvShape } from './ref/conv2d.js';

interface Case { spec: Conv2dSpec; act?: Act; bias?: boolean }

// Both kernels on every case (this adapter picks one; a GPU may pick the other).
const KERNELS: Conv2dKernel[] = ['subgroup', 'tiled'];

const CASES: Case[] = [
  // The tutorial CNN's two convolutions.
  { spec: { batch: 50, inH: 28, inW: 28, inC: 1, kH: 5, kW: 5, outC: 32, padding: 'SAME', label: 'conv1' }, act: 'relu', bias: true },
  { spec: { batch: 50, inH: 14, inW: 14, inC: 32, kH: 5, kW: 5, outC: 64, padding: 'SAME', label: 'conv2' }, act: 'relu', bias: true },
  // Odd sizes: strides, VALID, non-square inputs and kernels, 3x3, channels over one workgroup.
  { spec: { batch: 3, inH: 9, inW: 7, inC: 3, kH: 3, kW: 3, outC: 5, stride: 2, padding: 'VALID' }, bias: true },
  { spec: { batch: 2, inH: 8, inW: 11, inC: 4, kH: 3, kW: 2, outC: 6, stride: 2, padding: 'SAME' }, act: 'relu', bias: true },
  { spec: { batch: 1, inH: 7, inW: 7, inC: 2, kH: 3, kW: 3, outC: 3, stride: [2, 1], padding: 'SAME' } },
  { spec: { batch: 4, inH: 5, inW: 6, inC: 3, kH: 5, kW: 5, outC: 2, stride: 3, padding: 'SAME' }, bias: true },
  { spec: { batch: 2, inH: 9, inW: 9, inC: 2, kH: 2, kW: 2, outC: 3, stride: 3, padding: 'VALID' }, bias: true },
  { spec: { batch: 1, inH: 4, inW: 4, inC: 2, kH: 4, kW: 4, outC: 1, padding: 'VALID' } },
  { spec: { batch: 2, inH: 6, inW: 5, inC: 1, kH: 1, kW: 1, outC: 3, padding: 'VALID' }, act: 'tanh', bias: true },
  { spec: { batch: 1, inH: 5, inW: 5, inC: 70, kH: 3, kW: 3, outC: 67, padding: 'SAME' }, bias: true },
  // inC % 4 == 0 gathers x four channels at a time (forward); outC % 4 == 0 gathers dy so (dx).
  { spec: { batch: 2, inH: 9, inW: 10, inC: 8, kH: 3, kW: 3, outC: 5, stride: [2, 3], padding: 'VALID' }, bias: true },
  { spec: { batch: 1, inH: 6, inW: 5, inC: 260, kH: 2, kW: 3, outC: 3, stride: 2, padding: 'SAME' } },
  { spec: { batch: 1, inH: 10, inW: 9, inC: 12, kH: 3, kW: 3, outC: 36, stride: 2, padding: 'VALID' }, act: 'relu', bias: true },
  // Odd batch, 5x5 with stride 2, channels not multiples of 4; a 1x1 with stride 2; a 3x3 whose
  // products span several row and column tiles and a K that is no multiple of the tile's 16.
  { spec: { batch: 5, inH: 13, inW: 11, inC: 6, kH: 5, kW: 5, outC: 7, stride: 2, padding: 'SAME' }, act: 'relu', bias: true },
  { spec: { batch: 3, inH: 7, inW: 9, inC: 5, kH: 1, kW: 1, outC: 20, stride: 2, padding: 'SAME' }, act: 'sigmoid', bias: true },
  { spec: { batch: 3, inH: 11, inW: 13, inC: 9, kH: 3, kW: 3, outC: 71, padding: 'SAME' }, bias: true },
];

function shapeOf(s: Conv2dSpec): ConvShape {
  const [strideH, strideW] = typeof s.stride === 'number' ? [s.stride, s.stride] : s.stride ?? [1, 1];
  return { batch: s.batch, inH: s.inH, inW: s.inW, inC: s.inC, kH: s.kH, kW: s.kW, outC: s.outC, strideH, strideW, padding: s.padding };
}

function describeSpec(s: Conv2dSpec): string {
  return `[${s.batch},${s.inH},${s.inW},${s.inC}]⊛[${s.kH},${s.kW},${s.inC},${s.outC}] stride ${JSON.stringify(s.stride ?? 1)} ${s.padding}`;
}

describe('conv2d as implicit GEMMs (the subgroup kernel, and conv2d_gemm.wgsl\'s tiles) against float64', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  it('computes output sizes and padding as TensorFlow does', () => {
    const g = (inH: number, k: number, stride: number, padding: 'SAME' | 'VALID') =>
      conv2dGeometry({ batch: 1, inH, inW: inH, inC: 1, kH: k, kW: k, outC: 1, stride, padding });
    expect(g(28, 5, 1, 'SAME')).to.include({ outH: 28, padTop: 2, padBottom: 2 });
    expect(g(7, 2, 2, 'SAME')).to.include({ outH: 4, padTop: 0, padBottom: 1 });
    expect(g(8, 3, 2, 'SAME')).to.include({ outH: 4, padTop: 0, padBottom: 1 });
    expect(g(9, 3, 2, 'SAME')).to.include({ outH: 5, padTop: 1, padBottom: 1 });
    expect(g(5, 4, 1, 'SAME')).to.include({ outH: 5, padTop: 1, padBottom: 2 });
    expect(g(9, 3, 2, 'VALID')).to.include({ outH: 4, padTop: 0, padBottom: 0 });
    expect(g(10, 3, 3, 'VALID')).to.include({ outH: 3 });
    expect(g(5, 1, 3, 'SAME')).to.include({ outH: 2, padTop: 0, padBottom: 0 });
  });

  for (const kernel of KERNELS) for (const c of CASES) {
    it(`${kernel}: forward + backward ${describeSpec(c.spec)}${c.bias ? ' + bias' : ''}${c.act ? ` → ${c.act}` : ''}`, async function () {
      const s: Conv2dSpec = { ...c.spec, kernel };
      const sh = shapeOf(s);
      const { outH, outW } = convOut(sh);
      const geo = conv2dGeometry(s);
      expect([geo.outH, geo.outW], 'output size').to.deep.equal([outH, outW]);
      const rand = rng(s.batch * 1000 + s.inH * 100 + s.kH * 10 + s.inC);
      const nx = s.batch * s.inH * s.inW * s.inC, nf = s.kH * s.kW * s.inC * s.outC, ny = s.batch * outH * outW * s.outC;
      const x = randomArray(nx, rand);
      const f = randomArray(nf, rand, 0.5);
      const bias = c.bias ? randomArray(s.outC, rand) : undefined;
      const dy = randomArray(ny, rand);
      const bx = ctx.upload(x), bf = ctx.upload(f), bb = bias && ctx.upload(bias), bdy = ctx.upload(dy);
      const by = ctx.storage(ny * 4);
      const dx = ctx.storage(nx * 4), dF = ctx.storage(nf * 4), dB = ctx.storage(s.outC * 4);
      for (const b of [by, dx, dF, dB]) ctx.poison(b);

      const t0 = performance.now();
      const fwd = conv2dForward(ctx, { ...s, activation: c.act }, { x: bx, filter: bf, bias: bb, y: by });
      const bwd = conv2dBackward(ctx, s, { dy: bdy, filter: bf, x: bx, dx, dFilter: dF, dBias: dB });
      await runDispatches(ctx, [...fwd, ...bwd]);
      const [y, gdx, gdF, gdB] = [await ctx.readF32(by, ny), await ctx.readF32(dx, nx), await ctx.readF32(dF, nf), await ctx.readF32(dB, s.outC)];
      const tGpu = performance.now() - t0;

      const t1 = performance.now();
      const yRef = conv2dRef(sh, x, f, bias, c.act);
      const ref = conv2dBackwardRef(sh, x, f, dy);
      const tCpu = performance.now() - t1;
      for (const b of [bx, bf, bb, bdy, by, dx, dF, dB]) if (b) ctx.release(b);

      const what = describeSpec(s);
      expectClose(y, yRef, 1e-5, `${what} y`);
      expectClose(gdx, ref.dx, 1e-4, `${what} dx`);
      expectClose(gdF, ref.dFilter, 1e-4, `${what} dFilter`);
      expectClose(gdB, ref.dBias, 1e-4, `${what} dBias`);
      console.log(`      rel. errors y ${relError(y, yRef).toExponential(1)}, dx ${relError(gdx, ref.dx).toExponential(1)}, ` +
        `dF ${relError(gdF, ref.dFilter).toExponential(1)}, dB ${relError(gdB, ref.dBias).toExponential(1)}; ` +
        `GPU ${tGpu.toFixed(0)} ms (incl. compile + readback), CPU float64 ${tCpu.toFixed(0)} ms`);
    });
  }

  // A conv whose input is also read by another op (a residual block's skip) adds to dx while its own
  // dFilter and dBias are written fresh: accumulateDx apart from accumulate.
  for (const kernel of KERNELS) for (const [inC, mixed] of [[5, false], [8, false], [5, true], [8, true]] as const) it(`${kernel}: accumulates gradients (+=)${mixed ? ' into dx only, overwriting dFilter and dBias' : ''} (inC ${inC})`, async () => {
    const s: Conv2dSpec = { batch: 3, inH: 7, inW: 6, inC, kH: 3, kW: 3, outC: 4, stride: [1, 2], padding: 'SAME', kernel };
    const sh = shapeOf(s);
    const { outH, outW } = convOut(sh);
    const rand = rng(77);
    const nx = s.batch * s.inH * s.inW * s.inC, nf = s.kH * s.kW * s.inC * s.outC, ny = s.batch * outH * outW * s.outC;
    const x = randomArray(nx, rand), f = randomArray(nf, rand), dy = randomArray(ny, rand);
    const dx0 = randomArray(nx, rand), dF0 = randomArray(nf, rand), dB0 = randomArray(s.outC, rand);
    const bx = ctx.upload(x), bf = ctx.upload(f), bdy = ctx.upload(dy), by = ctx.storage(ny * 4);
    const dx = ctx.upload(dx0), dF = ctx.upload(dF0), dB = ctx.upload(dB0);
    ctx.poison(by);
    await runDispatches(ctx, [
      ...conv2dForward(ctx, s, { x: bx, filter: bf, y: by }),
      ...conv2dBackward(ctx, { ...s, accumulate: !mixed, accumulateDx: true }, { dy: bdy, filter: bf, x: bx, dx, dFilter: dF, dBias: dB }),
    ]);
    const ref = conv2dBackwardRef(sh, x, f, dy);
    const plus = (a: Float64Array, b: Float32Array) => a.map((v, i) => v + b[i]);
    expectClose(await ctx.readF32(dx, nx), plus(ref.dx, dx0), 1e-4, 'dx +=');
    const keep = (a: Float64Array, b: Float32Array) => (mixed ? a : plus(a, b));
    expectClose(await ctx.readF32(dF, nf), keep(ref.dFilter, dF0), 1e-4, mixed ? 'dFilter =' : 'dFilter +=');
    expectClose(await ctx.readF32(dB, s.outC), keep(ref.dBias, dB0), 1e-4, mixed ? 'dBias =' : 'dBias +=');
    expectClose(await ctx.readF32(by, ny), conv2dRef(sh, x, f), 1e-5, 'y');
    for (const b of [bx, bf, bdy, by, dx, dF, dB]) ctx.release(b);
  });

  // Every tile variant of the subgroup kernel (the tuner may pick any) on convolutions that take each
  // way of reading the tensors: channel quads as vec4 (inC, outC multiples of 4) or one at a time,
  // dFilter's vec4 layout along the taps (the 32-row tiles), a K with a tail of 1 to 3, strides.
  const VARIANT_CASES: Conv2dSpec[] = [
    { batch: 3, inH: 9, inW: 8, inC: 8, kH: 3, kW: 3, outC: 12, padding: 'SAME', activation: 'relu' },
    { batch: 2, inH: 11, inW: 7, inC: 3, kH: 5, kW: 3, outC: 6, stride: [2, 1], padding: 'SAME' },
    { batch: 3, inH: 10, inW: 9, inC: 4, kH: 3, kW: 2, outC: 5, stride: 2, padding: 'VALID' },
  ];
  for (const v of matmulVariantsOf('subgroup')) {
    it(`subgroup tile ${v.id}: forward, dFilter and dx against float64, and bit for bit the default tile's`, async function () {
      if (!hasSubgroupKernel(ctx)) throw new Error(`adapter ${ctx.adapterDescription} cannot run the subgroup kernel (it needs 'subgroups' and read-only storage textures)`);
      for (const [n, c] of VARIANT_CASES.entries()) {
        const sh = shapeOf(c);
        const { outH, outW } = convOut(sh);
        const rand = rng(900 + n);
        const nx = c.batch * c.inH * c.inW * c.inC, nf = c.kH * c.kW * c.inC * c.outC, ny = c.batch * outH * outW * c.outC;
        const x = randomArray(nx, rand), f = randomArray(nf, rand, 0.5), bias = randomArray(c.outC, rand), dy = randomArray(ny, rand);
        const bx = ctx.upload(x), bf = ctx.upload(f), bb = ctx.upload(bias), bdy = ctx.upload(dy);
        const run = async (variant: string) => {
          const s: Conv2dSpec = { ...c, kernel: 'subgroup', variant };
          const by = ctx.storage(ny * 4), dx = ctx.storage(nx * 4), dF = ctx.storage(nf * 4);
          for (const b of [by, dx, dF]) ctx.poison(b);
          await runDispatches(ctx, [
            ...conv2dForward(ctx, s, { x: bx, filter: bf, bias: bb, y: by }),
            ...conv2dBackward(ctx, s, { dy: bdy, filter: bf, x: bx, dx, dFilter: dF }),
          ]);
          const out = { y: await ctx.readF32(by, ny), dx: await ctx.readF32(dx, nx), dF: await ctx.readF32(dF, nf) };
          for (const b of [by, dx, dF]) ctx.release(b);
          return out;
        };
        const got = await run(v.id);
        const what = `${describeSpec(c)} with ${v.id}`;
        expectClose(got.y, conv2dRef(sh, x, f, bias, c.activation as Act | undefined), 1e-5, `${what} y`);
        const ref = conv2dBackwardRef(sh, x, f, dy);
        expectClose(got.dx, ref.dx, 1e-4, `${what} dx`);
        expectClose(got.dF, ref.dFilter, 1e-4, `${what} dFilter`);
        const base = await run(defaultMatmulVariant('subgroup').id);
        for (const k of ['y', 'dx', 'dF'] as const) expect(Buffer.from(got[k].buffer).equals(Buffer.from(base[k].buffer)), `${what}: ${k} bit for bit as the default tile`).to.equal(true);
        for (const b of [bx, bf, bb, bdy]) ctx.release(b);
      }
    });
  }

  it('picks the subgroup kernel where matmul would (this adapter), and takes a forced kernel', () => {
    const s: Conv2dSpec = { batch: 2, inH: 8, inW: 8, inC: 4, kH: 3, kW: 3, outC: 8, padding: 'SAME' };
    expect(conv2dKernelFor(ctx, s, 128, 8, 36)).to.equal(hasSubgroupKernel(ctx) ? 'subgroup' : 'tiled');
    expect(conv2dKernelFor(ctx, { ...s, kernel: 'tiled' }, 128, 8, 36)).to.equal('tiled');
    const b = ctx.storage(4096);
    const labels = (kernel: Conv2dKernel) => conv2dForward(ctx, { ...s, kernel }, { x: b, filter: b, y: b }).map((d) => d.kernel.label);
    expect(labels('tiled').join()).to.match(/conv2d_gemm/);
    if (hasSubgroupKernel(ctx)) expect(labels('subgroup').join()).to.match(/matmul_subgroup/);
    ctx.release(b);
  });

  it('on a GPU, splits over K on the subgroup kernel a product too small to fill the GPU, which conv2d_gemm would walk whole', () => {
    // The cnn's second convolution: 5x5, 32 -> 64 channels over 14x14 pixels, a batch of 50.
    const s: Conv2dSpec = { batch: 50, inH: 14, inW: 14, inC: 32, kH: 5, kW: 5, outC: 64, padding: 'SAME' };
    const dFilter = [800, 64, 50 * 14 * 14] as const;
    const manyTiles = [1024 * 64, 64, 800] as const;
    const gpu = GpuContext.fromDevice(ctx.device, { adapterDescription: 'nvidia / nvidia-h200 / NVIDIA: 580.159.04' });
    try {
      if (hasSubgroupKernel(gpu)) {
        expect(splitKFactor(gpu, { M: dFilter[0], N: dFilter[1], K: dFilter[2] }), 'a GPU wants the filter gradient split').to.be.greaterThan(1);
        expect(conv2dKernelFor(gpu, s, ...dFilter), 'the filter gradient on a GPU').to.equal('subgroup');
      }
      expect(conv2dKernelFor(gpu, s, ...manyTiles), 'a product with 1,024 tiles on a GPU').to.equal('tiled');
      expect(conv2dKernelFor(ctx, s, ...dFilter), 'the filter gradient on this adapter').to.equal(hasSubgroupKernel(ctx) ? 'subgroup' : 'tiled');
    } finally {
      gpu.destroy();
    }
  });

  it('skips the gradients that are not asked for (no dx for a first layer)', async () => {
    const s: Conv2dSpec = { batch: 2, inH: 5, inW: 5, inC: 1, kH: 3, kW: 3, outC: 2, padding: 'SAME' };
    const b = ctx.storage(4096);
    const ds = conv2dBackward(ctx, s, { dy: b, filter: b, x: b, dFilter: b });
    expect(ds.map((d) => d.label)).to.deep.equal(['conv2d 3x3x1x2/dFilter']);
    ctx.release(b);
  });

  it('rejects bad shapes with messages naming the op', () => {
    const b = ctx.dummyBuffer();
    const s: Conv2dSpec = { batch: 1, inH: 3, inW: 3, inC: 1, kH: 5, kW: 5, outC: 1, padding: 'VALID', label: 'c1' };
    expect(() => conv2dGeometry(s)).to.throw(/conv2d c1: VALID padding needs the window \(5\) no larger than the input \(3\)/);
    expect(() => conv2dGeometry({ ...s, inC: 0 })).to.throw(/conv2d c1: inC must be a positive integer/);
    expect(() => conv2dForward(ctx, { ...s, padding: 'SAME' }, { x: b, filter: b, y: b })).to.throw(/conv2d c1: x holds 16 bytes, x \[1, 3, 3, 1\] needs 36/);
  });

  describe('finite-difference checks of the CPU backward twin (float64)', () => {
    const small: ConvShape[] = [
      { batch: 2, inH: 5, inW: 4, inC: 2, kH: 3, kW: 3, outC: 3, strideH: 1, strideW: 1, padding: 'SAME' },
      { batch: 1, inH: 7, inW: 6, inC: 3, kH: 3, kW: 2, outC: 2, strideH: 2, strideW: 2, padding: 'VALID' },
      { batch: 2, inH: 6, inW: 7, inC: 1, kH: 4, kW: 3, outC: 2, strideH: 2, strideW: 3, padding: 'SAME' },
    ];
    for (const sh of small) {
      it(`dx, dFilter, dBias of [${sh.batch},${sh.inH},${sh.inW},${sh.inC}]⊛[${sh.kH},${sh.kW},${sh.inC},${sh.outC}] /${sh.strideH},${sh.strideW} ${sh.padding}`, () => {
        const rand = rng(sh.inH * 31 + sh.kW);
        const { outH, outW } = convOut(sh);
        const x = Float64Array.from(randomArray(sh.batch * sh.inH * sh.inW * sh.inC, rand));
        const f = Float64Array.from(randomArray(sh.kH * sh.kW * sh.inC * sh.outC, rand));
        const b = Float64Array.from(randomArray(sh.outC, rand));
        const w = randomArray(sh.batch * outH * outW * sh.outC, rand);
        const g = conv2dBackwardRef(sh, x, f, w);
        const ex = gradCheck((v) => dot(w, conv2dRef(sh, v, f, b)), x, g.dx);
        const ef = gradCheck((v) => dot(w, conv2dRef(sh, x, v, b)), f, g.dFilter);
        const eb = gradCheck((v) => dot(w, conv2dRef(sh, x, f, v)), b, g.dBias);
        console.log(`      finite differences: dx ${ex.toExponential(1)}, dFilter ${ef.toExponential(1)}, dBias ${eb.toExponential(1)}`);
        for (const [n, e] of [['dx', ex], ['dFilter', ef], ['dBias', eb]] as const) expect(e, n).to.be.lessThan(1e-6);
      });
    }
  });
});
