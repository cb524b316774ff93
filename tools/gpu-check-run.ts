// One part of the real-GPU check (tools/gpu-check.sh), run in its own process so that the script can
// time each part out and go on. Prints one JSON line per figure on stdout (progress on stderr):
//   --part adapter  the adapter's description and its fp32 FMA peak (shaders/fma_peak.wgsl)
//   --part matmul   A·B GFLOPS per MxKxN shape (median of timed runs), a spot check of the product
//   --part nets     each built-in net's training step (finished steps, pipelined, GPU time), and with
//                   --peer the engine against TensorFlow.js (webgpu backend, same adapter) in the same run
// Every line has "figure" and "adapter"; a figure that fails is a line with "error".
// Usage: node dist/tools/gpu-check-run.js --part adapter|matmul|nets [flags]
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nodeMatmulTuner } from '../src/cli/tuning.js';
import { createNodeContext } from '../src/gpu/node.js';
import type { GpuContext, MatmulKernelChoice } from '../src/gpu/context.js';
import { BufferUsage, MapMode } from '../src/gpu/flags.js';
import { PassTimer } from '../src/gpu/profiler.js';
import { matmul, matmulKernelFor, matmulTileVariants } from '../src/kernels/matmul.js';
import { Trainer } from '../src/nn/trainer.js';
import { NET_DEFAULTS, NET_KINDS, builtinModel, type NetKind } from '../src/nn/models/builtin.js';
import { trainLoop } from '../src/nn/loop.js';
import { failUsage, toolFlags } from './tool-args.js';
import { measureFmaPeak } from './fma-peak.js';
import { BENCH_NETS, MAX_STEPS, PEER_RESULT, batchIndex, dispatchGpuTimes, peerEnvironment, measureMore, median, opGpuTimes, sleep, stepGpuTimes, trainSplit, type BenchNet, type PeerNetResult } from './bench-common.js';

const flags = toolFlags(process.argv.slice(2), [
  { name: 'part', kind: 'choice', choices: ['adapter', 'matmul', 'nets'], arg: 'adapter|matmul|nets', help: 'which part of the check to run' },
  { name: 'peak', kind: 'float', arg: 'GFLOPS', help: 'the FMA peak measured by --part adapter (for share_of_fma_peak)' },
  { name: 'peak-groups', kind: 'string', arg: 'N,N', help: 'adapter: workgroups per FMA dispatch to try (default 512,8192)' },
  { name: 'shapes', kind: 'string', arg: 'MxKxN,...', help: 'matmul: shapes (default 1024x1024x1024,2048x2048x2048,4096x4096x4096,8192x8192x8192)' },
  { name: 'runs', kind: 'int', arg: 'N', help: 'matmul: timed runs per shape (default 10)' },
  { name: 'tiles', kind: 'choice', choices: ['default', 'all'], arg: 'default|all', help: 'matmul: the default tile only, or every tile variant of the kernel (the tuner\'s candidates; default: default)' },
  { name: 'nets', kind: 'string', arg: 'softmax,bp,...', help: 'nets: the nets (default all five)' },
  { name: 'steps', kind: 'int', arg: 'N', help: 'nets: at least this many timed steps (default 20)' },
  { name: 'seconds', kind: 'float', arg: 'S', help: 'nets: and more steps until they span S seconds (default 2)' },
  { name: 'warmup', kind: 'int', arg: 'N', help: 'nets: untimed steps first (default 3)' },
  { name: 'no-tune', kind: 'bool', help: 'nets: the default matmul tiles (by default they are tuned as the CLI does)' },
  { name: 'peer', kind: 'bool', help: 'nets: also time TensorFlow.js (webgpu backend) on mlp, cnn, rnn in a child process' },
  { name: 'peer-nets', kind: 'string', arg: 'mlp,cnn,rnn', help: 'nets: the nets the peer times (default mlp,cnn,rnn, those of --nets)' },
  { name: 'peer-timeout', kind: 'float', arg: 'S', help: 'nets: kill the peer after S seconds (default 180)' },
  { name: 'matmul-kernel', kind: 'choice', choices: ['auto', 'subgroup', 'tiled'], arg: 'auto|subgroup|tiled', help: 'the matmul kernel the engine uses (the context\'s matmulKernel; default auto)' },
  { name: 'encode-ahead', kind: 'choice', choices: ['auto', 'on', 'off'], arg: 'auto|on|off', help: 'nets: encode each step while the GPU runs the last one (TrainerOptions.encodeAhead; default auto: on a GPU, not on a software adapter)' },
  { name: 'host-wait', kind: 'choice', choices: ['auto', 'gentle', 'spin'], arg: 'auto|gentle|spin', help: 'how dawn.node polls while the host waits for the GPU (createNodeContext\'s spinWait; default auto: gently on a software adapter, flat out on a GPU)' },
], 'usage: node dist/tools/gpu-check-run.js --part adapter|matmul|nets [--peak GFLOPS] [--shapes MxKxN,...] [--runs N] [--nets a,b] [--steps N] [--seconds S] [--warmup N] [--peer] [--peer-nets a,b] [--peer-timeout S] [--matmul-kernel auto|subgroup|tiled] [--encode-ahead auto|on|off] [--host-wait auto|gentle|spin]');
const encodeAheadFlag = (flags.get('encode-ahead') as string | undefined) ?? 'auto';
const encodeAhead = encodeAheadFlag === 'auto' ? undefined : encodeAheadFlag === 'on';
const hostWait = (flags.get('host-wait') as string | undefined) ?? 'auto';
const spinWait = hostWait === 'auto' ? undefined : hostWait === 'spin';
const matmulKernel = (flags.get('matmul-kernel') as MatmulKernelChoice | undefined) ?? 'auto';

