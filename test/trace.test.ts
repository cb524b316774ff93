// A Chrome trace (chrome://tracing, Perfetto) with one event per op of the step, from chromeTrace()
// directly and from a real training run of the CLI with --trace and --profile. Profiles need the
// 'timestamp-query' feature: where the adapter should offer it and does not, the tests fail.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testContext } from './support/gpu.js';
import { CLI_ENTRY, PACKAGE_ROOT } from './support/paths.js';
import { rng } from './support/cpu.js';
import { chromeTrace, type TraceSpan } from '../src/gpu/trace.js';
import { Trainer, type TrainerOptions } from '../src/nn/trainer.js';
import { parseArgs } from '../src/cli/args.js';
import { add, conv2d, dense, globalAvgPool2d, input } from '../src/nn/layers.js';
import { model } from '../src/nn/model.js';
import type { GpuContext } from '../src/gpu/context.js';

interface TraceEvent {
  name: string; ph: string; ts?: number; dur?: number; pid: number; tid: number; cat?: string; args?: Record<string, unknown>;
}

/** Parses a trace and checks the Chrome JSON Object Format; returns its complete ("X") events. */
function parseTrace(text: string): TraceEvent[] {
  const doc = JSON.parse(text) as { traceEvents: TraceEvent[]; displayTimeUnit?: string };
  expect(doc.traceEvents, 'traceEvents').to.be.an('array');
  if (doc.displayTimeUnit !== undefined) expect(['ms', 'ns']).to.include(doc.displayTimeUnit);
  for (const e of doc.traceEvents) {
    expect(e.name, 'event name').to.be.a('string');
    expect(e.ph, `phase of ${e.name}`).to.be.oneOf(['X', 'M']);
    expect(e.pid, 'pid').to.be.a('number');
    expect(e.tid, 'tid').to.be.a('number');
    if (e.ph === 'X') {
      expect(Number.isFinite(e.ts) && e.ts! >= 0, `ts of ${e.name}: ${e.ts}`).to.equal(true);
      expect(Number.isFinite(e.dur) && e.dur! >= 0, `dur of ${e.name}: ${e.dur}`).to.equal(true);
    } else {
      expect(e.name).to.be.oneOf(['process_name', 'thread_name']);
      expect(e.args?.name, 'metadata name').to.be.a('string');
    }
  }
  const xs = doc.traceEvents.filter((e) => e.ph === 'X');
  // one GPU queue: the spans follow each other without overlap (µs, rounded to 3 decimals)
  for (let i = 1; i < xs.length; i++) expect(xs[i].ts!, `${xs[i].name} starts after ${xs[i - 1].name} ends`).to.be.at.least(xs[i - 1].ts! + xs[i - 1].dur! - 0.01);
  return xs;
}

/** The trace spans of a profile, the way the CLI lays them out: ops in step order at their median times. */
function spansOf(trainer: Trainer, ops: { label: string; ms: number; dispatches: number }[]): TraceSpan[] {
  const byLabel = new Map(ops.map((o) => [o.label, o]));
  let t = 0;
  return trainer.graph.ops.map((op) => {
    const o = byLabel.get(op.label)!;
    const s = { name: op.label, startMs: t, durMs: o.ms, args: { dispatches: o.dispatches } };
    t += o.ms;
    return s;
  });
}

/**
 * Adapters allowed to lack 'timestamp-query': Dawn's OpenGL/GLES compatibility backends, where it is not
 * guaranteed. Only there may the profile tests be skipped; Dawn's Vulkan, Metal and D3D12 adapters
 * (lavapipe included) offer it, so a missing feature there is a failure, not a pending test.
 */
const ADAPTERS_WITHOUT_TIMESTAMPS = [/\bopengl/i, /\bgles\b/i];

/** Fails (names the adapter) unless the context can profile; skips only on adapters known to lack timestamps. */
function requireTimestamps(test: Mocha.Context, ctx: GpuContext): void {
  if (ctx.hasTimestamps) return;
  if (ADAPTERS_WITHOUT_TIMESTAMPS.some((r) => r.test(ctx.adapterDescription))) test.skip();
  expect.fail(`adapter ${ctx.adapterDescription} offers no 'timestamp-query' feature, but it is not one of the ` +
    `adapters known to lack it (${ADAPTERS_WITHOUT_TIMESTAMPS.join(', ')}): the profile and the trace cannot be tested`);
}

