import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { expectClose, gradCheck, dot, randomArray, relError, rng } from './support/cpu.js';
import {
  GATES, layerBackwardRef, layerForwardRef, stackBackwardRef, stackForwardRef, type Cell, type StackParams,
} from './ref/recurrent.js';
import { hasLstmStepEpilogues, prepareRecurrentLayer, prepareRecurrentStack, releaseRecurrent, recurrentInit, type RecurrentLayer } from '../src/kernels/recurrent.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import { GpuContext } from '../src/gpu/context.js';

interface Case {
  cell: Cell;
  T: number; B: number; I: number; hidden: number[];
  gradFrom?: 'all' | 'last';
  initialState?: 'zeros' | 'given';
  dropout?: boolean;
  fused?: boolean;
  /** LSTM: the cell as the recurrent matmul's epilogue (default true where the adapter has subgroups). */
  cellInMatmul?: boolean;
  /** The backward step's product split over K into this many layers, the cell in its own dispatch (a GPU's default). */
  splitRecurrentProduct?: number;
  /** As the nets run it (recurrentStack in src/graph/ops.ts): each layer's gate gradients dz written over its gates z. */
  gatesInPlace?: boolean;
  /** dx of the bottom layer (default true; the nets, fed with data, ask for none). */
  inputGrad?: boolean;
  seed: number;
}

const errors: Record<string, number> = {};
function close(got: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what: string): void {
  expectClose(got, ref, tol, what);
  const e = relError(got, ref);
  const key = what.replace(/ seed=\d+/, '');
  errors[key] = Math.max(errors[key] ?? 0, e);
}

function randomParams(cell: Cell, I: number, H: number, rand: () => number): StackParams {
  const G = GATES[cell];
  // scaled so that the gates are neither saturated nor linear: gradients through all T steps matter
  return { w: randomArray((I + H) * G * H, rand, 1.5 / Math.sqrt(I + H)), b: randomArray(G * H, rand, 0.5) };
}

