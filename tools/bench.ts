// The speed benchmark (npm run bench): the engine's training step on mlp, cnn and rnn against
// TensorFlow.js 4.22 (webgpu backend on the same Dawn adapter, and wasm), measured in ONE run, the
// engine first, then each peer backend in its own child process (tools/bench-peer.ts), one after
// the other. Prints a table and writes it to BENCHMARKS.md.
// Usage: node dist/tools/bench.js [--nets mlp,cnn,rnn] [--steps N] [--seconds S] [--warmup N] [--rounds N] [--no-peer] [--no-tune] [--out FILE]
//
// Rounds: the whole sequence (engine, tfjs-webgpu, tfjs-wasm) runs --rounds times (default 3). A
// shared 2-core machine drifts by tens of percent over minutes, so each ratio is taken within a
// round (its two sides measured minutes apart, not a quarter of an hour), and the table gives the
// median over rounds with the range.
//
// How each figure is measured:
// - examples/s: median wall time of a step after warm-up (at least --steps steps, and more until
//   they span --seconds, default 2, on both sides), each step's GPU work finished before the
//   next starts (engine: writeBatch + step(true), which reads loss and accuracy back; tfjs:
//   trainOnBatch, which awaits the loss's data()). dawn.node polls its event queue on the main
//   thread while a map is pending, taking a core from lavapipe's workers, so both sides sleep
//   through most of the expected GPU time before mapping, then let dawn.node poll once per
//   0.2 ms instead of flat out (the engine's trainer paces its read-backs; the peer's
//   GPUBuffer.mapAsync is wrapped to do the same, both with src/gpu/pacer.ts and
//   src/gpu/gentle-wait.ts).
// - pipelined examples/s (engine): the same steps submitted back to back, one read at the end.
// - GPU ms/step: timestamps around the whole step (one compute pass), median over the steps.
// - per-op GPU ms: one timed pass per op (Trainer.profile's layout, paced the same way), median of
//   min(steps, 10) steps.
// - roofline: (FLOPs per step / GPU time) / peak, the peak from shaders/fma_peak.wgsl: the highest
//   of its readings at the start and after each round's engine nets. The adapter's limit is the best
//   it shows; one reading taken while the machine is slow would inflate every roofline.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, platform, release } from 'node:os';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createNodeContext, threadsFromEnvironment } from '../src/gpu/node.js';
import type { GpuContext } from '../src/gpu/context.js';
import { BufferUsage, MapMode } from '../src/gpu/flags.js';
import { highestPeak, measureFmaPeak, type Peak } from './fma-peak.js';
import { Trainer } from '../src/nn/trainer.js';
import { NET_DEFAULTS, builtinModel } from '../src/nn/models/builtin.js';
import { trainLoop } from '../src/nn/loop.js';
import { failUsage, toolFlags } from './tool-args.js';
import { nodeMatmulTuner } from '../src/cli/tuning.js';
import { BENCH_NETS, NET_SETTINGS, PEER_RESULT, MAX_STEPS, batchIndex, peerEnvironment, measureMore, median, opGpuTimes, sleep, stepGpuTimes, threadCpuMs, trainSplit, type BenchNet, type PeerNetResult } from './bench-common.js';

