// Issue 8, item 5: a seeded fuzz over flag combinations and graph shapes. Every case either succeeds
// (and then its result is checked: parsed flags obey the documented ranges, built tensors have the
// shapes the op's formula gives, a compiled step gives a finite loss) or fails with one of the
// documented errors (ArgsError, DataError, GraphError, GpuError, CheckpointError) whose message is
// one line. Anything else (a TypeError, a plain Error, a RangeError, a hang) fails the test and
// prints the seed and the case so that it can be re-run.
import { expect } from 'chai';
import { rng } from './support/cpu.js';
import { testContext } from './support/gpu.js';
import { ArgsError, NETS, NET_DEFAULTS, parseArgs, type TrainArgs } from '../src/cli/args.js';
import { CheckpointError } from '../src/cli/checkpoint.js';
import { DataError } from '../src/data/mnist.js';
import { GpuError, type GpuContext } from '../src/gpu/context.js';
import { Graph, GraphError } from '../src/graph/graph.js';
import type { Tensor } from '../src/graph/tensor.js';
import { buildBackward } from '../src/graph/autodiff.js';
import { planBuffers } from '../src/graph/planner.js';
import { Trainer, type TrainerOptions } from '../src/nn/trainer.js';

const DOCUMENTED = [ArgsError, DataError, GraphError, GpuError, CheckpointError];

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

/** Runs a case: returns 'ok' or the documented error; rethrows anything else with the case attached. */
function classify(what: string, fn: () => void): 'ok' | Error {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return documented(what, e);
  }
}

function documented(what: string, e: unknown): Error {
  if (!DOCUMENTED.some((cls) => e instanceof cls)) {
    const err = e as Error;
    throw new Error(`${what}: threw ${err?.name ?? typeof e} "${err?.message ?? String(e)}", not one of the documented errors\n${err?.stack ?? ''}`);
  }
  const msg = (e as Error).message;
  expect(msg, `${what}: one-line message`).not.to.include('\n');
  expect(msg.length, `${what}: a message`).to.be.greaterThan(10);
  return e as Error;
}

// ------------------------------------------------------------------ flags

const INT_FLAGS = ['epochs', 'steps', 'batch', 'hidden', 'layers', 'seed', 'val'];
const FLOAT_FLAGS = ['lr', 'keep-prob'];
const STRING_FLAGS = ['data', 'save', 'load', 'trace', 'plots'];
const BOOL_FLAGS = ['eval', 'profile', 'json', 'help'];
const CHOICES: Record<string, readonly string[]> = { net: NETS, optimizer: ['sgd', 'adam'], cell: ['lstm', 'gru', 'rnn'] };
const UNKNOWN = ['bogus', 'step', 'Net', 'lr0', 'keep_prob', 'hiden', ''];

const INT_VALUES = ['0', '1', '2', '7', '100', '5000', '-1', '-30', '+4', '1e3', '2.5', '99999999999999999999', '4294967296', 'ten', '', '0x10', ' 3'];
const FLOAT_VALUES = ['0', '1', '0.5', '1e-3', '.5', '5.', '-0.1', '-1e-9', '1e400', '2', 'NaN', 'Infinity', '1,5', 'abc', '', '1e-45', '0.999999'];
const STRING_VALUES = ['/tmp/x', 'a b', '', 'model.safetensors', '-', '--net'];

