// Kernel checks that run inside a web page (bundled by tools/build-browser.mjs into
// dist/browser/test-checks.js, driven by test/browser.test.ts): matmul, conv2d, the LSTM layer and
// softmax cross-entropy, softmax, mean squared error, add and concat on random inputs, outputs poisoned with NaN first, against the same float64
// references as the Node tests. The page only measures: it returns relative errors, and the
// Node side applies the Node tests' bounds.
import type { GpuContext } from '../../src/gpu/context.js';
import { runDispatches } from '../../src/gpu/dispatch.js';
import { hasSubgroupKernel, matmul } from '../../src/kernels/matmul.js';
import { conv2dBackward, conv2dForward, type Conv2dSpec } from '../../src/kernels/conv2d.js';
import { prepareRecurrentStack, releaseRecurrent } from '../../src/kernels/recurrent.js';
import { prepareSoftmaxXent } from '../../src/kernels/softmax-xent.js';
import { prepareSoftmax, prepareSoftmaxBackward } from '../../src/kernels/softmax.js';
import { prepareMse } from '../../src/kernels/mse.js';
import { prepareAdd, prepareAddBackward, prepareConcat, prepareConcatBackward } from '../../src/kernels/copy.js';
import { matmulRef, randomArray, relError, rng } from '../support/cpu.js';
import { conv2dBackwardRef, conv2dRef, convOut } from '../ref/conv2d.js';
import { GATES, stackBackwardRef, stackForwardRef } from '../ref/recurrent.js';
import { softmaxXentRef } from '../ref/softmax-xent.js';
import { softmaxBackwardRef, softmaxRef } from '../ref/softmax.js';
import { mseRef } from '../ref/mse.js';
import { addBackwardRef, addRef, concatBackwardRef, concatRef } from '../ref/copy.js';

export { GpuContext } from '../../src/gpu/context.js';

/** One compared output: a forward result (bound 1e-5 in the Node tests) or a gradient (1e-4). */
export interface KernelCheck {
  name: string;
  pass: 'forward' | 'backward';
  error: number;
}

type Record_ = (name: string, pass: KernelCheck['pass'], got: ArrayLike<number>, ref: ArrayLike<number>) => void;

async function matmulChecks(ctx: GpuContext, seed: number, record: Record_): Promise<void> {
  const shapes: [number, number, number][] = [[1, 1, 1], [7, 33, 100], [33, 7, 257], [100, 10, 256], [100, 256, 784], [1, 257, 7], [130, 70, 45]];
  const variants = [{}, { transA: true }, { transB: true }, { transA: true, transB: true }, { bias: true, act: 'sigmoid' as const }, { accumulate: true, transB: true }];
  const paths = hasSubgroupKernel(ctx) ? [false, true] : [true];
  for (const portable of paths) {
    for (const [M, N, K] of shapes) {
      for (const o of variants) {
        const rand = rng(seed++);
        const A = randomArray(M * K, rand), B = randomArray(K * N, rand);
        const bias = 'bias' in o ? randomArray(N, rand) : undefined;
        const c0 = 'accumulate' in o ? randomArray(M * N, rand) : undefined;
        const bufs = { a: ctx.upload(A), b: ctx.upload(B), c: ctx.storage(M * N * 4), bias: bias && ctx.upload(bias) };
        if (c0) ctx.write(bufs.c, c0); else ctx.poison(bufs.c);
        const spec = { M, N, K, transA: 'transA' in o, transB: 'transB' in o, activation: 'act' in o ? o.act : undefined, accumulate: !!c0, portable };
        await runDispatches(ctx, [matmul(ctx, spec, bufs)]);
        const got = await ctx.readF32(bufs.c, M * N);
        const ref = matmulRef(A, B, M, N, K, { transA: spec.transA, transB: spec.transB, bias, act: spec.activation, c0 });
        for (const b of Object.values(bufs)) if (b) ctx.release(b);
        record(`matmul ${portable ? 'portable' : 'subgroup'} ${M}x${N}x${K} ${JSON.stringify(o)}`, 'forward', got, ref);
      }
    }
  }
}