const flags = toolFlags(process.argv.slice(2), [
  { name: 'nets', kind: 'string', arg: 'mlp,cnn,rnn', help: 'nets to measure, comma-separated (default all three)' },
  { name: 'steps', kind: 'int', arg: 'N', help: 'steps per timed round (default 20)' },
  { name: 'seconds', kind: 'float', arg: 'S', help: 'at least this long per measurement, 0 to 600 (default 2)' },
  { name: 'warmup', kind: 'int', arg: 'N', help: 'untimed steps first (default 3)' },
  { name: 'rounds', kind: 'int', arg: 'N', help: 'rounds, engine and peers alternating (default 3)' },
  { name: 'no-peer', kind: 'bool', help: 'measure the engine only, not TensorFlow.js' },
  { name: 'no-tune', kind: 'bool', help: 'the engine with its default matmul tiles (by default it tunes them as the CLI does, with the same cache)' },
  { name: 'out', kind: 'string', arg: 'FILE', help: 'the report to write (default BENCHMARKS.md)' },
], 'usage: node dist/tools/bench.js [--nets mlp,cnn,rnn] [--steps N] [--seconds S] [--warmup N] [--rounds N] [--no-peer] [--no-tune] [--out FILE]');
const nets = ((flags.get('nets') as string | undefined) ?? BENCH_NETS.join(',')).split(',') as BenchNet[];
for (const n of nets) {
  if (!BENCH_NETS.includes(n)) failUsage(`--nets ${JSON.stringify(n)} is not one of ${BENCH_NETS.join(', ')}: give --nets ${BENCH_NETS.join(',')} or a part of it`);
}
const steps = (flags.get('steps') as number | undefined) ?? 20;
const warmup = (flags.get('warmup') as number | undefined) ?? 3;
const roundCount = (flags.get('rounds') as number | undefined) ?? 3;
const seconds = (flags.get('seconds') as number | undefined) ?? 2;
for (const [name, v] of [['steps', steps], ['warmup', warmup], ['rounds', roundCount]] as const) {
  if (v < 1) failUsage(`--${name} ${v} must be at least 1: give --${name} 1 or more`);
}
if (!(seconds >= 0 && seconds <= 600)) failUsage(`--seconds ${seconds} is outside 0-600: give a number of seconds from 0 to 600`);
const withPeer = flags.get('no-peer') !== true;
const tune = flags.get('no-tune') !== true;
const outFile = (flags.get('out') as string | undefined) ?? 'BENCHMARKS.md';
const log = (s: string) => process.stderr.write(`[engine] ${s}\n`);

// --- counting what a step asks of the device -------------------------------------------------

const counts = { submits: 0, dispatches: 0 };
function countDeviceCalls(ctx: GpuContext): void {
  const q = Object.getPrototypeOf(ctx.device.queue) as { submit: (...a: unknown[]) => unknown };
  const submit = q.submit;
  q.submit = function (this: unknown, ...a: unknown[]) {
    counts.submits++;
    return submit.apply(this, a);
  };
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  const p = Object.getPrototypeOf(pass) as { dispatchWorkgroups: (...a: unknown[]) => unknown };
  pass.end();
  enc.finish();
  const dispatch = p.dispatchWorkgroups;
  p.dispatchWorkgroups = function (this: unknown, ...a: unknown[]) {
    counts.dispatches++;
    return dispatch.apply(this, a);
  };
}

// --- the engine ----------------------------------------------------------------------------------

interface EngineResult {
  net: BenchNet;
  batch: number;
  stepMs: number;
  examplesPerSec: number;
  /** Main-thread CPU per measured step, ms (mean; NaN where it cannot be read), and as a share of the steps' wall time. */
  hostCpuMs: number;
  hostCpuShare: number;
  pipelinedExamplesPerSec: number;
  gpuMs: number;
  opSumMs: number;
  submits: number;
  dispatches: number;
  plannedBytes: number;
  flops: number;
  gflops: number;
  topOps: { label: string; ms: number; share: number; dispatches: number }[];
  loss: number;
}