function randomArgv(r: Rand): string[] {
  const argv: string[] = [];
  if (r() < 0.85) argv.push('--net', pick(r, r() < 0.95 ? NETS : ['MLP', 'lstm', '']));
  const n = int(r, 0, 6);
  for (let i = 0; i < n; i++) {
    const u = r();
    let name: string;
    let values: readonly string[];
    if (u < 0.35) { name = pick(r, INT_FLAGS); values = INT_VALUES; }
    else if (u < 0.55) { name = pick(r, FLOAT_FLAGS); values = FLOAT_VALUES; }
    else if (u < 0.7) { name = pick(r, Object.keys(CHOICES)); values = [...CHOICES[name], 'LSTM', 'sgd2', '']; }
    else if (u < 0.8) { name = pick(r, STRING_FLAGS); values = STRING_VALUES; }
    else if (u < 0.9) { name = pick(r, BOOL_FLAGS); values = []; }
    else { name = pick(r, UNKNOWN); values = INT_VALUES; }
    const form = r();
    if (values.length === 0 || form < 0.05) argv.push(`--${name}`);
    else if (form < 0.25) argv.push(`--${name}=${pick(r, values)}`);
    else if (form < 0.95) argv.push(`--${name}`, pick(r, values));
    else argv.push(pick(r, ['-h', '--', 'mlp', '-x']));
  }
  return argv;
}

/** What a successful parse must satisfy (the documented ranges, the per-net defaults, knob applicability). */
function checkParsed(a: TrainArgs, argv: string[]): void {
  const ctx = JSON.stringify(argv);
  if (a.help) return; // only the flags were checked; the CLI prints help and exits
  expect(NETS, ctx).to.include(a.net);
  const d = NET_DEFAULTS[a.net];
  expect((a.epochs === undefined) !== (a.steps === undefined), `${ctx}: exactly one of epochs/steps`).to.equal(true);
  for (const v of [a.epochs, a.steps, a.batch]) if (v !== undefined) expect(Number.isSafeInteger(v) && v >= 1, `${ctx}: ${v} ≥ 1`).to.equal(true);
  expect(a.lr > 0 && Number.isFinite(a.lr), `${ctx}: lr ${a.lr}`).to.equal(true);
  expect(Number.isSafeInteger(a.val) && a.val >= 0, `${ctx}: val`).to.equal(true);
  expect(Number.isSafeInteger(a.seed) && a.seed >= 0 && a.seed <= 0xffffffff, `${ctx}: seed`).to.equal(true);
  expect(['sgd', 'adam'], ctx).to.include(a.optimizer);
  for (const k of ['hidden', 'layers', 'cell', 'keepProb'] as const) {
    expect(a[k] === undefined, `${ctx}: ${k} only for nets that have it`).to.equal(d[k] === undefined);
  }
  if (a.hidden !== undefined) expect(Number.isSafeInteger(a.hidden) && a.hidden >= 1, ctx).to.equal(true);
  if (a.layers !== undefined) expect(Number.isSafeInteger(a.layers) && a.layers >= 1, ctx).to.equal(true);
  if (a.keepProb !== undefined) expect(a.keepProb > 0 && a.keepProb <= 1, `${ctx}: keepProb ${a.keepProb}`).to.equal(true);
  if (a.eval) expect(a.load, `${ctx}: --eval needs --load`).to.be.a('string');
  for (const k of ['data', 'save', 'load', 'trace', 'plots'] as const) if (a[k] !== undefined) expect(a[k]!.length, ctx).to.be.greaterThan(0);
}

// ------------------------------------------------------------------ graphs

const fake = {} as GPUBuffer;

/** A dim: mostly small, sometimes 1, rarely larger. */
const dim = (r: Rand): number => (r() < 0.15 ? 1 : r() < 0.9 ? int(r, 2, 12) : int(r, 13, 64));
/** Usually `v`, sometimes off by a little (a shape mistake the graph must name). */
const maybeWrong = (r: Rand, v: number, p = 0.12): number => (r() < p ? Math.max(1, v + pick(r, [-1, 1, 2, 3])) : v);

interface GraphCase {
  g: Graph;
  loss?: Tensor;
}