async function conv2dChecks(ctx: GpuContext, seed: number, record: Record_): Promise<void> {
  const specs: Conv2dSpec[] = [
    { batch: 4, inH: 28, inW: 28, inC: 1, kH: 5, kW: 5, outC: 32, padding: 'SAME' }, // the cnn's conv1
    { batch: 2, inH: 14, inW: 14, inC: 32, kH: 5, kW: 5, outC: 64, padding: 'SAME' }, // conv2
    // Strided, on conv2d_gemm.wgsl's tiles: in Chromium's SwiftShader a strided convolution on the
    // subgroup kernel took about 3 minutes each (the Node tests check that path on lavapipe).
    { batch: 3, inH: 9, inW: 7, inC: 3, kH: 3, kW: 3, outC: 5, stride: 2, padding: 'VALID', kernel: 'tiled' },
    { batch: 2, inH: 9, inW: 10, inC: 8, kH: 3, kW: 3, outC: 5, stride: [2, 3], padding: 'VALID', kernel: 'tiled' }, // channel quads gathered as vec4
  ];
  for (const s of specs) {
    const [strideH, strideW] = typeof s.stride === 'number' ? [s.stride, s.stride] : s.stride ?? [1, 1];
    const sh = { batch: s.batch, inH: s.inH, inW: s.inW, inC: s.inC, kH: s.kH, kW: s.kW, outC: s.outC, strideH, strideW, padding: s.padding };
    const { outH, outW } = convOut(sh);
    const rand = rng(seed++);
    const nx = s.batch * s.inH * s.inW * s.inC, nf = s.kH * s.kW * s.inC * s.outC, ny = s.batch * outH * outW * s.outC;
    const x = randomArray(nx, rand), f = randomArray(nf, rand, 0.5), bias = randomArray(s.outC, rand), dy = randomArray(ny, rand);
    const bx = ctx.upload(x), bf = ctx.upload(f), bb = ctx.upload(bias), bdy = ctx.upload(dy);
    const by = ctx.storage(ny * 4);
    const dx = ctx.storage(nx * 4), dF = ctx.storage(nf * 4), dB = ctx.storage(s.outC * 4);
    for (const b of [by, dx, dF, dB]) ctx.poison(b);
    await runDispatches(ctx, [
      ...conv2dForward(ctx, { ...s, activation: 'relu' }, { x: bx, filter: bf, bias: bb, y: by }),
      ...conv2dBackward(ctx, s, { dy: bdy, filter: bf, x: bx, dx, dFilter: dF, dBias: dB }),
    ]);
    const what = `conv2d [${s.batch},${s.inH},${s.inW},${s.inC}]⊛[${s.kH},${s.kW},${s.inC},${s.outC}] stride ${JSON.stringify(s.stride ?? 1)} ${s.padding}${s.kernel ? ` (${s.kernel})` : ''}`;
    const ref = conv2dBackwardRef(sh, x, f, dy);
    record(`${what} y`, 'forward', await ctx.readF32(by, ny), conv2dRef(sh, x, f, bias, 'relu'));
    record(`${what} dx`, 'backward', await ctx.readF32(dx, nx), ref.dx);
    record(`${what} dFilter`, 'backward', await ctx.readF32(dF, nf), ref.dFilter);
    record(`${what} dBias`, 'backward', await ctx.readF32(dB, s.outC), ref.dBias);
    for (const b of [bx, bf, bb, bdy, by, dx, dF, dB]) ctx.release(b);
  }
}