/** Runs a stack forward and backward on the GPU, with everything it writes poisoned first, against float64. */
async function check(ctx: GpuContext, c: Case): Promise<void> {
  const { cell, T, B, I, hidden } = c;
  const L = hidden.length;
  const rand = rng(c.seed);
  const x = randomArray(T * B * I, rand);
  const params = hidden.map((H, l) => randomParams(cell, l === 0 ? I : hidden[l - 1], H, rand));
  const masks = c.dropout ? hidden.slice(0, -1).map((H) => {
    const keep = 0.7;
    return Float32Array.from({ length: T * B * H }, () => (rand() < keep ? 1 / keep : 0));
  }) : undefined;
  const given = c.initialState === 'given';
  const h0 = given ? hidden.map((H) => randomArray(B * H, rand)) : undefined;
  const c0 = given ? hidden.map((H) => randomArray(B * H, rand)) : undefined;
  const Htop = hidden[L - 1];
  const dy = randomArray(c.gradFrom === 'last' ? B * Htop : T * B * Htop, rand);
  const inputGrad = c.inputGrad ?? true;
  const tag = `${cell} ×${L} T=${T} B=${B} I=${I} H=${hidden.join(',')} ${c.gradFrom ?? 'all'}${given ? ' h0' : ''}${c.dropout ? ' dropout' : ''}` +
    `${c.fused ? ' fused' : ''}${c.cellInMatmul === false ? ' matmul+cell' : ''}${c.splitRecurrentProduct ? ` dh split ${c.splitRecurrentProduct}` : ''}${c.gatesInPlace ? ' dz-over-z' : ''}${inputGrad ? '' : ' no-dx'} seed=${c.seed}`;

  const xb = ctx.upload(x);
  const pb = params.map((p) => ({ w: ctx.upload(Float32Array.from(p.w)), b: ctx.upload(Float32Array.from(p.b)) }));
  // The nets hand each layer one buffer for its gates and their gradients.
  const gates = c.gatesInPlace ? hidden.map((H) => ctx.storage(T * B * GATES[cell] * H * 4, `gates and their gradients, H=${H}`)) : [];
  const mb = masks?.map((m) => ctx.upload(m));
  const stack = prepareRecurrentStack(ctx, {
    cell, T, B, I, hidden, gradFrom: c.gradFrom, initialState: c.initialState, dropout: c.dropout, fused: c.fused, cellInMatmul: c.cellInMatmul, splitRecurrentProduct: c.splitRecurrentProduct, inputGrad,
  }, { x: xb, params: pb.map((p, l) => (c.gatesInPlace ? { ...p, z: gates[l], dz: gates[l] } : p)), masks: mb });
  if (c.gatesInPlace) for (const layer of stack.layers) expect(layer.dz, `${tag}: dz shares z's buffer`).to.equal(layer.z);
  for (const layer of stack.layers) {
    for (const buf of [layer.h, layer.c, layer.z, layer.rh, layer.dz, layer.dh, layer.dc, layer.dw, layer.db, layer.dx]) if (buf) ctx.poison(buf);
  }
  stack.layers.forEach((layer, l) => {
    if (h0) ctx.write(layer.h, Float32Array.from(h0[l]));
    if (c0 && layer.c) ctx.write(layer.c, Float32Array.from(c0[l]));
  });

  // forward
  await runDispatches(ctx, stack.forward);
  const ref = stackForwardRef(cell, T, B, I, hidden, x, params, { masks, h0, c0 });
  const top = stack.layers[L - 1];
  const refTop = ref.layers[L - 1];
  close(await ctx.readF32(top.h, T * B * Htop, top.outputOffset), refTop.h.subarray(B * Htop), 1e-5, `${tag}: outputs`);
  for (let l = 0; l < L; l++) {
    const layer = stack.layers[l], H = hidden[l];
    close(await ctx.readF32(layer.h, B * H, layer.finalOffset), ref.layers[l].h.subarray(T * B * H), 1e-5, `${tag}: final h of layer ${l}`);
    if (layer.c) close(await ctx.readF32(layer.c, B * H, layer.finalOffset), ref.layers[l].c.subarray(T * B * H), 1e-5, `${tag}: final c of layer ${l}`);
  }

  // backward
  ctx.write(stack.dy, dy);
  await runDispatches(ctx, stack.backward);
  const grads = stackBackwardRef(cell, T, B, I, hidden, params, ref, dy, masks);
  for (let l = 0; l < L; l++) {
    const layer = stack.layers[l], H = hidden[l], In = l === 0 ? I : hidden[l - 1];
    const G = GATES[cell];
    close(await ctx.readF32(layer.dw, (In + H) * G * H), grads[l].dw, 1e-4, `${tag}: dw of layer ${l}`);
    close(await ctx.readF32(layer.db, G * H), grads[l].db, 1e-4, `${tag}: db of layer ${l}`);
    if (given) {
      close(await ctx.readF32(layer.dh, B * H), grads[l].dh0, 1e-4, `${tag}: dh0 of layer ${l}`);
      if (layer.dc) close(await ctx.readF32(layer.dc, B * H), grads[l].dc0, 1e-4, `${tag}: dc0 of layer ${l}`);
    }
  }
  if (inputGrad) close(await ctx.readF32(stack.dx!, T * B * I), grads[0].dx, 1e-4, `${tag}: dx`);
  else expect(stack.dx, `${tag}: no dx asked for`).to.equal(undefined);

  releaseRecurrent(ctx, stack);
  for (const b of [xb, ...pb.flatMap((p) => [p.w, p.b]), ...(mb ?? []), ...gates]) ctx.release(b);
}

/** Wall time since t0 and CPU time of this process (lavapipe's threads included) since cpu0. */
function seconds(t0: number, cpu0: NodeJS.CpuUsage): string {
  const cpu = process.cpuUsage(cpu0);
  return `${((performance.now() - t0) / 1000).toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU`;
}