/** Builds a random graph of one family; each op's output shape is checked against its formula. */
function randomGraph(r: Rand, n: number): GraphCase {
  const g = new Graph(`fuzz ${n}`);
  const family = pick(r, ['dense', 'conv', 'recurrent', 'mixed'] as const);
  const B = dim(r);
  let p = 0;
  const P = (shape: number[]) => g.param(`p${p++}`, shape, fake);
  let h: Tensor;
  if (family === 'dense' || family === 'mixed') {
    let F = dim(r);
    h = g.input('x', [B, F]);
    for (let l = int(r, 1, 3); l > 0; l--) {
      const out = dim(r);
      const w = P([maybeWrong(r, F), out]);
      const b = r() < 0.8 ? P([maybeWrong(r, out)]) : undefined;
      h = g.dense(h, w, b, pick(r, ['none', 'relu', 'sigmoid', 'tanh'] as const));
      expect(h.shape).to.deep.equal([B, out]);
      if (r() < 0.3) h = g.dropout(h, pick(r, [0.5, 0.9, 1, 0.01]), int(r, 0, 99));
      F = out;
    }
    if (family === 'mixed' && r() < 0.7) {
      // view as an image and convolve it
      const H = int(r, 1, 4);
      if (r() < 0.15 || F % H !== 0) {
        h = g.reshape(h, [B, H, maybeWrong(r, Math.max(1, Math.floor(F / H)), 0.5), 1]);
      } else {
        h = g.reshape(h, [B, H, F / H, 1]);
      }
      expect(h.size).to.equal(B * F);
      h = g.conv2d(h, P([int(r, 1, 3), int(r, 1, 3), maybeWrong(r, 1), dim(r)]), undefined, { padding: pick(r, ['SAME', 'VALID'] as const) });
      h = g.reshape(h, [B, h.size / B]);
    }
  } else if (family === 'conv') {
    const H = dim(r), W = dim(r);
    let C = int(r, 1, 4);
    h = g.input('x', [B, H, W, C]);
    for (let l = int(r, 1, 3); l > 0; l--) {
      const kh = int(r, 1, 5), kw = int(r, 1, 5), s = int(r, 1, 3), O = int(r, 1, 8);
      const padding = pick(r, ['SAME', 'VALID'] as const);
      const [ih, iw] = [h.shape[1], h.shape[2]];
      h = g.conv2d(h, P([kh, kw, maybeWrong(r, C), O]), r() < 0.7 ? P([maybeWrong(r, O)]) : undefined, { stride: s, padding, activation: pick(r, ['none', 'relu'] as const) });
      const out = (n: number, k: number) => (padding === 'SAME' ? Math.ceil(n / s) : Math.ceil((n - k + 1) / s));
      expect(h.shape).to.deep.equal([B, out(ih, kh), out(iw, kw), O]);
      C = O;
      if (r() < 0.5) {
        const size = int(r, 1, 3), stride = int(r, 1, 3);
        const pp = pick(r, ['SAME', 'VALID'] as const);
        const [ph, pw] = [h.shape[1], h.shape[2]];
        h = r() < 0.5 ? g.maxPool(h, { size, stride, padding: pp }) : g.avgPool(h, { size, stride, padding: pp });
        const po = (n: number) => (pp === 'SAME' ? Math.ceil(n / stride) : Math.ceil((n - size + 1) / stride));
        expect(h.shape).to.deep.equal([B, po(ph), po(pw), C]);
      }
    }
    h = g.reshape(h, [B, maybeWrong(r, h.size / B, 0.05)]);
  } else {
    const T = dim(r), I = dim(r);
    const cell = pick(r, ['lstm', 'gru', 'rnn'] as const);
    const G = { lstm: 4, gru: 3, rnn: 1 }[cell];
    const layers = int(r, 1, 3);
    const hidden = Array.from({ length: layers }, () => dim(r));
    const x = g.input('x', [T, B, I]);
    let inSize = I;
    const weights = hidden.map((Hl) => {
      const w = P([maybeWrong(r, inSize + Hl, 0.05), maybeWrong(r, G * Hl, 0.05)]);
      const b = P([maybeWrong(r, G * Hl, 0.05)]);
      inSize = Hl;
      return { w, b };
    });
    if (r() < 0.05) weights.pop();
    const output = pick(r, ['last', 'all'] as const);
    h = g.recurrent(x, weights, { cell, hidden, output, keepProb: pick(r, [1, 0.8]), seed: 1 });
    expect(h.shape).to.deep.equal(output === 'last' ? [B, hidden[layers - 1]] : [T, B, hidden[layers - 1]]);
    if (output === 'all') h = g.reshape(h, [T * B, hidden[layers - 1]]);
  }
  const classes = int(r, 2, 10);
  const logits = g.dense(h, P([h.shape[h.shape.length - 1], classes]), P([classes]));
  const labels = g.input('labels', [maybeWrong(r, logits.shape[0], 0.05)], 'u32');
  const { loss } = g.softmaxCrossEntropy(logits, labels);
  g.accuracy(logits, labels);
  return { g, loss };
}