async function lstmChecks(ctx: GpuContext, seed: number, record: Record_): Promise<void> {
  const cases = [
    { T: 5, B: 2, I: 3, hidden: [4], gradFrom: 'all' as const },
    { T: 28, B: 3, I: 28, hidden: [16], gradFrom: 'last' as const }, // the rnn net's shape, narrower
    { T: 28, B: 3, I: 28, hidden: [16], gradFrom: 'last' as const, fused: true },
    { T: 7, B: 5, I: 9, hidden: [11, 6], gradFrom: 'all' as const, given: true, dropout: true },
  ];
  for (const c of cases) {
    const { T, B, I, hidden } = c;
    const L = hidden.length, G = GATES.lstm;
    const rand = rng(seed++);
    const x = randomArray(T * B * I, rand);
    // scaled as in test/recurrent.test.ts: gates neither saturated nor linear
    const params = hidden.map((H, l) => {
      const In = l === 0 ? I : hidden[l - 1];
      return { w: randomArray((In + H) * G * H, rand, 1.5 / Math.sqrt(In + H)), b: randomArray(G * H, rand, 0.5) };
    });
    const masks = c.dropout ? hidden.slice(0, -1).map((H) => Float32Array.from({ length: T * B * H }, () => (rand() < 0.7 ? 1 / 0.7 : 0))) : undefined;
    const h0 = c.given ? hidden.map((H) => randomArray(B * H, rand)) : undefined;
    const c0 = c.given ? hidden.map((H) => randomArray(B * H, rand)) : undefined;
    const Htop = hidden[L - 1];
    const dy = randomArray(c.gradFrom === 'last' ? B * Htop : T * B * Htop, rand);
    const xb = ctx.upload(x);
    const pb = params.map((p) => ({ w: ctx.upload(p.w), b: ctx.upload(p.b) }));
    const mb = masks?.map((m) => ctx.upload(m));
    const stack = prepareRecurrentStack(ctx, {
      cell: 'lstm', T, B, I, hidden, gradFrom: c.gradFrom, initialState: c.given ? 'given' : 'zeros', dropout: c.dropout, fused: c.fused,
    }, { x: xb, params: pb, masks: mb });
    for (const layer of stack.layers) {
      for (const buf of [layer.h, layer.c, layer.z, layer.rh, layer.dz, layer.dh, layer.dc, layer.dw, layer.db, layer.dx]) if (buf) ctx.poison(buf);
    }
    stack.layers.forEach((layer, l) => {
      if (h0) ctx.write(layer.h, h0[l]);
      if (c0 && layer.c) ctx.write(layer.c, c0[l]);
    });
    const tag = `LSTM ×${L} T=${T} B=${B} I=${I} H=${hidden.join(',')} ${c.gradFrom}${c.given ? ' h0' : ''}${c.dropout ? ' dropout' : ''}${c.fused ? ' fused' : ''}`;

    await runDispatches(ctx, stack.forward);
    const ref = stackForwardRef('lstm', T, B, I, hidden, x, params, { masks, h0, c0 });
    const top = stack.layers[L - 1];
    record(`${tag}: outputs`, 'forward', await ctx.readF32(top.h, T * B * Htop, top.outputOffset), ref.layers[L - 1].h.subarray(B * Htop));
    for (let l = 0; l < L; l++) {
      const layer = stack.layers[l], H = hidden[l];
      record(`${tag}: final c of layer ${l}`, 'forward', await ctx.readF32(layer.c!, B * H, layer.finalOffset), ref.layers[l].c.subarray(T * B * H));
    }

    ctx.write(stack.dy, dy);
    await runDispatches(ctx, stack.backward);
    const grads = stackBackwardRef('lstm', T, B, I, hidden, params, ref, dy, masks);
    for (let l = 0; l < L; l++) {
      const layer = stack.layers[l], H = hidden[l], In = l === 0 ? I : hidden[l - 1];
      record(`${tag}: dw of layer ${l}`, 'backward', await ctx.readF32(layer.dw, (In + H) * G * H), grads[l].dw);
      record(`${tag}: db of layer ${l}`, 'backward', await ctx.readF32(layer.db, G * H), grads[l].db);
      if (c.given) record(`${tag}: dh0 of layer ${l}`, 'backward', await ctx.readF32(layer.dh, B * H), grads[l].dh0);
    }
    record(`${tag}: dx`, 'backward', await ctx.readF32(stack.dx!, T * B * I), grads[0].dx);
    releaseRecurrent(ctx, stack);
    for (const b of [xb, ...pb.flatMap((p) => [p.w, p.b]), ...(mb ?? [])]) ctx.release(b);
  }
}

async function softmaxXentChecks(ctx: GpuContext, seed: number, record: Record_): Promise<void> {
  for (const [B, C] of [[1, 2], [7, 3], [50, 10], [100, 10], [13, 1000]]) {
    const rand = rng(seed++);
    const logits = randomArray(B * C, rand, 3);
    const labels = Uint32Array.from({ length: B }, () => Math.min(C - 1, Math.floor(rand() * C)));
    const bufs = { logits: ctx.upload(logits), labels: ctx.upload(labels), loss: ctx.storage(B * 4), dlogits: ctx.storage(B * C * 4), meanLoss: ctx.storage(4) };
    for (const b of [bufs.loss, bufs.dlogits, bufs.meanLoss]) ctx.poison(b);
    await runDispatches(ctx, prepareSoftmaxXent(ctx, { batch: B, classes: C }, bufs));
    const ref = softmaxXentRef(logits, labels, B, C);
    record(`softmax cross-entropy [${B},${C}] loss`, 'forward', await ctx.readF32(bufs.loss, B), ref.loss);
    record(`softmax cross-entropy [${B},${C}] mean loss`, 'forward', await ctx.readF32(bufs.meanLoss, 1), [ref.mean]);
    record(`softmax cross-entropy [${B},${C}] dlogits`, 'backward', await ctx.readF32(bufs.dlogits, B * C), ref.grad);
    for (const b of Object.values(bufs)) ctx.release(b);
  }
}