const SHAPES = [
  { T: 5, B: 2, I: 3, H: 4 },
  { T: 28, B: 3, I: 28, H: 16 },
];

describe('recurrent layers (shaders/recurrent.wgsl + matmul) against float64 BPTT', function () {
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  for (const layers of [1, 2]) {
    it(`LSTM forward and backward, ${layers} layer(s), many-to-many and many-to-one`, async () => {
      let seed = 10 * layers;
      for (const s of SHAPES) {
        for (const gradFrom of ['all', 'last'] as const) {
          await check(ctx, { cell: 'lstm', T: s.T, B: s.B, I: s.I, hidden: Array(layers).fill(s.H), gradFrom, seed: seed++ });
        }
      }
    });
  }

  it('LSTM with fused steps (recurrent matmul inside the cell kernels): 1 and 2 layers, zero and given states', async () => {
    const [s5, s28] = SHAPES;
    await check(ctx, { cell: 'lstm', ...s5, hidden: [s5.H], gradFrom: 'all', fused: true, seed: 50 });
    await check(ctx, { cell: 'lstm', ...s5, hidden: [s5.H, 5], gradFrom: 'last', fused: true, initialState: 'given', dropout: true, seed: 51 });
    await check(ctx, { cell: 'lstm', ...s28, hidden: [s28.H], gradFrom: 'last', fused: true, seed: 52 });
    await check(ctx, { cell: 'lstm', T: 3, B: 13, I: 5, hidden: [70], gradFrom: 'all', fused: true, initialState: 'given', seed: 53 });
  });

  it('LSTM with a matmul and a cell kernel per step (the cell not in the matmul\'s epilogue): odd shapes, given states, dropout, dz over z', async () => {
    const [s5] = SHAPES;
    await check(ctx, { cell: 'lstm', ...s5, hidden: [s5.H], gradFrom: 'all', cellInMatmul: false, seed: 60 });
    await check(ctx, { cell: 'lstm', T: 7, B: 5, I: 9, hidden: [11, 6], initialState: 'given', dropout: true, gradFrom: 'all', gatesInPlace: true, cellInMatmul: false, seed: 61 });
  });

  it('LSTM and SimpleRNN with the backward step\'s product split over K and the cell in its own dispatch (a GPU\'s choice): odd shapes, given states, dropout, dz over z', async () => {
    await check(ctx, { cell: 'lstm', T: 7, B: 5, I: 9, hidden: [11, 6], initialState: 'given', dropout: true, gradFrom: 'all', gatesInPlace: true, splitRecurrentProduct: 3, seed: 80 });
    await check(ctx, { cell: 'lstm', T: 6, B: 13, I: 5, hidden: [70], gradFrom: 'last', splitRecurrentProduct: 4, seed: 81 });
    await check(ctx, { cell: 'rnn', T: 7, B: 5, I: 9, hidden: [37, 11], initialState: 'given', dropout: true, gradFrom: 'all', splitRecurrentProduct: 2, seed: 82 });
  });

  it('on a GPU, an LSTM at the rnn net\'s size splits the backward step\'s product and runs each step as a product, then the cell, both ways; here, the cell in the product\'s epilogue', () => {
    const gpu = GpuContext.fromDevice(ctx.device, { adapterDescription: 'nvidia / nvidia-h200 / NVIDIA: 580.159.04' });
    const x = ctx.storage(28 * 100 * 28 * 4);
    try {
      const onGpu = prepareRecurrentLayer(gpu, { cell: 'lstm', T: 28, B: 100, I: 28, H: 128 }, { x });
      expect(onGpu.spec.splitRecurrentProduct, 'the backward step\'s product split on a GPU').to.equal(true);
      expect(onGpu.spec.cellInMatmul, 'the cell in the product\'s epilogue on a GPU').to.equal(false);
      expect(onGpu.forward.filter((d) => / h·W_h t=/.test(d.label ?? '')), 'forward steps as products of their own').to.have.length(27);
      releaseRecurrent(gpu, onGpu);
      const here = prepareRecurrentLayer(ctx, { cell: 'lstm', T: 28, B: 100, I: 28, H: 128 }, { x });
      expect(here.spec.splitRecurrentProduct, 'the backward step\'s product split here').to.equal(false);
      expect(here.spec.cellInMatmul, 'the cell in the product\'s epilogue here').to.equal(hasLstmStepEpilogues(ctx));
      releaseRecurrent(ctx, here);
    } finally {
      ctx.release(x);
      gpu.destroy();
    }
  });

  it('LSTM steps with the cell in the matmul\'s epilogue give exactly the floats of matmul + cell kernel', async function () {
    if (!hasLstmStepEpilogues(ctx)) this.skip(); // the epilogues need the subgroup matmul
    for (const [T, B, I, H, initialState, inPlace] of [[28, 100, 28, 128, 'zeros', true], [7, 5, 9, 11, 'given', false], [1, 3, 2, 5, 'given', true]] as const) {
      const rand = rng(70 + T);
      const G = 4, GH = G * H;
      const x = ctx.upload(randomArray(T * B * I, rand));
      const w = ctx.upload(randomArray((I + H) * GH, rand, 1.5 / Math.sqrt(I + H)));
      const b = ctx.upload(randomArray(GH, rand, 0.5));
      const dy = ctx.upload(randomArray(T * B * H, rand));
      const h0 = randomArray(B * H, rand), c0 = randomArray(B * H, rand);
      const results: Float32Array[][] = [];
      for (const cellInMatmul of [false, true]) {
        const gates = ctx.storage(T * B * GH * 4);
        const l: RecurrentLayer = prepareRecurrentLayer(ctx, { cell: 'lstm', T, B, I, H, initialState, cellInMatmul }, { x, w, b, dy, ...(inPlace ? { z: gates, dz: gates } : {}) });
        for (const buf of [l.h, l.c!, l.z, l.dz, l.dh, l.dc!, l.dw, l.db, l.dx!]) ctx.poison(buf);
        if (initialState === 'given') { ctx.write(l.h, h0); ctx.write(l.c!, c0); }
        await runDispatches(ctx, [...l.forward, ...l.backward]);
        const n = (T + 1) * B * H;
        results.push([await ctx.readF32(l.h, n), await ctx.readF32(l.c!, n), await ctx.readF32(l.dw, (I + H) * GH), await ctx.readF32(l.db, GH),
          await ctx.readF32(l.dx!, T * B * I), await ctx.readF32(l.dh, B * H), await ctx.readF32(l.dc!, B * H)]);
        releaseRecurrent(ctx, l);
        ctx.release(gates);
      }
      ['h', 'c', 'dw', 'db', 'dx', 'dh0', 'dc0'].forEach((what, k) => {
        if (what === 'dh0' && initialState === 'zeros') return; // dh holds dL/dh0 only for a given state
        expect(Array.from(results[1][k]), `T=${T} B=${B} I=${I} H=${H} ${initialState}: ${what}`).to.deep.equal(Array.from(results[0][k]));
      });
      for (const buf of [x, w, b, dy]) ctx.release(buf);
    }
  });

  for (const cell of ['gru', 'rnn'] as Cell[]) {
    it(`${cell.toUpperCase()} forward and backward, 1 and 2 layers, many-to-many and many-to-one`, async () => {
      let seed = cell === 'gru' ? 100 : 200;
      for (const s of SHAPES) {
        for (const gradFrom of ['all', 'last'] as const) {
          for (const layers of [1, 2]) {
            await check(ctx, { cell, T: s.T, B: s.B, I: s.I, hidden: Array(layers).fill(s.H), gradFrom, seed: seed++ });
          }
        }
      }
    });
  }

  for (const cell of ['lstm', 'gru', 'rnn'] as Cell[]) {
    it(`${cell.toUpperCase()}: given initial states, dropout between layers of different sizes, odd shapes`, async () => {
      const seed = 300 + 10 * cell.length;
      await check(ctx, { cell, T: 7, B: 5, I: 9, hidden: [11, 6], initialState: 'given', dropout: true, gradFrom: 'all', seed });
      await check(ctx, { cell, T: 7, B: 5, I: 9, hidden: [11, 6], initialState: 'given', dropout: true, gradFrom: 'last', seed: seed + 1 });
      await check(ctx, { cell, T: 1, B: 1, I: 1, hidden: [1], initialState: 'given', gradFrom: 'all', seed: seed + 2 });
    });
  }

  it('LSTM and RNN with the gate gradients written over the gates (as the nets run them): odd shapes, given states, dropout, dx', async () => {
    for (const cell of ['lstm', 'rnn'] as Cell[]) {
      const seed = cell === 'lstm' ? 400 : 410;
      await check(ctx, { cell, T: 7, B: 5, I: 9, hidden: [11, 6], initialState: 'given', dropout: true, gradFrom: 'all', gatesInPlace: true, seed });
      await check(ctx, { cell, T: 6, B: 3, I: 4, hidden: [5], gradFrom: 'last', gatesInPlace: true, inputGrad: false, seed: seed + 1 });
    }
  });

  // The rnn net's size (net 'rnn', batch 100: 28 rows of 28 pixels, 128 units, many-to-one): the nets'
  // settings, i.e. zero initial state, no dx, LSTM and RNN gate gradients written over the gates.
  const NET = { T: 28, B: 100, I: 28, hidden: [128], gradFrom: 'last' as const, inputGrad: false };
  for (const cell of ['lstm', 'gru', 'rnn'] as Cell[]) {
    it(`${cell.toUpperCase()} at the rnn net's size (T=28, B=100, I=28, H=128), many-to-one, as the net runs it`, async function () {
      this.timeout(600_000);
      const t0 = performance.now(), cpu0 = process.cpuUsage();
      await check(ctx, { cell, ...NET, gatesInPlace: cell !== 'gru', seed: 500 + cell.length });
      console.log(`      ${cell} T=28 B=100 I=28 H=128 forward + backward against float64: ${seconds(t0, cpu0)}`);
    });
  }

  it('GRU at H=128 (T=28, B=100, I=28), many-to-many with dx and given initial state', async function () {
    this.timeout(600_000);
    const t0 = performance.now(), cpu0 = process.cpuUsage();
    await check(ctx, { cell: 'gru', T: 28, B: 100, I: 28, hidden: [128], gradFrom: 'all', initialState: 'given', seed: 520 });
    console.log(`      gru T=28 B=100 I=28 H=128 many-to-many: ${seconds(t0, cpu0)}`);
  });

  it('dispatches per forward+backward: 2T per direction plus a constant (LSTM, RNN), 4T for GRU, T for fused LSTM and LSTM with the cell in the matmul', () => {
    const x = ctx.storage(28 * 3 * 28 * 4);
    const counts: string[] = [];
    for (const cell of ['lstm', 'rnn', 'gru'] as Cell[]) {
      for (const T of [5, 28]) {
        for (const initialState of ['zeros', 'given'] as const) {
          const layer = prepareRecurrentLayer(ctx, { cell, T, B: 3, I: 28, H: 16, initialState, cellInMatmul: false }, { x });
          const z = initialState === 'zeros' ? 1 : 0;
          // forward: input projection + per step (recurrent matmul, cell) − the skipped step-0 matmul(s)
          // backward: per step (cell, matmul) − skipped step-0 matmul + dW_x, dW_h, db, dX
          const fwd = cell === 'gru' ? 1 + 4 * T - 3 * z : 1 + 2 * T - z;
          const bwd = cell === 'gru' ? 4 * T - 3 * z + 5 : 2 * T - z + 4;
          expect(layer.forward.length, `${cell} T=${T} ${initialState} forward`).to.equal(fwd);
          expect(layer.backward.length, `${cell} T=${T} ${initialState} backward`).to.equal(bwd);
          counts.push(`${cell} T=${T} ${initialState}: ${fwd}+${bwd}`);
          releaseRecurrent(ctx, layer);
          if (cell === 'lstm') {
            // fused: per step one kernel; backward also transposes W_h once, and dL/dh0 needs a matmul
            const fl = prepareRecurrentLayer(ctx, { cell, T, B: 3, I: 28, H: 16, initialState, fused: true }, { x });
            expect(fl.forward.length, `fused T=${T} ${initialState} forward`).to.equal(1 + T);
            expect(fl.backward.length, `fused T=${T} ${initialState} backward`).to.equal(1 + T + (1 - z) + 4);
            counts.push(`lstm fused T=${T} ${initialState}: ${fl.forward.length}+${fl.backward.length}`);
            releaseRecurrent(ctx, fl);
            // cell in the matmul (the default where the adapter has subgroups): one dispatch per step; forward
            // also interleaves W_h's gate columns once; step 0 is a cell kernel (with its matmul for a given
            // state), and dL/dh0 needs a matmul
            const ml = prepareRecurrentLayer(ctx, { cell, T, B: 3, I: 28, H: 16, initialState }, { x });
            const epi = hasLstmStepEpilogues(ctx);
            expect(ml.forward.length, `cell in matmul T=${T} ${initialState} forward`).to.equal(epi ? 2 + T + (1 - z) : fwd);
            expect(ml.backward.length, `cell in matmul T=${T} ${initialState} backward`).to.equal(epi ? T + (1 - z) + 4 : bwd);
            counts.push(`lstm cell in matmul T=${T} ${initialState}: ${ml.forward.length}+${ml.backward.length}`);
            releaseRecurrent(ctx, ml);
          }
        }
      }
    }
    console.log(`    dispatches (forward+backward): ${counts.join('; ')}`);
    ctx.release(x);
  });

  it('rejects bad shapes and short buffers with messages naming them', () => {
    const x = ctx.storage(16);
    expect(() => prepareRecurrentLayer(ctx, { cell: 'lstm', T: 0, B: 1, I: 1, H: 1 }, { x })).to.throw(/T must be a positive integer/);
    expect(() => prepareRecurrentLayer(ctx, { cell: 'lstm', T: 2, B: 3, I: 4, H: 1 }, { x })).to.throw(/x \[2, 3, 4\].*needs 24 floats/);
    expect(() => prepareRecurrentStack(ctx, { cell: 'gru', T: 1, B: 1, I: 1, hidden: [2, 2], dropout: true }, { x, masks: [] })).to.throw(/1 dropout masks needed/);
    ctx.release(x);
  });

  it('recurrentInit follows TF: GRU r|u bias 1.0, Glorot-uniform bounds', () => {
    const { w, b } = recurrentInit('gru', 3, 4, rng(1));
    expect(Array.from(b)).to.deep.equal([...Array(8).fill(1), ...Array(4).fill(0)]);
    const lim = Math.sqrt(6 / (3 + 4 + 8));
    for (let r = 0; r < 7; r++) for (let c = 0; c < 8; c++) expect(Math.abs(w[r * 12 + c])).to.be.at.most(lim);
    const l = recurrentInit('lstm', 3, 4, rng(2));
    expect(l.b.every((v) => v === 0)).to.equal(true);
    expect(l.w.some((v) => Math.abs(v) > 0.5 * Math.sqrt(6 / (7 + 16)))).to.equal(true);
  });
});