const part = flags.get('part') as string | undefined;
if (!part) failUsage('--part is missing: give --part adapter, matmul or nets');
const peakGflops = flags.get('peak') as number | undefined;
const positiveInts = (flag: string, text: string): number[] => text.split(',').map((s) => {
  if (!/^\d+$/.test(s) || Number(s) < 1) failUsage(`--${flag} ${JSON.stringify(text)} must be positive whole numbers, comma-separated`);
  return Number(s);
});
const log = (s: string) => process.stderr.write(`[gpu-check ${part}] ${s}\n`);

/** Four significant digits: enough for a timing, and a short line. */
const sig = (x: number): number => (Number.isFinite(x) ? Number(x.toPrecision(4)) : x);

let adapter = '';
/** One figure as a JSON line on stdout (numbers to 4 significant digits, the adapter added). */
function emit(figure: string, fields: Record<string, unknown>): void {
  const out: Record<string, unknown> = { figure };
  for (const [k, v] of Object.entries(fields)) out[k] = typeof v === 'number' && !Number.isInteger(v) ? sig(v) : v;
  out.adapter = adapter;
  process.stdout.write(JSON.stringify(out) + '\n');
}
const message = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];
const share = (gflops: number) => (peakGflops && peakGflops > 0 ? gflops / peakGflops : null);

// --- adapter: description and FMA peak ------------------------------------------------------------

/** The Vulkan loader and driver libraries this process has loaded (Linux: /proc/self/maps), to show which were used. */
function vulkanLibraries(): string[] {
  try {
    const paths = readFileSync('/proc/self/maps', 'utf8').split('\n').map((l) => l.slice(l.indexOf('/'))).filter((p) => p.startsWith('/') && /vulkan|nvidia|lvp/i.test(p.slice(p.lastIndexOf('/'))));
    return [...new Set(paths)];
  } catch {
    return [];
  }
}

