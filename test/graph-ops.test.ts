// The ops added through the op registry (add, concat, globalAvgPool, meanSquaredError, softmax),
// at graph level: small nets' parameter gradients through autodiff equal a float64 CPU model's
// (whose own gradients pass a finite-difference check), any registered scalar loss is accepted,
// and autodiff refuses a non-scalar or unknown loss with a GraphError saying why.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { expectClose, gradCheck, matmulRef, relError, rng, type Act } from './support/cpu.js';
import { conv2dRef, conv2dBackwardRef, type ConvShape } from './ref/conv2d.js';
import { softmaxXentRef } from './ref/softmax-xent.js';
import { activationDerivFromOutput } from './ref/activation.js';
import { Graph, GraphError } from '../src/graph/graph.js';
import { buildBackward } from '../src/graph/autodiff.js';
import { CompiledGraph } from '../src/graph/recorder.js';
import { createStepCounter } from '../src/kernels/step.js';
import type { Tensor } from '../src/graph/tensor.js';
import type { GpuContext } from '../src/gpu/context.js';

type Weights = Record<string, Float64Array>;
type Shapes = Record<string, number[]>;

// ------------------------------------------------------------------ float64 CPU pieces

const dense = (x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | undefined, B: number, In: number, Out: number, act: Act = 'none') =>
  matmulRef(x, w, B, Out, In, { bias: b, act });

/** dL/dw, dL/db, dL/dx of y = act(x·w + b) from dL/dy, through the output y. */
function denseBack(x: ArrayLike<number>, w: ArrayLike<number>, y: ArrayLike<number>, dy: ArrayLike<number>, B: number, In: number, Out: number, act: Act = 'none') {
  const dz = Float64Array.from(dy, (g, i) => g * activationDerivFromOutput(y[i], act));
  const db = new Float64Array(Out);
  for (let r = 0; r < B; r++) for (let j = 0; j < Out; j++) db[j] += dz[r * Out + j];
  return { dw: matmulRef(x, dz, In, Out, B, { transA: true }), db, dx: matmulRef(dz, w, B, In, Out, { transB: true }) };
}

function softmaxRows(x: ArrayLike<number>, R: number, C: number): Float64Array {
  const y = new Float64Array(R * C);
  for (let r = 0; r < R; r++) {
    let m = -Infinity;
    for (let k = 0; k < C; k++) m = Math.max(m, x[r * C + k]);
    let s = 0;
    for (let k = 0; k < C; k++) s += (y[r * C + k] = Math.exp(x[r * C + k] - m));
    for (let k = 0; k < C; k++) y[r * C + k] /= s;
  }
  return y;
}

function softmaxRowsBack(y: ArrayLike<number>, dy: ArrayLike<number>, R: number, C: number): Float64Array {
  const dx = new Float64Array(R * C);
  for (let r = 0; r < R; r++) {
    let dot = 0;
    for (let k = 0; k < C; k++) dot += dy[r * C + k] * y[r * C + k];
    for (let k = 0; k < C; k++) dx[r * C + k] = y[r * C + k] * (dy[r * C + k] - dot);
  }
  return dx;
}

const addArrays = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (v, i) => v + b[i]);

/** A small net on the CPU: its loss and every parameter's gradient, from weights and inputs. */
interface CpuNet {
  loss(W: Weights): number;
  grads(W: Weights): Weights;
}

// ------------------------------------------------------------------ the four nets

interface NetCase {
  title: string;
  shapes: Shapes;
  /** Builds the net on a Graph from its parameters; returns the loss and the inputs to feed. */
  build(g: Graph, P: (name: string) => Tensor): { loss: Tensor; feeds: [Tensor, Float32Array | Uint32Array][] };
  cpu: CpuNet;
}