async function softmaxMseAddConcatChecks(ctx: GpuContext, seed: number, record: Record_): Promise<void> {
  for (const [R, C] of [[1, 2], [7, 3], [50, 10], [13, 1000]]) {
    const rand = rng(seed++);
    const n = R * C;
    const x = randomArray(n, rand, 3), dy = randomArray(n, rand), target = randomArray(n, rand, 3);
    const bx = ctx.upload(x), bdy = ctx.upload(dy), bt = ctx.upload(target);
    const y = ctx.storage(n * 4), dx = ctx.storage(n * 4), dpred = ctx.storage(n * 4), meanLoss = ctx.storage(4);
    const sum = ctx.storage(n * 4), da = ctx.storage(n * 4), db = ctx.storage(n * 4);
    for (const b of [y, dx, dpred, meanLoss, sum, da, db]) ctx.poison(b);
    await runDispatches(ctx, [
      prepareSoftmax(ctx, { rows: R, cols: C }, { x: bx, y }),
      prepareSoftmaxBackward(ctx, { rows: R, cols: C }, { y, dy: bdy, dx }),
      ...prepareMse(ctx, { batch: R, dim: C }, { pred: bx, target: bt, dpred, meanLoss }),
      prepareAdd(ctx, { n }, { a: bx, b: bt, y: sum }),
      ...prepareAddBackward(ctx, { n }, { dy: bdy, da, db }),
    ]);
    const gy = await ctx.readF32(y, n);
    record(`softmax [${R},${C}] y`, 'forward', gy, softmaxRef(x, R, C));
    record(`softmax [${R},${C}] dx`, 'backward', await ctx.readF32(dx, n), softmaxBackwardRef(gy, dy, R, C));
    const mse = mseRef(x, target);
    record(`mse [${R},${C}] mean loss`, 'forward', await ctx.readF32(meanLoss, 1), [mse.mean]);
    record(`mse [${R},${C}] dpred`, 'backward', await ctx.readF32(dpred, n), mse.grad);
    record(`add [${n}] y`, 'forward', await ctx.readF32(sum, n), addRef(x, target));
    const g = addBackwardRef(dy);
    record(`add [${n}] da`, 'backward', await ctx.readF32(da, n), g.da);
    record(`add [${n}] db`, 'backward', await ctx.readF32(db, n), g.db);
    for (const b of [bx, bdy, bt, y, dx, dpred, meanLoss, sum, da, db]) ctx.release(b);
  }
  for (const [rows, cols] of [[5, [3, 5, 1]], [33, [4, 3, 12]]] as [number, number[]][]) {
    const rand = rng(seed++);
    const total = cols.reduce((a, c) => a + c, 0);
    const xs = cols.map((c) => randomArray(rows * c, rand));
    const dy = randomArray(rows * total, rand);
    const bxs = xs.map((x) => ctx.upload(x)), bdy = ctx.upload(dy), y = ctx.storage(rows * total * 4);
    const dxs = cols.map((c) => ctx.storage(rows * c * 4));
    for (const b of [y, ...dxs]) ctx.poison(b);
    await runDispatches(ctx, [...prepareConcat(ctx, { rows, cols }, { xs: bxs, y }), ...prepareConcatBackward(ctx, { rows, cols }, { dy: bdy, dxs })]);
    const what = `concat [${rows}, ${cols.join('+')}]`;
    record(`${what} y`, 'forward', await ctx.readF32(y, rows * total), concatRef(xs, rows, cols));
    const ref = concatBackwardRef(dy, rows, cols);
    for (let i = 0; i < cols.length; i++) record(`${what} dx${i}`, 'backward', await ctx.readF32(dxs[i], rows * cols[i]), ref[i]);
    for (const b of [...bxs, bdy, y, ...dxs]) ctx.release(b);
  }
}

/** Runs every check on `ctx` (seeds from `seed` on) and returns each output's relative error to float64. */
export async function runKernelChecks(ctx: GpuContext, seed = 1): Promise<KernelCheck[]> {
  const out: KernelCheck[] = [];
  const record: Record_ = (name, pass, got, ref) => out.push({ name, pass, error: relError(got, ref) });
  await matmulChecks(ctx, seed, record);
  await conv2dChecks(ctx, seed + 1000, record);
  await lstmChecks(ctx, seed + 2000, record);
  await softmaxXentChecks(ctx, seed + 3000, record);
  await softmaxMseAddConcatChecks(ctx, seed + 4000, record);
  return out;
}