async function adapterPart(ctx: GpuContext): Promise<void> {
  const info = (ctx.device as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  emit('adapter', {
    description: ctx.adapterDescription, vendor: info?.vendor ?? '', architecture: info?.architecture ?? '', device: info?.device ?? '',
    timestamps: ctx.hasTimestamps, subgroups: ctx.device.features.has('subgroups'),
    max_storage_binding_mib: ctx.limits.maxStorageBufferBindingSize / 2 ** 20, max_buffer_mib: ctx.limits.maxBufferSize / 2 ** 20,
    vulkan_libraries: vulkanLibraries(),
  });
  if (!ctx.hasTimestamps) throw new Error('the adapter has no timestamp-query feature: GPU times cannot be measured');
  let best = { gflops: 0, entry: '', ms: 0, groups: 0 };
  for (const groups of positiveInts('peak-groups', (flags.get('peak-groups') as string | undefined) ?? '512,8192')) {
    const p = await measureFmaPeak(ctx, log, groups);
    if (p.gflops > best.gflops) best = p;
  }
  emit('fma_peak', { gflops: best.gflops, entry: best.entry, workgroups: best.groups, dispatch_ms: best.ms });
}

// --- matmul: GFLOPS per shape -----------------------------------------------------------------------

/** Exactly representable inputs (multiples of 1/8 and 1/16) so every product sum is exact in fp32 for K ≤ 2^14. */
const aAt = (i: number) => (((i * 7) % 13) - 6) / 8;
const bAt = (i: number) => (((i * 5) % 11) - 5) / 16;

async function matmulPart(ctx: GpuContext): Promise<void> {
  const text = (flags.get('shapes') as string | undefined) ?? '1024x1024x1024,2048x2048x2048,4096x4096x4096,8192x8192x8192';
  const runs = (flags.get('runs') as number | undefined) ?? 10;
  const shapes = text.split(',').map((s) => {
    if (!/^\d+x\d+x\d+$/.test(s) || s.split('x').some((v) => Number(v) < 1)) failUsage(`--shapes ${JSON.stringify(s)} is not MxKxN: give positive sizes, e.g. --shapes 512x512x512`);
    return s.split('x').map(Number) as [number, number, number];
  });
  const timer = new PassTimer(ctx, runs);
  const allTiles = flags.get('tiles') === 'all';
  for (const [M, K, N] of shapes) await timeMatmulShape(ctx, timer, M, K, N, runs, allTiles);
  timer.destroy();
}

/**
 * Times one product with its kernel's default tile and, with `allTiles`, each other tile variant of
 * the kernel that gives another pipeline (the tuner's candidates), each with a spot check; one line each.
 */
async function timeMatmulShape(ctx: GpuContext, timer: PassTimer, M: number, K: number, N: number, runs: number, allTiles: boolean): Promise<void> {
  const shape = `${M}x${K}x${N}`;
  const kernelUsed = matmulKernelFor(ctx, { M, N, K });
  const bufs: GPUBuffer[] = [];
  try {
    const a = ctx.storage(M * K * 4, 'check A'), b = ctx.storage(K * N * 4, 'check B'), c = ctx.storage(M * N * 4, 'check C');
    bufs.push(a, b, c);
    ctx.write(a, Float32Array.from({ length: M * K }, (_, i) => aAt(i)));
    ctx.write(b, Float32Array.from({ length: K * N }, (_, i) => bAt(i)));
    // Spot check: C's first and last element against exact sums (the inputs make them exact).
    const want = (i: number, j: number) => {
      let s = 0;
      for (let k = 0; k < K; k++) s += aAt(i * K + k) * bAt(k * N + j);
      return s;
    };
    const ids = matmulTileVariants(ctx, { M, N, K });
    for (const [i, id] of (allTiles ? ids : ids.slice(0, 1)).entries()) {
      const tile = i === 0 ? 'default' : id;
      const d = matmul(ctx, { M, N, K, variant: i === 0 ? undefined : id }, { a, b, c });
      try {
        ctx.poison(c);
        await d.kernel.ready;
        const times = await dispatchGpuTimes(ctx, timer, d, runs);
        ctx.throwIfFailed(`matmul ${shape} (${tile})`);
        const [first] = await ctx.readF32(c, 1, 0);
        const [last] = await ctx.readF32(c, 1, M * N - 1);
        const err = Math.max(Math.abs(first - want(0, 0)), Math.abs(last - want(M - 1, N - 1)));
        const ms = median(times);
        const gflops = (2 * M * N * K) / (ms * 1e6);
        const fields = { shape, variant: 'A·B', kernel: kernelUsed, tile, constants: d.kernel.constants, median_ms: ms, min_ms: Math.min(...times), runs, gflops, share_of_fma_peak: share(gflops), spot_check_abs_err: err };
        if (!(err <= 1e-3)) emit('matmul', { ...fields, error: `wrong product: C[0,0] ${first} vs ${want(0, 0)}, C[M-1,N-1] ${last} vs ${want(M - 1, N - 1)}` });
        else emit('matmul', fields);
      } catch (e) {
        emit('matmul', { shape, kernel: kernelUsed, tile, error: message(e) });
      }
    }
  } catch (e) {
    emit('matmul', { shape, error: message(e) });
  } finally {
    for (const x of bufs) ctx.release(x);
  }
}

// --- nets: each built-in net's training step --------------------------------------------------------

interface EngineStep {
  stepMs: number;
  examplesPerSec: number;
}

async function netPart(ctx: GpuContext): Promise<void> {
  const names = ((flags.get('nets') as string | undefined) ?? NET_KINDS.join(',')).split(',');
  for (const n of names) if (!(NET_KINDS as readonly string[]).includes(n)) failUsage(`--nets ${JSON.stringify(n)} is not one of ${NET_KINDS.join(', ')}`);
  const steps = (flags.get('steps') as number | undefined) ?? 20;
  const warmup = (flags.get('warmup') as number | undefined) ?? 3;
  const seconds = (flags.get('seconds') as number | undefined) ?? 2;
  const data = trainSplit();
  log(`${data.count} training images`);
  const engine = new Map<NetKind, EngineStep>();
  for (const net of names as NetKind[]) {
    try {
      engine.set(net, await timeNet(ctx, net, data, steps, warmup, seconds));
    } catch (e) {
      emit('net_step', { net, error: message(e) });
    }
  }
  if (flags.get('peer') !== true) return;
  const peerAsked = ((flags.get('peer-nets') as string | undefined) ?? BENCH_NETS.join(',')).split(',');
  for (const n of peerAsked) if (!(BENCH_NETS as readonly string[]).includes(n)) failUsage(`--peer-nets ${JSON.stringify(n)} is not one of ${BENCH_NETS.join(', ')}`);
  const peerNets = BENCH_NETS.filter((n) => peerAsked.includes(n) && engine.has(n));
  const { results, error } = await runPeer(peerNets, steps, warmup, seconds);
  for (const net of peerNets) {
    const e = engine.get(net)!;
    const p = results.find((r) => r.net === net);
    if (!p || p.error || !(p.examplesPerSec > 0)) {
      emit('engine_vs_tfjs_webgpu', { net, engine_examples_per_s: e.examplesPerSec, error: p?.error ?? error ?? 'the peer gave no result' });
      continue;
    }
    emit('engine_vs_tfjs_webgpu', {
      net, batch: p.batch, engine_step_ms: e.stepMs, tfjs_step_ms: p.stepMs, engine_examples_per_s: e.examplesPerSec,
      tfjs_examples_per_s: p.examplesPerSec, engine_over_tfjs: e.examplesPerSec / p.examplesPerSec, tfjs_steps: p.steps,
      tfjs_dispatches_per_step: p.dispatches, tfjs_submits_per_step: p.submits,
    });
  }
}

async function timeNet(ctx: GpuContext, net: NetKind, data: ReturnType<typeof trainSplit>, steps: number, warmup: number, seconds: number): Promise<EngineStep> {
  const { batch, lr, optimizer, hidden, layers, cell, keepProb } = NET_DEFAULTS[net];
  const tuning = nodeMatmulTuner(ctx, flags.get('no-tune') !== true, log) ?? false;
  const t = await Trainer.create(ctx, { model: builtinModel(net, { hidden, layers, cell, keepProb }), seed: 1, batch, optimizer: { kind: optimizer, lr }, tuning, encodeAhead });
  try {
    // The bench's batches: consecutive images (the peer's too).
    let k = 0;
    const batchAt = () => batchIndex(k++, batch, data.count);
    let loss = NaN;
    await trainLoop(t, data, { steps: warmup, batchAt, onRead: (m) => { loss = m.loss; } });
    // Finished steps: each step's loss read back before the next step starts.
    const times: number[] = [];
    let measuredMs = 0, t0 = 0;
    const enough = new AbortController();
    await trainLoop(t, data, {
      steps: Math.max(steps, MAX_STEPS), batchAt, signal: enough.signal,
      beforeStep: () => { t0 = performance.now(); },
      onRead: (m) => {
        const ms = performance.now() - t0;
        loss = m.loss;
        times.push(ms);
        measuredMs += ms;
        if (!measureMore(times.length, measuredMs, steps, seconds)) enough.abort();
      },
    });
    const stepMs = median(times);
    // Pipelined: the same number of steps back to back, one read at the end.
    const p0 = performance.now();
    await trainLoop(t, data, { steps, readEvery: steps, batchAt, onRead: (m) => { loss = m.loss; } });
    const pipeMs = (performance.now() - p0) / steps;
    // GPU time of the step: timestamps from empty passes around it.
    let gpuMs = NaN;
    if (ctx.hasTimestamps) gpuMs = median(await stepGpuTimes(ctx, t.graph, steps, pipeMs * steps, 'check'));
    // Where the step's GPU time goes: the slowest ops, one timed pass each.
    const top = ctx.hasTimestamps ? (await opGpuTimes(ctx, t.graph, Math.min(steps, 10))).ops.slice(0, 6) : [];
    // And the slowest dispatches, each in a timed pass of its own (an op's dispatches apart).
    const topDispatches = ctx.hasTimestamps ? (await opGpuTimes(ctx, t.graph, Math.min(steps, 10), { perDispatch: true })).ops.slice(0, 8) : [];
    ctx.throwIfFailed(`net ${net}`);
    const gflops = t.graph.flops / (gpuMs * 1e6);
    const res = { stepMs, examplesPerSec: (batch * 1000) / stepMs };
    // What the tuner chose on this adapter so far (this net's products and the earlier nets').
    const choices = tuning ? Object.values(tuning.choices) : [];
    const tiles = tuning
      ? { products_timed_now: tuning.tunedProducts, products_known: choices.length, off_default: choices.filter((c) => c.variant !== c.candidates[0]).length }
      : 'default';
    emit('net_step', {
      net, batch, optimizer, matmul_kernel: matmulKernel, encode_ahead: t.encodeAhead, host_wait: hostWait, step_ms: stepMs, examples_per_s: res.examplesPerSec, steps: times.length, pipelined_step_ms: pipeMs,
      gpu_step_ms: Number.isFinite(gpuMs) ? gpuMs : null, dispatches_per_step: t.graph.dispatchCount, mflop_per_step: t.graph.flops / 1e6,
      gflops: Number.isFinite(gflops) ? gflops : null, share_of_fma_peak: Number.isFinite(gflops) ? share(gflops) : null, loss,
      top_ops: top.map((o) => ({ op: o.label, ms: sig(o.ms), share: sig(o.share), dispatches: o.dispatches })),
      top_dispatches: topDispatches.map((d) => ({ dispatch: d.label, ms: sig(d.ms), share: sig(d.share) })), tiles,
    });
    log(`${net}: ${stepMs.toFixed(2)} ms/step (finished), ${pipeMs.toFixed(2)} pipelined, GPU ${gpuMs.toFixed(2)} ms`);
    return res;
  } finally {
    t.destroy();
  }
}

/** TensorFlow.js on the webgpu backend in a child process (tools/bench-peer.ts), killed after --peer-timeout. */
async function runPeer(nets: BenchNet[], steps: number, warmup: number, seconds: number): Promise<{ results: PeerNetResult[]; error?: string }> {
  const script = fileURLToPath(new URL('./bench-peer.js', import.meta.url));
  if (!existsSync(script)) return { results: [], error: `${script} is missing (TensorFlow.js not bundled)` };
  if (nets.length === 0) return { results: [] };
  const child = spawn(process.execPath, [script, '--backend', 'webgpu', '--nets', nets.join(','), '--steps', String(steps), '--seconds', String(seconds), '--warmup', String(warmup)], { stdio: ['ignore', 'pipe', 'pipe'], env: peerEnvironment() });
  const results: PeerNetResult[] = [];
  let out = '', err = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    out += d;
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (line.startsWith(PEER_RESULT)) results.push(JSON.parse(line.slice(PEER_RESULT.length)) as PeerNetResult);
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    err = (err + d).slice(-2000);
    process.stderr.write(d);
  });
  const limitS = (flags.get('peer-timeout') as number | undefined) ?? 180;
  let killed = false;
  const kill = setTimeout(() => { killed = true; child.kill('SIGKILL'); }, limitS * 1000);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  clearTimeout(kill);
  if (killed) return { results, error: `the TensorFlow.js peer ran past ${limitS} s and was stopped` };
  if (code !== 0) return { results, error: `the TensorFlow.js peer exited with ${code}: ${err.trim().split('\n').slice(-2).join(' | ')}` };
  return { results };
}

// --- main ------------------------------------------------------------------------------------------

let ctx: GpuContext;
try {
  ctx = await createNodeContext({ matmulKernel, spinWait });
} catch (e) {
  emit(part, { error: `no WebGPU device: ${message(e)}` });
  process.exit(1);
}
adapter = ctx.adapterDescription;
log(`adapter: ${adapter}`);
let code = 0;
try {
  if (part === 'adapter') await adapterPart(ctx);
  else if (part === 'matmul') await matmulPart(ctx);
  else await netPart(ctx);
} catch (e) {
  emit(part, { error: message(e) });
  code = 1;
}
ctx.destroy();
process.exit(code);