function makeCases(seed: number): NetCase[] {
  const rand = rng(seed);
  const f32 = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  const classes = (n: number, C: number) => Uint32Array.from({ length: n }, () => Math.floor(rand() * C));

  // residual: h = relu(x·w1 + b1), u = tanh(h·w2 + b2), r = h + u, logits = r·w3 + b3; xent.
  // h feeds both the add and the second dense: its gradient is the sum of two.
  const R = { B: 3, D: 5, H: 6, K: 4 };
  const rx = f32(R.B * R.D), rl = classes(R.B, R.K);
  const residual: NetCase = {
    title: 'a residual block (add) with softmax cross-entropy, batch 3',
    shapes: { w1: [R.D, R.H], b1: [R.H], w2: [R.H, R.H], b2: [R.H], w3: [R.H, R.K], b3: [R.K] },
    build(g, P) {
      const x = g.input('x', [R.B, R.D]);
      const labels = g.input('labels', [R.B], 'u32');
      const h = g.dense(x, P('w1'), P('b1'), 'relu', 'fc1');
      const u = g.dense(h, P('w2'), P('b2'), 'tanh', 'fc2');
      const r = g.add(h, u, 'residual');
      const { loss } = g.softmaxCrossEntropy(g.dense(r, P('w3'), P('b3'), 'none', 'out'), labels);
      return { loss, feeds: [[x, rx], [labels, rl]] };
    },
    cpu: {
      loss(W) {
        const h = dense(rx, W.w1, W.b1, R.B, R.D, R.H, 'relu');
        const u = dense(h, W.w2, W.b2, R.B, R.H, R.H, 'tanh');
        return softmaxXentRef(dense(addArrays(h, u), W.w3, W.b3, R.B, R.H, R.K), rl, R.B, R.K).mean;
      },
      grads(W) {
        const h = dense(rx, W.w1, W.b1, R.B, R.D, R.H, 'relu');
        const u = dense(h, W.w2, W.b2, R.B, R.H, R.H, 'tanh');
        const r = addArrays(h, u);
        const logits = dense(r, W.w3, W.b3, R.B, R.H, R.K);
        const g3 = denseBack(r, W.w3, logits, softmaxXentRef(logits, rl, R.B, R.K).grad, R.B, R.H, R.K);
        const g2 = denseBack(h, W.w2, u, g3.dx, R.B, R.H, R.H, 'tanh');
        const g1 = denseBack(rx, W.w1, h, addArrays(g3.dx, g2.dx), R.B, R.D, R.H, 'relu');
        return { w1: g1.dw, b1: g1.db, w2: g2.dw, b2: g2.db, w3: g3.dw, b3: g3.db };
      },
    },
  };

  // concat: a = sigmoid(x·wa + ba) [B, 3], c = tanh(x·wc) [B, 4], logits = [a, c]·wo + bo; xent.
  const C = { B: 4, D: 3, A: 3, Cc: 4, K: 5 };
  const cx = f32(C.B * C.D), cl = classes(C.B, C.K);
  const cat = (a: Float64Array, c: Float64Array) => {
    const y = new Float64Array(C.B * (C.A + C.Cc));
    for (let r = 0; r < C.B; r++) {
      y.set(a.subarray(r * C.A, (r + 1) * C.A), r * (C.A + C.Cc));
      y.set(c.subarray(r * C.Cc, (r + 1) * C.Cc), r * (C.A + C.Cc) + C.A);
    }
    return y;
  };
  const concatCase: NetCase = {
    title: 'two branches joined by concat (last axis), batch 4',
    shapes: { wa: [C.D, C.A], ba: [C.A], wc: [C.D, C.Cc], wo: [C.A + C.Cc, C.K], bo: [C.K] },
    build(g, P) {
      const x = g.input('x', [C.B, C.D]);
      const labels = g.input('labels', [C.B], 'u32');
      const a = g.dense(x, P('wa'), P('ba'), 'sigmoid', 'branchA');
      const c = g.dense(x, P('wc'), undefined, 'tanh', 'branchC');
      const joined = g.concat([a, c], 'join');
      expect(joined.shape).to.deep.equal([C.B, C.A + C.Cc]);
      const { loss } = g.softmaxCrossEntropy(g.dense(joined, P('wo'), P('bo'), 'none', 'out'), labels);
      return { loss, feeds: [[x, cx], [labels, cl]] };
    },
    cpu: {
      loss(W) {
        const a = dense(cx, W.wa, W.ba, C.B, C.D, C.A, 'sigmoid');
        const c = dense(cx, W.wc, undefined, C.B, C.D, C.Cc, 'tanh');
        return softmaxXentRef(dense(cat(a, c), W.wo, W.bo, C.B, C.A + C.Cc, C.K), cl, C.B, C.K).mean;
      },
      grads(W) {
        const a = dense(cx, W.wa, W.ba, C.B, C.D, C.A, 'sigmoid');
        const c = dense(cx, W.wc, undefined, C.B, C.D, C.Cc, 'tanh');
        const j = cat(a, c);
        const logits = dense(j, W.wo, W.bo, C.B, C.A + C.Cc, C.K);
        const go = denseBack(j, W.wo, logits, softmaxXentRef(logits, cl, C.B, C.K).grad, C.B, C.A + C.Cc, C.K);
        const da = new Float64Array(C.B * C.A), dc = new Float64Array(C.B * C.Cc);
        for (let r = 0; r < C.B; r++) {
          da.set(go.dx.subarray(r * (C.A + C.Cc), r * (C.A + C.Cc) + C.A), r * C.A);
          dc.set(go.dx.subarray(r * (C.A + C.Cc) + C.A, (r + 1) * (C.A + C.Cc)), r * C.Cc);
        }
        const ga = denseBack(cx, W.wa, a, da, C.B, C.D, C.A, 'sigmoid');
        const gc = denseBack(cx, W.wc, c, dc, C.B, C.D, C.Cc, 'tanh');
        return { wa: ga.dw, ba: ga.db, wc: gc.dw, wo: go.dw, bo: go.db };
      },
    },
  };

  // global average pool: y = relu(conv3x3(x) + b) [2, 5, 3, 4], p = mean over 5x3, logits = p·wo; xent.
  const G = { B: 2, H: 5, W: 3, Ci: 2, Co: 4, K: 3 };
  const conv: ConvShape = { batch: G.B, inH: G.H, inW: G.W, inC: G.Ci, kH: 3, kW: 3, outC: G.Co, strideH: 1, strideW: 1, padding: 'SAME' };
  const gx = f32(G.B * G.H * G.W * G.Ci), gl = classes(G.B, G.K);
  const gap = (y: ArrayLike<number>) => {
    const p = new Float64Array(G.B * G.Co);
    for (let n = 0; n < G.B; n++) for (let i = 0; i < G.H * G.W; i++) for (let c = 0; c < G.Co; c++) p[n * G.Co + c] += y[(n * G.H * G.W + i) * G.Co + c] / (G.H * G.W);
    return p;
  };
  const gapCase: NetCase = {
    title: 'conv2d then globalAvgPool then dense, batch 2',
    shapes: { f: [3, 3, G.Ci, G.Co], fb: [G.Co], wo: [G.Co, G.K] },
    build(g, P) {
      const x = g.input('x', [G.B, G.H, G.W, G.Ci]);
      const labels = g.input('labels', [G.B], 'u32');
      const y = g.conv2d(x, P('f'), P('fb'), { padding: 'SAME', activation: 'relu' }, 'conv');
      const p = g.globalAvgPool(y, 'gap');
      expect(p.shape).to.deep.equal([G.B, G.Co]);
      const { loss } = g.softmaxCrossEntropy(g.dense(p, P('wo'), undefined, 'none', 'out'), labels);
      return { loss, feeds: [[x, gx], [labels, gl]] };
    },
    cpu: {
      loss(W) {
        const p = gap(conv2dRef(conv, gx, W.f, W.fb, 'relu'));
        return softmaxXentRef(dense(p, W.wo, undefined, G.B, G.Co, G.K), gl, G.B, G.K).mean;
      },
      grads(W) {
        const y = conv2dRef(conv, gx, W.f, W.fb, 'relu');
        const p = gap(y);
        const logits = dense(p, W.wo, undefined, G.B, G.Co, G.K);
        const go = denseBack(p, W.wo, logits, softmaxXentRef(logits, gl, G.B, G.K).grad, G.B, G.Co, G.K);
        const dz = new Float64Array(y.length);
        for (let n = 0; n < G.B; n++) {
          for (let i = 0; i < G.H * G.W; i++) {
            for (let c = 0; c < G.Co; c++) {
              const k = (n * G.H * G.W + i) * G.Co + c;
              dz[k] = y[k] > 0 ? go.dx[n * G.Co + c] / (G.H * G.W) : 0;
            }
          }
        }
        const gc = conv2dBackwardRef(conv, gx, W.f, dz);
        return { f: gc.dFilter, fb: gc.dBias, wo: go.dw };
      },
    },
  };

  // MSE regression through a softmax: s = softmax(tanh(x·w1 + b1)·w2 + b2) [4, 5], loss = mean((s − t)²).
  const M = { B: 4, I: 3, H: 6, D: 5 };
  const mx = f32(M.B * M.I);
  const target = softmaxRows(f32(M.B * M.D, 2), M.B, M.D); // rows of probabilities
  const mt = Float32Array.from(target);
  const mseCase: NetCase = {
    title: 'an MSE regression onto distributions through softmax, batch 4',
    shapes: { w1: [M.I, M.H], b1: [M.H], w2: [M.H, M.D], b2: [M.D] },
    build(g, P) {
      const x = g.input('x', [M.B, M.I]);
      const t = g.input('target', [M.B, M.D]);
      const h = g.dense(x, P('w1'), P('b1'), 'tanh', 'hidden');
      const s = g.activation(g.dense(h, P('w2'), P('b2'), 'none', 'out'), 'softmax', 'probs');
      const { loss, lossSum } = g.meanSquaredError(s, t, 'mse');
      expect(loss.shape).to.deep.equal([1]);
      expect(lossSum.role).to.equal('state');
      return { loss, feeds: [[x, mx], [t, mt]] };
    },
    cpu: {
      loss(W) {
        const s = softmaxRows(dense(dense(mx, W.w1, W.b1, M.B, M.I, M.H, 'tanh'), W.w2, W.b2, M.B, M.H, M.D), M.B, M.D);
        let sum = 0;
        for (let i = 0; i < s.length; i++) sum += (s[i] - mt[i]) ** 2;
        return sum / s.length;
      },
      grads(W) {
        const h = dense(mx, W.w1, W.b1, M.B, M.I, M.H, 'tanh');
        const z = dense(h, W.w2, W.b2, M.B, M.H, M.D);
        const s = softmaxRows(z, M.B, M.D);
        const ds = Float64Array.from(s, (v, i) => (2 * (v - mt[i])) / s.length);
        const dz = softmaxRowsBack(s, ds, M.B, M.D);
        const g2 = denseBack(h, W.w2, z, dz, M.B, M.H, M.D);
        const g1 = denseBack(mx, W.w1, h, g2.dx, M.B, M.I, M.H, 'tanh');
        return { w1: g1.dw, b1: g1.db, w2: g2.dw, b2: g2.db };
      },
    },
  };

  return [residual, concatCase, gapCase, mseCase];
}