async function benchEngine(ctx: GpuContext, net: BenchNet, data: ReturnType<typeof trainSplit>, peakSoFar: Peak): Promise<EngineResult> {
  const { batch, lr } = NET_SETTINGS[net];
  // The net as the CLI trains it (its default architecture), at the tutorials' batch and Adam rate.
  const { hidden, layers, cell, keepProb } = NET_DEFAULTS[net];
  // Tiles tuned as the CLI tunes them: timed in the first round (at compile time, outside the timings), cached after.
  const tuning = nodeMatmulTuner(ctx, tune, log) ?? false;
  const t = await Trainer.create(ctx, { model: builtinModel(net, { hidden, layers, cell, keepProb }), seed: 1, batch, optimizer: { kind: 'adam', lr }, tuning });
  try {
    // The bench's own batches (consecutive images, the same as the peer's), through the one training loop.
    let k = 0;
    const batchAt = () => batchIndex(k++, batch, data.count);
    // Warm-up, then per-step timing: each step's GPU work done (loss read back) before the next.
    let loss = NaN;
    await trainLoop(t, data, { steps: warmup, batchAt, onRead: (m) => { loss = m.loss; } });
    const times: number[] = [];
    const stepSubmits: number[] = [];
    const stepDispatches: number[] = [];
    // At least --steps steps, and more until they span --seconds: a short window (20 mlp steps
    // are 0.1 s) can fall wholly inside one of a shared machine's slow spells.
    let measuredMs = 0;
    let t0 = 0;
    const enough = new AbortController();
    const cpu0 = threadCpuMs();
    await trainLoop(t, data, {
      steps: Math.max(steps, MAX_STEPS), batchAt, signal: enough.signal,
      beforeStep: () => {
        t0 = performance.now();
        counts.submits = counts.dispatches = 0;
      },
      onRead: (m) => {
        const ms = performance.now() - t0;
        loss = m.loss;
        times.push(ms);
        measuredMs += ms;
        stepSubmits.push(counts.submits);
        stepDispatches.push(counts.dispatches);
        if (!measureMore(times.length, measuredMs, steps, seconds)) enough.abort();
      },
    });
    const cpuMs = (threadCpuMs() ?? NaN) - (cpu0 ?? NaN);
    const hostCpuMs = cpuMs / times.length;
    const hostCpuShare = cpuMs / measuredMs;
    const stepMs = median(times);
    log(`${net}: ${stepMs.toFixed(2)} ms/step median of ${times.length} (each step finished), ${((batch * 1000) / stepMs).toFixed(0)} examples/s, loss ${loss.toFixed(4)}`);

    // Pipelined: the same number of steps back to back, one read at the end.
    const p0 = performance.now();
    await trainLoop(t, data, { steps, readEvery: steps, batchAt, onRead: (m) => { loss = m.loss; } });
    const pipeMs = (performance.now() - p0) / steps;

    // GPU time of the whole step: timestamps from empty passes around the step's one pass.
    const gpuTimes = await stepGpuTimes(ctx, t.graph, steps, pipeMs * steps, 'bench');
    const gpuMs = median(gpuTimes);

    // Per-op GPU time: one timed pass per op (at most 10 timed steps: the cnn's are slow).
    const { opSumMs, ops: topOps } = await opGpuTimes(ctx, t.graph, Math.min(steps, 10));
    ctx.throwIfFailed(`bench ${net}`);

    const flops = t.graph.flops;
    const gflops = flops / (gpuMs * 1e6);
    const res: EngineResult = {
      net, batch, stepMs, examplesPerSec: (batch * 1000) / stepMs, hostCpuMs, hostCpuShare, pipelinedExamplesPerSec: (batch * 1000) / pipeMs,
      gpuMs, opSumMs, submits: median(stepSubmits), dispatches: median(stepDispatches), plannedBytes: t.graph.plan.plannedBytes,
      flops, gflops, topOps, loss,
    };
    if (res.dispatches !== t.graph.dispatchCount) log(`${net}: note: ${res.dispatches} dispatches encoded per step, graph.dispatchCount says ${t.graph.dispatchCount}`);
    log(`${net}: pipelined ${pipeMs.toFixed(2)} ms/step; GPU ${gpuMs.toFixed(2)} ms/step (ops timed one pass each: ${opSumMs.toFixed(2)} ms); ${res.dispatches} dispatches, ${res.submits} submit(s); ${(flops / 1e6).toFixed(1)} MFLOP, ${gflops.toFixed(2)} GFLOPS, roofline ${(100 * gflops / peakSoFar.gflops).toFixed(1)}% of the best FMA peak read so far`);
    return res;
  } finally {
    t.destroy();
  }
}

// --- the peer ------------------------------------------------------------------------------------

async function runPeer(backend: 'webgpu' | 'wasm'): Promise<{ results: PeerNetResult[]; error?: string }> {
  const script = fileURLToPath(new URL('./bench-peer.js', import.meta.url));
  const child = spawn(process.execPath, [script, '--backend', backend, '--nets', nets.join(','), '--steps', String(steps), '--seconds', String(seconds), '--warmup', String(warmup)], {
    stdio: ['ignore', 'pipe', 'pipe'], env: peerEnvironment(),
  });
  const results: PeerNetResult[] = [];
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith(PEER_RESULT)) results.push(JSON.parse(line.slice(PEER_RESULT.length)) as PeerNetResult);
    }
  });
  let err = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    err = (err + d).slice(-2000);
    for (const line of d.split('\n')) if (line.startsWith('[tfjs-')) process.stderr.write(line + '\n');
  });
  // A peer that hangs must not hold the benchmark: 10 minutes each at most.
  const kill = setTimeout(() => child.kill('SIGKILL'), 600_000);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  clearTimeout(kill);
  if (code !== 0) return { results, error: `tfjs-${backend} exited with ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}` };
  return { results };
}