// ------------------------------------------------------------------ tests

describe('fuzz (issue 8): every case succeeds or fails with a documented one-line error', function () {
  this.timeout(60_000);

  it('parseArgs: 400 random command lines', () => {
    const r = rng(20240808);
    const tally = { ok: 0, error: 0 };
    for (let n = 0; n < 400; n++) {
      const argv = randomArgv(r);
      let parsed: TrainArgs | undefined;
      const out = classify(`case ${n} ${JSON.stringify(argv)}`, () => { parsed = parseArgs(argv); });
      if (out === 'ok') {
        checkParsed(parsed!, argv);
        tally.ok++;
      } else {
        expect(out, JSON.stringify(argv)).to.be.instanceOf(ArgsError);
        expect(out.message, JSON.stringify(argv)).to.match(/--|argument/);
        tally.error++;
      }
    }
    // Both outcomes are exercised (a fuzz that only ever errors would check nothing about success).
    expect(tally.ok, JSON.stringify(tally)).to.be.greaterThan(60);
    expect(tally.error, JSON.stringify(tally)).to.be.greaterThan(60);
  });

  it('Graph building, autodiff and planning: 400 random graphs', () => {
    const r = rng(7781);
    const tally = { ok: 0, error: 0 };
    for (let n = 0; n < 400; n++) {
      const out = classify(`graph case ${n}`, () => {
        const { g, loss } = randomGraph(r, n);
        const grads = buildBackward(g, loss!);
        for (const [param, grad] of grads) expect(grad.shape, `${param}`).to.deep.equal(param.shape);
        const plan = planBuffers(g.nodes, []);
        expect(plan.plannedBytes).to.be.at.most(plan.naiveBytes);
      });
      if (out === 'ok') tally.ok++;
      else {
        expect(out, `graph case ${n}: ${out.message}`).to.be.instanceOf(GraphError);
        expect(out.message, 'names the op').to.match(/\((dense|conv2d|maxpool|avgpool|reshape|dropout|recurrent|softmax cross-entropy|accuracy)\)/);
        tally.error++;
      }
    }
    expect(tally.ok, JSON.stringify(tally)).to.be.greaterThan(100);
    expect(tally.error, JSON.stringify(tally)).to.be.greaterThan(40);
  });

  it('Graph: bad dims given to an op (0, negative, fractional, NaN) are a GraphError, not a crash', () => {
    const r = rng(99);
    const bad = [0, -1, 1.5, NaN, -0];
    for (let n = 0; n < 20; n++) {
      const g = new Graph('bad dims');
      const shape = [dim(r), dim(r)];
      shape[int(r, 0, 1)] = pick(r, bad);
      const out = classify(`bad dims ${JSON.stringify(shape)}`, () => {
        const x = g.input('x', shape);
        g.dense(x, g.param('w', [shape[1], 3], fake), undefined);
      });
      expect(out, `shape ${shape}`).to.be.instanceOf(GraphError);
    }
  });

  describe('on the GPU: random tiny nets compile and run one step, or fail clearly', () => {
    let ctx: GpuContext;
    before(async () => { ctx = await testContext(); });

    it('12 random Trainer configurations', async function () {
      const r = rng(4242);
      const images = Float32Array.from({ length: 16 * 784 }, (_, i) => ((i * 37) % 256) / 255);
      const labels = Uint8Array.from({ length: 16 }, (_, i) => i % 10);
      const tally = { ok: 0, error: 0 };
      ctx.dummyBuffer(); // made once per context by the first compile: not a leak
      const before = ctx.liveBuffers;
      for (let n = 0; n < 12; n++) {
        const net = NETS[n % NETS.length];
        const opts: TrainerOptions = {
          net, seed: int(r, 0, 1000), batch: r() < 0.1 ? pick(r, [0, -2, 1.5]) : int(r, 1, 6),
          optimizer: { kind: pick(r, ['sgd', 'adam'] as const), lr: r() < 0.1 ? pick(r, [0, -1, Infinity]) : pick(r, [1e-3, 0.05]) },
        };
        if (net !== 'softmax') opts.hidden = r() < 0.1 ? pick(r, [0, -4, 2.5]) : int(r, 1, net === 'cnn' ? 8 : 12);
        if (net === 'mlp' || net === 'rnn') opts.layers = r() < 0.1 ? 0 : int(r, 1, 2);
        if (net === 'rnn') opts.cell = pick(r, ['lstm', 'gru', 'rnn'] as const);
        if (net !== 'softmax' && net !== 'bp') opts.keepProb = r() < 0.1 ? pick(r, [0, 1.5]) : pick(r, [1, 0.5, 0.9]);
        // Every third case gets one bad knob (and then must fail with a documented error).
        const bad = n % 3 === 2 ? BAD_KNOBS[net][Math.floor(n / 3) % BAD_KNOBS[net].length] : undefined;
        if (bad) Object.assign(opts, typeof bad === 'function' ? bad(opts) : bad);
        const what = `trainer case ${n} ${JSON.stringify(opts)}`;
        let trainer: Trainer | undefined;
        try {
          trainer = await Trainer.create(ctx, opts);
          const idx = Uint32Array.from({ length: opts.batch }, (_, i) => i % 16);
          trainer.writeBatch({ count: 16, images, labels }, idx);
          const m = await trainer.step(true);
          expect(bad, `${what}: a bad knob was accepted`).to.equal(undefined);
          expect(Number.isFinite(m.loss) && m.loss > 0, `${what}: loss ${m.loss}`).to.equal(true);
          expect(m.accuracy).to.be.within(0, 1);
          tally.ok++;
        } catch (e) {
          if (e instanceof chaiAssertion) throw e;
          documented(what, e);
          tally.error++;
        } finally {
          trainer?.destroy();
        }
        expect(ctx.liveBuffers, `${what}: buffers released`).to.equal(before);
      }
      expect(tally.ok, JSON.stringify(tally)).to.be.greaterThan(5);
      expect(tally.error, JSON.stringify(tally)).to.be.at.least(4);
    });
  });
});

/** One bad knob per net (cases 2, 5, 8, 11 are mlp, softmax, cnn, bp). */
const BAD_KNOBS: Record<(typeof NETS)[number], (Partial<TrainerOptions> | ((o: TrainerOptions) => Partial<TrainerOptions>))[]> = {
  mlp: [{ layers: 0 }, { hidden: 2.5 }],
  softmax: [{ batch: 1.5 }, { batch: 0 }],
  cnn: [{ hidden: 0 }, { keepProb: 0 }],
  bp: [(o) => ({ optimizer: { kind: o.optimizer.kind, lr: -1 } }), { hidden: -3 }],
  rnn: [{ layers: 0 }, { keepProb: 1.5 }],
};

// chai's AssertionError, so that a failed check inside a case is not mistaken for the case's error.
const chaiAssertion = (() => {
  try {
    expect(1).to.equal(2);
  } catch (e) {
    return (e as Error).constructor as new (...a: unknown[]) => Error;
  }
  throw new Error('unreachable');
})();
