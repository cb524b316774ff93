import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testContext } from './support/gpu.js';
import { expectClose, matmulRef, randomArray, rng } from './support/cpu.js';
import { hasSubgroupKernel, matmul } from '../src/kernels/matmul.js';
import { conv2dBackward, conv2dForward, type Conv2dSpec } from '../src/kernels/conv2d.js';
import { conv2dBackwardRef, conv2dRef, convOut } from './ref/conv2d.js';
import { matmulVariant } from '../src/kernels/matmul-variants.js';
import { MatmulTuner } from '../src/kernels/matmul-tuner.js';
import { MemoryTuningStore, localStorageTuningStore, TUNING_STORAGE_KEY, type TunedProduct, type TuningRecord } from '../src/gpu/tuning-store.js';
import { defaultTuningFile, fileTuningStore } from '../src/gpu/tuning-store-node.js';
import { createNodeContext } from '../src/gpu/node.js';
import { runDispatches, type Dispatch } from '../src/gpu/dispatch.js';
import { Trainer } from '../src/nn/trainer.js';
import type { GpuContext } from '../src/gpu/context.js';
import { parseArgs } from '../src/cli/args.js';

// Few variants keep the compiles (seconds each on lavapipe) short; the list's order puts the default first.
const FEW = ['subgroup-wg16-tm16', 'subgroup-wg32-tm16', 'portable-wg32'];
// The trainers' products (about 5) each compile one more pipeline.
const ONE = ['subgroup-wg16-tm16', 'portable-wg32'];
const quiet = () => { /* warnings are counted where a test expects them */ };

/** The tile (workgroup size, rows, group) of every matmul dispatch of a trainer's step, in order. */
function matmulTiles(t: Trainer): string[] {
  return t.graph.ops.flatMap((o) => o.dispatches).filter((d: Dispatch) => d.kernel.file.startsWith('matmul'))
    .map((d) => `${d.label}: ${d.kernel.file} ${JSON.stringify(d.kernel.constants)}`);
}

const TRAINER = { net: 'mlp' as const, hidden: 20, batch: 12, evalBatch: 20, seed: 5, optimizer: { kind: 'sgd' as const, lr: 0.1 } };