// ------------------------------------------------------------------ the GPU side

/**
 * Builds the net with its parameters in their own buffers, compiles it with `gradientsOnly`,
 * poisons every planned buffer, runs one forward+backward and reads the loss and every gradient.
 */
async function gpuGradients(ctx: GpuContext, c: NetCase, W: Record<string, Float32Array>): Promise<{ loss: number; grads: Record<string, Float32Array> }> {
  const g = new Graph(c.title);
  const params = new Map<string, Tensor>();
  const made: GPUBuffer[] = [];
  const P = (name: string) => {
    const buf = ctx.upload(W[name], name);
    made.push(buf);
    const t = g.param(name, c.shapes[name], buf);
    params.set(name, t);
    return t;
  };
  const { loss, feeds } = c.build(g, P);
  const stepCounter = createStepCounter(ctx, 0);
  const compiled = new CompiledGraph(ctx, g, { loss, gradientsOnly: true, stepCounter, keep: [loss] });
  try {
    await compiled.ready();
    for (const slot of compiled.plan.slots) ctx.poison(compiled.bufferOf(slot.tensors[0]));
    for (const [t, data] of feeds) ctx.write(compiled.bufferOf(t), data);
    const enc = ctx.device.createCommandEncoder();
    compiled.encode(enc);
    ctx.device.queue.submit([enc.finish()]);
    await ctx.device.queue.onSubmittedWorkDone();
    ctx.throwIfFailed(c.title);
    const grads: Record<string, Float32Array> = {};
    for (const [name, p] of params) {
      const d = compiled.gradientOf(p);
      grads[name] = await ctx.readF32(compiled.bufferOf(d), d.size, d.offset);
    }
    return { loss: (await ctx.readF32(compiled.bufferOf(loss), 1, loss.offset))[0], grads };
  } finally {
    compiled.destroy();
    for (const b of made) ctx.release(b);
    ctx.release(stepCounter);
  }
}