// --- the report ----------------------------------------------------------------------------------

const fmt = (x: number | undefined, digits = 0) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const ratio = (a: number, b: number | undefined) => (b === undefined || !Number.isFinite(b) || !(b > 0) ? 'n/a' : `${(a / b).toFixed(1)}x`);

const started = new Date();
const data = trainSplit();
const ctx = await createNodeContext();
if (!ctx.hasTimestamps) {
  console.error(`bench: the adapter (${ctx.adapterDescription}) has no 'timestamp-query' feature; GPU times cannot be measured`);
  process.exit(1);
}
countDeviceCalls(ctx);
log(`adapter: ${ctx.adapterDescription}`);
const peakReadings: Peak[] = [await measureFmaPeak(ctx, log)];
type PeerBackend = 'webgpu' | 'wasm';
interface Round {
  engine: Map<BenchNet, EngineResult>;
  peers: Record<PeerBackend, Map<BenchNet, PeerNetResult>>;
}
const rounds: Round[] = [];
const peerErrors: string[] = [];
let idleCpuMs = 0;
let peerWallMs = 0;
for (let r = 0; r < roundCount; r++) {
  log(`round ${r + 1} of ${roundCount}`);
  const round: Round = { engine: new Map(), peers: { webgpu: new Map(), wasm: new Map() } };
  for (const net of nets) round.engine.set(net, await benchEngine(ctx, net, data, highestPeak(peakReadings)));
  peakReadings.push(await measureFmaPeak(ctx, log));
  if (withPeer) {
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    for (const backend of ['webgpu', 'wasm'] as const) {
      const { results, error } = await runPeer(backend);
      for (const res of results) round.peers[backend].set(res.net, res);
      if (error) peerErrors.push(`round ${r + 1}: ${error}`);
    }
    const cpu = process.cpuUsage(cpu0);
    idleCpuMs += (cpu.user + cpu.system) / 1000;
    peerWallMs += performance.now() - w0;
  }
  rounds.push(round);
}
ctx.destroy();

/** The value over rounds: median, and the range when there are several. */
const overRounds = (values: (number | undefined)[]) => {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x));
  return v.length ? { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length } : undefined;
};
const peerExs = (backend: PeerBackend, net: BenchNet) => overRounds(rounds.map((r) => r.peers[backend].get(net)?.examplesPerSec));
const ratioOver = (backend: PeerBackend, net: BenchNet) => overRounds(rounds.map((r) => {
  const p = r.peers[backend].get(net)?.examplesPerSec;
  return p && p > 0 ? r.engine.get(net)!.examplesPerSec / p : undefined;
}));
/** The result of the median round by examples/s (the lower middle one for an even count). */
function medianRound<T extends { examplesPerSec: number }>(results: (T | undefined)[]): T | undefined {
  const sorted = results.filter((x): x is T => !!x).sort((a, b) => a.examplesPerSec - b.examplesPerSec);
  return sorted[(sorted.length - 1) >> 1];
}
const peak = highestPeak(peakReadings);
// The engine's per-step details come from its median round.
const engine: EngineResult[] = nets.map((net) => medianRound(rounds.map((r) => r.engine.get(net)))!);
const cpuList = cpus();
const machine = `${cpuList[0]?.model ?? 'unknown CPU'}, ${cpuList.length} cores, ${platform()} ${release()}, Node ${process.version}`;
const header = ['net (batch)', 'engine ex/s', 'tfjs-webgpu ex/s', 'tfjs-wasm ex/s', 'engine / webgpu', 'engine / wasm', 'engine pipelined ex/s', 'GPU ms/step', 'dispatches/step', 'submits/step', 'planned MB', 'MFLOP/step', 'GFLOPS', 'roofline', 'top 3 ops by GPU time'];
const range = (x: ReturnType<typeof overRounds>, digits: number, unit = '') =>
  !x ? 'n/a' : x.n > 1 ? `${fmt(x.median, digits)}${unit} (${fmt(x.min, digits)}–${fmt(x.max, digits)})` : `${fmt(x.median, digits)}${unit}`;