describe('matmul tuning', function () {
  this.timeout(600_000);
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
  });
  /** What the trainer test learned: the next test forces its choices off the defaults. */
  let learned: Record<string, TunedProduct> | undefined;

  it('times each product\'s variants once, switches it to the fastest, and the product stays right', async () => {
    const store = new MemoryTuningStore();
    const tuner = new MatmulTuner(ctx, { store, repetitions: 3, variants: FEW, warn: quiet });
    const [M, N, K] = [37, 20, 28];
    const rand = rng(41);
    const A = randomArray(M * K, rand), B = randomArray(K * N, rand);
    const a = ctx.upload(A), b = ctx.upload(B), c = ctx.storage(M * N * 4);
    ctx.poison(c);
    const [d1, d2] = tuner.scope(() => [matmul(ctx, { M, N, K }, { a, b, c }), matmul(ctx, { M, N, K }, { a, b, c })]);
    expect(tuner.pendingProducts, 'two dispatches of one product: one product to time').to.equal(1);
    const live = ctx.liveBuffers;
    await tuner.tunePending();
    expect(ctx.liveBuffers, 'the scratch buffers of the timing are freed').to.equal(live);
    const [choice] = Object.values(tuner.choices);
    const subgroups = hasSubgroupKernel(ctx);
    expect(choice.candidates).to.deep.equal(subgroups ? ['subgroup-default', 'subgroup-wg16-tm16', 'subgroup-wg32-tm16'] : ['portable-default', 'portable-wg32']);
    expect(tuner.timings, 'one timing per candidate').to.equal(choice.candidates.length);
    const fastest = Math.min(...Object.values(choice.ms));
    expect(choice.ms[choice.variant]).to.equal(fastest);
    const tile = matmulVariant(choice.variant)!.tile({ M, N, vecATPossible: false, subgroupMinSize: (ctx.device as { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo?.subgroupMinSize ?? 4, maxInvocationsPerWorkgroup: 256 })!;
    for (const d of [d1, d2]) {
      for (const [name, value] of Object.entries(tile.constants)) expect(d.kernel.constants[name], `both dispatches take the chosen tile's ${name}`).to.equal(value);
    }
    expect(store.saves).to.equal(1);
    expect(store.record!.adapters[ctx.tuningKey]).to.deep.equal(tuner.choices);
    await runDispatches(ctx, [d1]);
    expectClose(await ctx.readF32(c, M * N), matmulRef(A, B, M, N, K), 1e-5, `the tuned matmul (${choice.variant})`);
    for (const x of [a, b, c]) ctx.release(x);
  });

  it('tunes a convolution\'s three products (implicit GEMMs) on scratch tensors of their sizes, and they stay right', async () => {
    const s: Conv2dSpec = { batch: 2, inH: 6, inW: 5, inC: 4, kH: 3, kW: 3, outC: 8, padding: 'SAME' };
    const sh = { ...s, strideH: 1, strideW: 1 };
    const { outH, outW } = convOut(sh);
    const rand = rng(43);
    const nx = s.batch * s.inH * s.inW * s.inC, nf = s.kH * s.kW * s.inC * s.outC, ny = s.batch * outH * outW * s.outC;
    const x = randomArray(nx, rand), f = randomArray(nf, rand), dy = randomArray(ny, rand);
    const bx = ctx.upload(x), bf = ctx.upload(f), bdy = ctx.upload(dy);
    const y = ctx.storage(ny * 4), dx = ctx.storage(nx * 4), dF = ctx.storage(nf * 4);
    for (const b of [y, dx, dF]) ctx.poison(b);
    const tuner = new MatmulTuner(ctx, { repetitions: 1, variants: ['subgroup-wg16-tm16'], warn: quiet });
    const ds = tuner.scope(() => [
      ...conv2dForward(ctx, s, { x: bx, filter: bf, y }),
      ...conv2dBackward(ctx, s, { dy: bdy, filter: bf, x: bx, dx, dFilter: dF }),
    ]);
    // Where the adapter has no subgroups, conv2d_gemm.wgsl computes them, untuned.
    const subgroups = hasSubgroupKernel(ctx);
    expect(tuner.pendingProducts, 'forward, dFilter and dx').to.equal(subgroups ? 3 : 0);
    const live = ctx.liveBuffers;
    await tuner.tunePending();
    expect(ctx.liveBuffers, 'the scratch tensors of the timing are freed').to.equal(live);
    expect(Object.keys(tuner.choices).map((k) => /conv-(\w+)/.exec(k)?.[1]).sort()).to.deep.equal(subgroups ? ['dFilter', 'dx', 'forward'] : []);
    await runDispatches(ctx, ds);
    const ref = conv2dBackwardRef(sh, x, f, dy);
    expectClose(await ctx.readF32(y, ny), conv2dRef(sh, x, f), 1e-5, 'the tuned forward');
    expectClose(await ctx.readF32(dx, nx), ref.dx, 1e-4, 'the tuned dx');
    expectClose(await ctx.readF32(dF, nf), ref.dFilter, 1e-4, 'the tuned dFilter');
    for (const b of [bx, bf, bdy, y, dx, dF]) ctx.release(b);
  });

  it('also times with the host clock around onSubmittedWorkDone (adapters without timestamp queries)', async () => {
    let reads = 0;
    const tuner = new MatmulTuner(ctx, { wallClock: true, repetitions: 2, variants: FEW, clock: () => { reads++; return performance.now(); } });
    const x = ctx.storage(4 * 64 * 64);
    tuner.scope(() => matmul(ctx, { M: 64, N: 64, K: 64 }, { a: x, b: ctx.storage(4 * 64 * 64), c: ctx.storage(4 * 64 * 64) }));
    await tuner.tunePending();
    const [choice] = Object.values(tuner.choices);
    expect(tuner.timings).to.equal(choice.candidates.length);
    expect(reads, 'two clock reads per timed run, 2 timed runs per candidate (the warm-up is not timed)').to.equal(tuner.timings * 2 * 2);
  });

  it('compiles a trainer with tuned products; a second context on the same adapter reads the cache and times nothing; the numbers are the untuned ones', async () => {
    const store = new MemoryTuningStore();
    const first = new MatmulTuner(ctx, { store, repetitions: 2, variants: ONE, warn: quiet });
    const tuned = await Trainer.create(ctx, { ...TRAINER, tuning: first });
    const plain = await Trainer.create(ctx, { ...TRAINER, tuning: false });
    let other: GpuContext | undefined;
    try {
      expect(first.tunedProducts, 'products timed at compile time').to.be.greaterThan(2);
      expect(first.timings).to.be.greaterThan(first.tunedProducts);
      expect(store.saves).to.equal(1);
      expect(Object.keys(store.record!.adapters[ctx.tuningKey])).to.have.length(first.tunedProducts);
      learned = first.choices;

      other = await createNodeContext();
      expect(other.adapterDescription, 'the same adapter').to.equal(ctx.adapterDescription);
      const second = new MatmulTuner(other, { store, repetitions: 2, variants: ONE, warn: quiet });
      const again = await Trainer.create(other, { ...TRAINER, tuning: second });
      try {
        expect(second.timings, 'the cache answers every product').to.equal(0);
        expect(second.pendingProducts).to.equal(0);
        expect(store.saves, 'nothing new to save').to.equal(1);
        expect(matmulTiles(again), 'the same tiles as the run that timed them').to.deep.equal(matmulTiles(tuned));
      } finally {
        again.destroy();
      }

      // Two steps on one batch, tuned and untuned: the parameters agree (bit for bit: same sums, same order).
      const rand = rng(3);
      const data = { images: Float32Array.from({ length: 12 * 784 }, () => rand()), labels: Uint8Array.from({ length: 12 }, (_, i) => i % 10), count: 12 };
      const index = Array.from({ length: 12 }, (_, i) => i);
      for (const t of [tuned, plain]) {
        for (let s = 0; s < 2; s++) {
          t.writeBatch(data, index);
          t.step();
        }
      }
      for (const name of tuned.store.names) {
        const [p, q] = [await ctx.readF32(tuned.paramBuffer(name)), await ctx.readF32(plain.paramBuffer(name))];
        expectClose(p, Float64Array.from(q), 1e-5, `parameter ${name} after 2 tuned steps`);
        expect(p.every((x, i) => Object.is(x, q[i])), `${name}: bit for bit`).to.equal(true);
      }

      // The evaluation graph (batch 20: products of their own) is tuned when the first evaluation builds it.
      const timedBefore = first.tunedProducts;
      const test = { images: Float32Array.from({ length: 20 * 784 }, () => rand()), labels: Uint8Array.from({ length: 20 }, (_, i) => i % 10), count: 20 };
      const [e1, e2] = [await tuned.evaluate(test), await plain.evaluate(test)];
      expect(first.tunedProducts, 'products of the evaluation graph timed').to.be.greaterThan(timedBefore);
      expect(e1.loss, 'the tuned evaluation\'s loss, bit for bit').to.equal(e2.loss);
      expect([...e1.predictions]).to.deep.equal([...e2.predictions]);
    } finally {
      tuned.destroy();
      plain.destroy();
      other?.destroy();
    }
  });

  it('turned off, it times nothing and every product takes the default tile, even with a cache that says otherwise', async () => {
    // A cache whose every choice is not the default: tuning on takes them, off ignores them.
    if (!learned) throw new Error('needs the choices of the test before');
    const forced: TuningRecord = { version: 1, adapters: { [ctx.tuningKey]: {} } };
    for (const [key, t] of Object.entries(learned)) forced.adapters[ctx.tuningKey][key] = { ...t, variant: t.candidates[1] };
    const store = new MemoryTuningStore(forced);

    const on = new MatmulTuner(ctx, { store, variants: ONE, warn: quiet });
    const withCache = await Trainer.create(ctx, { ...TRAINER, tuning: on });
    const off = await Trainer.create(ctx, { ...TRAINER, tuning: false });
    const untouched = new MatmulTuner(ctx, { store, variants: ONE, warn: quiet });
    const offToo = await Trainer.create(ctx, { ...TRAINER });
    try {
      expect(on.timings).to.equal(0);
      expect(untouched.timings).to.equal(0);
      expect(store.saves).to.equal(0);
      const defaults = matmulTiles(off);
      expect(matmulTiles(offToo), 'off is the default').to.deep.equal(defaults);
      const cached = matmulTiles(withCache);
      expect(cached.length).to.equal(defaults.length);
      // Every product's cached (non-default) tile differs from its default tile, unless they share a pipeline.
      expect(cached.filter((x, i) => x !== defaults[i]).length, 'the cache moved the products off their default tiles').to.be.greaterThan(0);
    } finally {
      for (const t of [withCache, off, offToo]) t.destroy();
    }
  });

  it('a choice made among other candidates (a variant list that changed) is timed again', async () => {
    const store = new MemoryTuningStore();
    const few = new MatmulTuner(ctx, { store, repetitions: 1, variants: FEW.slice(0, 1), warn: quiet });
    const s = ctx.storage(4 * 30 * 30);
    few.scope(() => matmul(ctx, { M: 30, N: 30, K: 30 }, { a: s, b: s, c: ctx.storage(4 * 900) }));
    await few.tunePending();
    const more = new MatmulTuner(ctx, { store, repetitions: 1, variants: FEW, warn: quiet });
    more.scope(() => matmul(ctx, { M: 30, N: 30, K: 30 }, { a: s, b: s, c: ctx.storage(4 * 900) }));
    expect(more.pendingProducts).to.equal(1);
    await more.tunePending();
    expect(more.timings).to.be.greaterThan(few.timings);
  });
});