describe('graph ops from the registry: gradients through autodiff against float64 CPU models', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  const report: string[] = [];
  before(async () => {
    ctx = await testContext();
  });
  after(() => {
    for (const line of report) console.log(`      ${line}`);
  });

  for (const [k, c] of makeCases(20261126).entries()) {
    it(c.title, async () => {
      const rand = rng(97 + k);
      const W: Record<string, Float32Array> = {};
      for (const [name, shape] of Object.entries(c.shapes)) W[name] = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rand() * 2 - 1) * 0.8);
      const W64: Weights = Object.fromEntries(Object.entries(W).map(([n, v]) => [n, Float64Array.from(v)]));
      const ref = c.cpu.grads(W64);
      // the CPU model's analytic gradients against finite differences of its own loss
      for (const name of Object.keys(c.shapes)) {
        const fd = gradCheck((v) => c.cpu.loss({ ...W64, [name]: v }), Float64Array.from(W64[name]), ref[name]);
        expect(fd, `CPU model: d${name} vs finite differences`).to.be.lessThan(1e-6);
      }
      const gpu = await gpuGradients(ctx, c, W);
      const cpuLoss = c.cpu.loss(W64);
      expect(Math.abs(gpu.loss - cpuLoss) / Math.abs(cpuLoss), `loss ${gpu.loss} vs float64 ${cpuLoss}`).to.be.lessThan(1e-5);
      expect(Object.keys(gpu.grads).sort()).to.deep.equal(Object.keys(ref).sort());
      let worst = 0;
      for (const name of Object.keys(ref)) {
        expect(ref[name].some((v) => v !== 0), `reference gradient of ${name} is zero (the check would be vacuous)`).to.equal(true);
        expectClose(gpu.grads[name], ref[name], 1e-4, `d${name}`);
        worst = Math.max(worst, relError(gpu.grads[name], ref[name]));
      }
      report.push(`${c.title}: loss ${cpuLoss.toFixed(6)}, worst gradient rel err ${worst.toExponential(2)}`);
    });
  }
});