describe('recurrent float64 BPTT twins against finite differences', () => {
  after(() => {
    const rows = Object.entries(errors).map(([k, v]) => `    ${v.toExponential(2)}  ${k}`);
    if (rows.length && process.env.RECURRENT_ERRORS) console.log(`    largest relative errors:\n${rows.join('\n')}`);
  });
  const d = { T: 5, B: 2, I: 3, H: 4 };
  for (const cell of ['lstm', 'gru', 'rnn'] as Cell[]) {
    for (const gradFrom of ['all', 'last'] as const) {
      it(`${cell} ${gradFrom === 'all' ? 'many-to-many' : 'many-to-one'}: dw, db, dx, dh0, dc0`, () => {
        const rand = rng(cell.length * 7 + gradFrom.length);
        const { T, B, I, H } = d;
        const x = Float64Array.from(randomArray(T * B * I, rand));
        const p = randomParams(cell, I, H, rand);
        const w = Float64Array.from(p.w), b = Float64Array.from(p.b);
        const h0 = Float64Array.from(randomArray(B * H, rand)), c0 = Float64Array.from(randomArray(B * H, rand));
        const wy = randomArray(gradFrom === 'all' ? T * B * H : B * H, rand);
        const loss = () => {
          const f = layerForwardRef(cell, d, x, w, b, { h0, c0 });
          return dot(wy, gradFrom === 'all' ? f.h.subarray(B * H) : f.h.subarray(T * B * H));
        };
        const g = layerBackwardRef(cell, d, x, w, layerForwardRef(cell, d, x, w, b, { h0, c0 }), wy);
        const res: Record<string, number> = {
          dw: gradCheck(loss, w, g.dw), db: gradCheck(loss, b, g.db), dx: gradCheck(loss, x, g.dx), dh0: gradCheck(loss, h0, g.dh0),
        };
        if (cell === 'lstm') res.dc0 = gradCheck(loss, c0, g.dc0);
        for (const [k, e] of Object.entries(res)) {
          expect(e, `${cell} ${gradFrom} ${k}: relative error ${e.toExponential(2)}`).to.be.lessThan(1e-6);
          errors[`cpu gradcheck ${cell} ${gradFrom} ${k}`] = e;
        }
      });
    }
  }

  it('2-layer LSTM stack with dropout masks and given states: all layers\' gradients', () => {
    const rand = rng(77);
    const T = 4, B = 2, I = 3, hidden = [5, 4];
    const x = Float64Array.from(randomArray(T * B * I, rand));
    const params = hidden.map((H, l) => {
      const p = randomParams('lstm', l === 0 ? I : hidden[l - 1], H, rand);
      return { w: Float64Array.from(p.w), b: Float64Array.from(p.b) };
    });
    const masks = [Float64Array.from({ length: T * B * hidden[0] }, () => (rand() < 0.6 ? 1 / 0.6 : 0))];
    const h0 = hidden.map((H) => Float64Array.from(randomArray(B * H, rand)));
    const c0 = hidden.map((H) => Float64Array.from(randomArray(B * H, rand)));
    const wy = randomArray(T * B * hidden[1], rand);
    const loss = () => dot(wy, stackForwardRef('lstm', T, B, I, hidden, x, params, { masks, h0, c0 }).layers[1].h.subarray(B * hidden[1]));
    const fwd = stackForwardRef('lstm', T, B, I, hidden, x, params, { masks, h0, c0 });
    const g = stackBackwardRef('lstm', T, B, I, hidden, params, fwd, wy, masks);
    const res = [
      gradCheck(loss, params[0].w, g[0].dw), gradCheck(loss, params[0].b, g[0].db), gradCheck(loss, params[1].w, g[1].dw),
      gradCheck(loss, x, g[0].dx), gradCheck(loss, h0[0], g[0].dh0), gradCheck(loss, c0[0], g[0].dc0), gradCheck(loss, c0[1], g[1].dc0),
    ];
    for (const e of res) expect(e).to.be.lessThan(1e-6);
    errors['cpu gradcheck lstm stack'] = Math.max(...res);
  });
});