const rows = engine.map((e) => [
  `${e.net} (${e.batch})`, range(overRounds(rounds.map((r) => r.engine.get(e.net)!.examplesPerSec)), 0),
  range(peerExs('webgpu', e.net), 1), range(peerExs('wasm', e.net), 1),
  range(ratioOver('webgpu', e.net), 1, 'x'), range(ratioOver('wasm', e.net), 1, 'x'),
  range(overRounds(rounds.map((r) => r.engine.get(e.net)!.pipelinedExamplesPerSec)), 0),
  fmt(e.gpuMs, 2), String(e.dispatches), String(e.submits), fmt(e.plannedBytes / 1e6, 2), fmt(e.flops / 1e6, 1), fmt(e.gflops, 2), `${(100 * e.gflops / peak.gflops).toFixed(1)}%`,
  e.topOps.slice(0, 3).map((o) => `${o.label} ${o.ms.toFixed(2)} ms (${(100 * o.share).toFixed(0)}%)`).join('; '),
]);
const roundHeader = ['net', 'round', 'engine ex/s', 'tfjs-webgpu ex/s', 'tfjs-wasm ex/s', 'engine / webgpu', 'engine / wasm'];
const roundRows = nets.flatMap((net) => rounds.map((r, i) => {
  const e = r.engine.get(net)!.examplesPerSec;
  const w = r.peers.webgpu.get(net)?.examplesPerSec;
  const a = r.peers.wasm.get(net)?.examplesPerSec;
  return [net, String(i + 1), fmt(e), fmt(w, 1), fmt(a, 1), ratio(e, w), ratio(e, a)];
}));
const table = (h: string[], rs: string[][]) => [`| ${h.join(' | ')} |`, `|${h.map(() => '---').join('|')}|`, ...rs.map((r) => `| ${r.join(' | ')} |`)].join('\n');
const peerHeader = ['net', 'backend', 'ms/step', 'ex/s', 'submits/step', 'dispatches/step', 'bind groups created/step', 'buffers created/step', 'note'];
const peerRows: string[][] = [];
for (const backend of ['webgpu', 'wasm'] as const) {
  for (const net of nets) {
    const r = medianRound(rounds.map((round) => round.peers[backend].get(net)));
    if (!r) continue;
    peerRows.push([net, `tfjs-${backend}`, fmt(r.stepMs, 1), fmt(r.examplesPerSec, 1), fmt(r.submits), fmt(r.dispatches), fmt(r.bindGroups), fmt(r.buffers), r.error ? `failed: ${r.error}` : (r.note ?? '')]);
  }
}

// Main-thread CPU per step, each side in its median round: the host's share of a step (JS, command
// recording, and dawn.node's polling while a map is pending), which on a CPU adapter is taken from
// the cores that run the kernels.
const hostHeader = ['net', 'side', 'wall ms/step (median)', 'main-thread CPU ms/step (mean)', 'main-thread CPU / wall time'];
const hostRows: string[][] = [];
for (const net of nets) {
  const sides: [string, { stepMs: number; hostCpuMs?: number; hostCpuShare?: number } | undefined][] = [['engine', engine.find((e) => e.net === net)]];
  if (withPeer) for (const backend of ['webgpu', 'wasm'] as const) sides.push([`tfjs-${backend}`, medianRound(rounds.map((round) => round.peers[backend].get(net)))]);
  for (const [side, r] of sides) {
    if (!r || r.hostCpuMs === undefined || r.hostCpuShare === undefined || !Number.isFinite(r.hostCpuMs)) continue;
    hostRows.push([net, side, fmt(r.stepMs, 2), fmt(r.hostCpuMs, 2), `${(100 * r.hostCpuShare).toFixed(0)}%`]);
  }
}