describe('autodiff: which losses it accepts', () => {
  const fake = {} as GPUBuffer;

  function expectGraphError(fn: () => unknown, ...parts: string[]): void {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err, 'an error is thrown').to.be.instanceOf(GraphError);
    for (const p of parts) expect((err as Error).message, `the message names ${p}`).to.contain(p);
  }

  function net() {
    const g = new Graph();
    const x = g.input('x', [3, 4]);
    const w = g.param('w', [4, 2], fake);
    const pred = g.dense(x, w, undefined, 'none', 'fc');
    return { g, x, w, pred };
  }

  it('a mean squared error loss: the gradient starts at d(pred) from its forward', () => {
    const { g, w, pred } = net();
    const { loss } = g.meanSquaredError(pred, g.input('t', [3, 2]), 'mse');
    const grads = buildBackward(g, loss);
    expect([...grads.keys()]).to.deep.equal([w]);
    const back = g.nodes.filter((n) => n.phase === 'backward');
    expect(back.map((n) => n.op)).to.deep.equal(['dense']);
    expect(back[0].dOutputs![0]!.name, 'the dense backward reads the loss\'s d(pred)').to.equal('mse/dpred');
  });

  it('refuses a loss that is not a scalar', () => {
    const { g, pred } = net();
    expectGraphError(() => buildBackward(g, pred), 'autodiff', 'scalar [1]', 'fc/y [3, 2]', 'xent', 'mse');
  });

  it('refuses a scalar that no loss op declares as its loss', () => {
    const { g, x, pred } = net();
    const w2 = g.param('w2', [6, 1], fake);
    const scalar = g.reshape(g.dense(g.reshape(pred, [1, 6], 'row'), w2, undefined, 'none', 'fc2'), [1], 'scalar');
    expectGraphError(() => buildBackward(g, scalar), 'autodiff', 'scalar/y [1]', 'is not a loss', 'reshape', 'xent, mse');
    // the running loss sum is a [1] output of a loss op, but not its loss
    const labels = g.input('labels', [3], 'u32');
    const { lossSum } = g.softmaxCrossEntropy(g.dense(x, g.param('w3', [4, 5], fake), undefined, 'none', 'head'), labels);
    expectGraphError(() => buildBackward(g, lossSum), 'autodiff', 'xent/loss_sum [1]', 'not its loss', 'xent/loss [1]');
  });
});

describe('graph: shape errors of the registry ops name the op, its inputs and their shapes', () => {
  function expectGraphError(fn: () => unknown, ...parts: string[]): void {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err, 'an error is thrown').to.be.instanceOf(GraphError);
    for (const p of parts) expect((err as Error).message, `the message names ${p}`).to.contain(p);
  }

  it('add, concat, globalAvgPool, meanSquaredError and softmax', () => {
    const g = new Graph();
    const a = g.input('a', [2, 3]);
    const b = g.input('b', [3, 2]);
    expectGraphError(() => g.add(a, b, 'res'), 'res (add)', 'a [2, 3]', 'b [3, 2]', 'same shape');
    const c = g.input('c', [3, 5]);
    expectGraphError(() => g.concat([a, c], 'join'), 'join (concat)', 'a [2, 3]', 'c [3, 5]', 'all dimensions but the last');
    expect(g.concat([a, g.input('d', [2, 4])]).shape).to.deep.equal([2, 7]);
    expectGraphError(() => g.globalAvgPool(a, 'gap'), 'gap (global average pool)', 'a [2, 3]', '4-D');
    expectGraphError(() => g.meanSquaredError(a, b, 'mse'), 'mse (mean squared error)', 'a [2, 3]', 'b [3, 2]', 'target must be f32 [2, 3]');
    expectGraphError(() => g.activation(a, 'softplus' as 'relu', 'act'), 'act (activation)', 'unknown activation "softplus"');
    expect(g.activation(a, 'softmax').shape).to.deep.equal([2, 3]);
  });
});