describe('trace: Chrome trace JSON', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => {
    ctx = await testContext();
  });

  it('chromeTrace() writes metadata and one X event per span, in µs', () => {
    const spans: TraceSpan[] = [
      { name: 'conv1', startMs: 0, durMs: 1.25, args: { dispatches: 2 } },
      { name: 'pool1', startMs: 1.25, durMs: 0.0004 },
      { name: 'adam w', startMs: 1.2504, durMs: 0 },
    ];
    const xs = parseTrace(chromeTrace(spans, 'proc', 'queue'));
    expect(xs.map((e) => e.name)).to.deep.equal(['conv1', 'pool1', 'adam w']);
    expect(xs.map((e) => e.ts)).to.deep.equal([0, 1250, 1250.4]);
    expect(xs.map((e) => e.dur)).to.deep.equal([1250, 0.4, 0]);
    expect(xs[0].args).to.deep.equal({ dispatches: 2 });
    const meta = (JSON.parse(chromeTrace([], 'proc', 'queue')) as { traceEvents: TraceEvent[] }).traceEvents;
    expect(meta.map((e) => e.args?.name)).to.deep.equal(['proc', 'queue']);
  });

  it('from the profile of a compiled training graph: one event per op, in step order', async function () {
    requireTimestamps(this, ctx);
    const opts: TrainerOptions = { net: 'mlp', hidden: 32, layers: 2, keepProb: 0.9, seed: 9, batch: 8, optimizer: { kind: 'adam', lr: 1e-3 } };
    const trainer = await Trainer.create(ctx, opts);
    try {
      const rand = rng(9);
      const images = Float32Array.from({ length: 8 * 784 }, () => rand());
      trainer.writeBatch({ count: 8, images, labels: Uint8Array.from({ length: 8 }, (_, i) => i) }, Uint32Array.from({ length: 8 }, (_, i) => i));
      const p = await trainer.profile(3, 1);
      expect(p.ops.length).to.equal(trainer.graph.ops.length);
      const labels = trainer.graph.ops.map((o) => o.label);
      expect(new Set(labels).size, 'op labels are unique (the trace is keyed by them)').to.equal(labels.length);
      const xs = parseTrace(chromeTrace(spansOf(trainer, p.ops)));
      expect(xs.map((e) => e.name), 'one event per op, in the order of the step').to.deep.equal(labels);
      expect(xs.map((e) => e.args?.dispatches)).to.deep.equal(trainer.graph.ops.map((o) => o.dispatches.length));
      expect(xs.reduce((a, e) => a + e.dur!, 0), 'some GPU time was measured').to.be.greaterThan(0);
    } finally {
      trainer.destroy();
    }
  });

  it("a custom model's profile and trace name its layers: forward, backward and the update of each parameter", async function () {
    requireTimestamps(this, ctx);
    const image = input([9, 7, 2], { name: 'image' });
    const stem = conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', name: 'stem' }).apply(image);
    const branch = conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'branch_conv' }).apply(stem);
    const joined = add([stem, branch], { name: 'skip_add' });
    const pooled = globalAvgPool2d({ name: 'squeeze' }).apply(joined);
    const logits = dense({ units: 4, name: 'classifier' }).apply(pooled);
    const custom = model({ inputs: image, outputs: logits, name: 'tiny_residual' });
    const trainer = await Trainer.create(ctx, { model: custom, seed: 4, batch: 5, optimizer: { kind: 'adam', lr: 1e-3 } });
    try {
      const rand = rng(4);
      const images = Float32Array.from({ length: 5 * 9 * 7 * 2 }, () => rand());
      trainer.writeBatch({ count: 5, images, labels: Uint8Array.from([0, 1, 2, 3, 0]) }, Uint32Array.from([0, 1, 2, 3, 4]));
      const p = await trainer.profile(2, 1);
      const labels = trainer.graph.ops.map((o) => o.label);
      const xs = parseTrace(chromeTrace(spansOf(trainer, p.ops)));
      expect(xs.map((e) => e.name), 'one trace event per op, named as the profile names it').to.deep.equal(labels);
      // every layer with work to do appears under its own name in the forward pass and in the backward pass
      for (const layer of ['stem', 'branch_conv', 'skip_add', 'squeeze', 'classifier']) {
        expect(labels, `forward of ${layer}`).to.include(layer);
        expect(labels.some((l) => l.startsWith(`${layer} backward`)), `backward of ${layer} in ${labels.join(', ')}`).to.equal(true);
      }
      // each parameter's update names the layer it belongs to: an op of its own, or (a dense kernel's,
      // with its bias's) the epilogue of its gradient's product, a dispatch of the layer's backward
      const fused = trainer.graph.ops.flatMap((o) => o.dispatches.map((d) => d.label)).filter((l) => l.endsWith('+adam'));
      expect(fused, 'updates in a product\'s epilogue').to.deep.equal(['classifier/dW+db+adam']);
      for (const [layer, dispatches] of [['stem', 2], ['branch_conv', 2], ['classifier', 1]] as const) {
        const updates = labels.filter((l) => l.startsWith('adam ') && l.includes(layer)).length + fused.filter((l) => l.startsWith(`${layer}/`)).length;
        expect(updates, `dispatches updating ${layer}'s kernel and bias`).to.equal(dispatches);
      }
      expect(p.ops.map((o) => o.label).sort(), 'the profile has a row per op').to.deep.equal([...labels].sort());
    } finally {
      trainer.destroy();
    }
  });

  it('end to end: `train.js --net softmax --steps 30 --trace FILE --profile`', async function () {
    requireTimestamps(this, ctx); // the CLI below runs on the same adapter
    const dir = mkdtempSync(join(tmpdir(), 'trace-test-'));
    const file = join(dir, 'softmax.trace.json');
    const argv = ['--net', 'softmax', '--steps', '30', '--val', '1000', '--trace', file, '--profile'];
    try {
      const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [CLI_ENTRY, ...argv], { cwd: PACKAGE_ROOT, env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' }, timeout: 100_000 },
          (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      });
      expect(code, `exit code; stderr:\n${stderr}`).to.equal(0);
      expect(stdout, 'the CLI found timestamp-query on the adapter').not.to.match(/no 'timestamp-query' feature/);
      expect(existsSync(file), `${file} was written`).to.equal(true);
      // the op list of the same net, compiled here with the CLI's own settings
      const args = parseArgs(argv);
      const trainer = await Trainer.create(await testContext(), {
        net: args.net, hidden: args.hidden, layers: args.layers, cell: args.cell, keepProb: args.keepProb, seed: args.seed,
        batch: args.batch, optimizer: { kind: args.optimizer, lr: args.lr },
      });
      const ops = trainer.graph.ops.map((o) => o.label);
      trainer.destroy();

      const xs = parseTrace(readFileSync(file, 'utf8'));
      expect(xs.map((e) => e.name), 'one X event per op of the step, in order').to.deep.equal(ops);

      // the profile table: a header, then one row per op (ms, share %, dispatches, label), slowest first
      expect(stdout).to.match(/GPU time per training step: [\d.]+ ms/);
      const rows = [...stdout.matchAll(/^\s*(\d+\.\d{3})\s+(\d+\.\d)%\s+(\d+)\s+(.+)$/gm)].map((m) => ({ ms: +m[1], share: +m[2], disp: +m[3], label: m[4].trim() }));
      expect(rows.map((r) => r.label).sort(), 'a table row per op').to.deep.equal([...ops].sort());
      for (let i = 1; i < rows.length; i++) expect(rows[i].ms, 'sorted by time').to.be.at.most(rows[i - 1].ms);
      // trace and table agree: each event lasts its op's median time (table in ms with 3 decimals)
      for (const e of xs) {
        const r = rows.find((x) => x.label === e.name)!;
        expect(Math.abs(e.dur! - r.ms * 1000), `${e.name}: trace ${e.dur} µs vs table ${r.ms} ms`).to.be.at.most(0.51);
        expect(e.args?.dispatches).to.equal(r.disp);
      }
      console.log(`      trace: ${xs.length} X events (${xs.map((e) => e.name).join(', ')}); step ${(xs.reduce((a, e) => a + e.dur!, 0) / 1000).toFixed(2)} ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