describe('matmul tuning cache stores', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'webgpu-train-tuning-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const record: TuningRecord = { version: 1, adapters: { 'an adapter': { 'subgroup|8x8x8|AB|none||||vec111|': { variant: 'subgroup-wg16-tm16', candidates: ['subgroup-default', 'subgroup-wg16-tm16'], ms: { 'subgroup-default': 2, 'subgroup-wg16-tm16': 1 } } } } };

  it('the file is in $XDG_CACHE_HOME (else ~/.cache), folder webgpu-train', () => {
    expect(defaultTuningFile({ XDG_CACHE_HOME: join(dir, 'c') })).to.equal(join(dir, 'c', 'webgpu-train', 'tuning.json'));
    expect(defaultTuningFile({})).to.match(/[/\\]\.cache[/\\]webgpu-train[/\\]tuning\.json$/);
  });

  it('a file store saves atomically (no temp file left), makes its folder, and loads what it saved', () => {
    const file = join(dir, 'deep', 'er', 'tuning.json');
    const warnings: string[] = [];
    const store = fileTuningStore(file, (m) => warnings.push(m));
    expect(store.load(), 'no file yet: nothing, no warning').to.equal(undefined);
    store.save(record);
    expect(store.load()).to.deep.equal(record);
    expect(readdirSync(join(dir, 'deep', 'er'))).to.deep.equal(['tuning.json']);
    expect(warnings).to.deep.equal([]);
  });

  it('a damaged file is ignored with one warning, and a tuner then tunes and rewrites it', async () => {
    const file = join(dir, 'tuning.json');
    writeFileSync(file, '{"version": 1, "adapters": {"x": ');
    const warnings: string[] = [];
    const store = fileTuningStore(file, (m) => warnings.push(m));
    expect(store.load()).to.equal(undefined);
    expect(store.load()).to.equal(undefined);
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.include('damaged');
    const ctx = await testContext();
    const tuner = new MatmulTuner(ctx, { store, repetitions: 1, variants: FEW });
    const s = ctx.storage(4 * 100);
    tuner.scope(() => matmul(ctx, { M: 10, N: 10, K: 10 }, { a: s, b: s, c: ctx.storage(400) }));
    await tuner.tunePending();
    expect(warnings).to.have.length(1);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as TuningRecord;
    expect(Object.keys(saved.adapters[ctx.tuningKey])).to.have.length(1);
  });

  it('a record of another layout is ignored with one warning from the tuner', async () => {
    const warnings: string[] = [];
    const ctx = await testContext();
    const tuner = new MatmulTuner(ctx, { store: new MemoryTuningStore({ version: 2 } as unknown as TuningRecord), warn: (m) => warnings.push(m) });
    expect(tuner.choices).to.deep.equal({});
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.include('unknown layout');
  });

  it('a file that cannot be written warns once and never throws', () => {
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, 'x');
    const warnings: string[] = [];
    const store = fileTuningStore(join(blocker, 'tuning.json'), (m) => warnings.push(m));
    store.save(record);
    store.save(record);
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.include('cannot save');
  });

  it('a page keeps the record in localStorage; a damaged entry is ignored with one warning', () => {
    const items = new Map<string, string>();
    const storage = { getItem: (k: string) => items.get(k) ?? null, setItem: (k: string, v: string) => void items.set(k, v) } as Storage;
    const warnings: string[] = [];
    const store = localStorageTuningStore(storage, (m) => warnings.push(m));
    expect(store.load()).to.equal(undefined);
    store.save(record);
    expect(JSON.parse(items.get(TUNING_STORAGE_KEY)!)).to.deep.equal(record);
    expect(store.load()).to.deep.equal(record);
    items.set(TUNING_STORAGE_KEY, '{not json');
    expect(store.load()).to.equal(undefined);
    expect(store.load()).to.equal(undefined);
    expect(warnings).to.have.length(1);
  });

  it('the CLI tunes by default; --no-tune turns it off', () => {
    expect(parseArgs(['--net', 'mlp']).tune).to.equal(true);
    expect(parseArgs(['--net', 'mlp', '--no-tune']).tune).to.equal(false);
  });
});