const md = [
  '# Benchmarks',
  '',
  `Written by \`npm run bench\` (tools/bench.ts) on ${started.toISOString()}.`,
  '',
  `- adapter: ${ctx.adapterDescription}`,
  `- machine: ${machine}`,
  ...(ctx.softwareAdapter ? [`- software adapter threads: the engine's LP_NUM_THREADS=${process.env.LP_NUM_THREADS} (src/gpu/node.ts softwareAdapterThreads); tfjs-webgpu's ${threadsFromEnvironment() === undefined ? 'lavapipe\'s default, one per core' : `LP_NUM_THREADS=${threadsFromEnvironment()}`}, the environment's`] : []),
  `- FMA peak (shaders/fma_peak.wgsl, ${peak.entry}, fastest of 5 dispatches): ${peak.gflops.toFixed(1)} GFLOPS, the highest of ${peakReadings.length} readings, at the start and after each round's engine nets (${peakReadings.map((p) => p.gflops.toFixed(1)).join(', ')}); every roofline is against it`,
  `- steps: at least ${steps}, and more until they span ${seconds} s (at most ${MAX_STEPS}), measured after ${warmup} warm-up, per net and per backend, on real MNIST training batches (the same batches everywhere); ${roundCount} round(s) of engine, tfjs-webgpu, tfjs-wasm in turn: examples/s and ratios are medians over the rounds (range in brackets), each ratio taken within a round`,
  `- matmul tiles: ${tune ? 'tuned per product on this adapter, as the CLI does (src/kernels/matmul-tuner.ts; the choices from the user\'s tuning cache)' : 'the defaults (--no-tune)'}`,
  withPeer ? `- peer: TensorFlow.js 4.22 tf.layers models (same architectures, Adam, softmax cross-entropy from logits) trained with \`model.trainOnBatch\`; one child process per backend, after the engine in each round` : '- peer: not run (--no-peer)',
  withPeer ? `- CPU used by the benchmark's own process while the peers ran: ${idleCpuMs.toFixed(0)} ms over ${(peerWallMs / 1000).toFixed(0)} s` : '',
  '',
  table(header, rows),
  '',
  ...(roundCount > 1 ? ['### Per round', '', table(roundHeader, roundRows), ''] : []),
  '',
  'examples/s: batch / median wall time of a step (over the steps above), each step finished before the next starts (engine: `writeBatch` + `step(true)`, which reads loss and accuracy back; tfjs: `trainOnBatch`, which awaits the loss). Both sides sleep through most of the expected GPU time before mapping a buffer, since dawn.node polls on the main thread while a map is pending, and then let it poll once per 0.2 ms rather than flat out (src/gpu/pacer.ts, src/gpu/gentle-wait.ts). Pipelined: the same steps submitted back to back with one read at the end. GPU ms/step: timestamps around the whole step. Top ops: one timed pass per op, median of min(steps, 10) steps (their sum is given per net below; separate passes change the timing a little). Roofline: (FLOPs per step / GPU time) / FMA peak. planned MB: the buffer planner\'s activations and gradients (parameters and optimizer state not included).',
  '',
  ...(withPeer ? ['## The peer per step (its median round)', '', table(peerHeader, peerRows), '', ...peerErrors.map((e) => `- ${e}`), ''] : []),
  ...(hostRows.length ? ['## Host CPU per step (main thread, median round)', '', table(hostHeader, hostRows), '',
    'From /proc/thread-self/schedstat over the timed steps (wasm computes on the main thread, hence its 100%). On a software adapter the host\'s CPU comes out of the cores that run the kernels; a pending map costs CPU because dawn.node polls for it.', ''] : []),
  '## Engine ops by GPU time (its median round)', '',
  ...engine.flatMap((e) => [`### ${e.net}`, '', `GPU time of the step in one pass: ${e.gpuMs.toFixed(2)} ms; the ops in one timed pass each: ${e.opSumMs.toFixed(2)} ms in all.`, '', table(['op', 'GPU ms', 'share', 'dispatches'], e.topOps.slice(0, 12).map((o) => [o.label, o.ms.toFixed(3), `${(100 * o.share).toFixed(1)}%`, String(o.dispatches)])), '']),
].filter((l, i, a) => !(l === '' && a[i - 1] === ''));
// Hand-written sections of the old report (from '## Real GPU check' on) are kept at its end.
const kept = existsSync(outFile) ? readFileSync(outFile, 'utf8').split(/^(?=## Real GPU check)/m).slice(1).join('') : '';
writeFileSync(outFile, md.join('\n') + '\n' + (kept ? `\n${kept.trimEnd()}\n` : ''));

console.log(`\nadapter: ${ctx.adapterDescription}\nmachine: ${machine}\nFMA peak: ${peak.gflops.toFixed(1)} GFLOPS (${peak.entry})\n`);
console.log(table(header, rows));
if (roundCount > 1) console.log('\n' + table(roundHeader, roundRows));
if (withPeer) console.log('\n' + table(peerHeader, peerRows));
if (hostRows.length) console.log('\n' + table(hostHeader, hostRows));
for (const e of peerErrors) console.log(`peer error: ${e}`);
console.log(`\nwrote ${outFile}`);
process.exit(0);
