// What the engine and the TensorFlow.js peer of tools/bench.ts share: the nets' settings and the batches.
import { readFileSync } from 'node:fs';
import { loadMnist, type Split } from '../src/data/mnist.js';
import type { NetKind } from '../src/nn/models/builtin.js';
import type { GpuContext } from '../src/gpu/context.js';
import { BufferUsage } from '../src/gpu/flags.js';
import { PassTimer } from '../src/gpu/profiler.js';
import { DispatchEncoder, type Dispatch } from '../src/gpu/dispatch.js';
import { ReadPacer } from '../src/gpu/pacer.js';
import { threadsFromEnvironment } from '../src/gpu/node.js';
import type { CompiledGraph } from '../src/graph/recorder.js';

/** The built-in nets the bench times against TensorFlow.js. */
export type BenchNet = Extract<NetKind, 'mlp' | 'cnn' | 'rnn'>;
export const BENCH_NETS: readonly BenchNet[] = ['mlp', 'cnn', 'rnn'];

/** The tutorials' batch sizes and Adam learning rates (the train CLI's defaults). */
export const NET_SETTINGS: Record<BenchNet, { batch: number; lr: number; description: string }> = {
  mlp: { batch: 100, lr: 1e-3, description: 'mlp 784-256 relu-10' },
  cnn: { batch: 50, lr: 1e-4, description: 'cnn conv5x5x32-pool-conv5x5x64-pool-1024-dropout-10' },
  rnn: { batch: 100, lr: 1e-3, description: 'rnn LSTM 128 over 28x28, last output-10' },
};

/** Real MNIST training images, the tutorials' 55,000-image split. */
export function trainSplit(): Split {
  return loadMnist().train;
}

/** Example indices of batch `k`: consecutive training images, wrapping at the end of the split. */
export function batchIndex(k: number, batch: number, count: number): Uint32Array {
  const idx = new Uint32Array(batch);
  for (let b = 0; b < batch; b++) idx[b] = (k * batch + b) % count;
  return idx;
}

/** Most measured steps per net (a fast step and a long --seconds would otherwise run on and on). */
export const MAX_STEPS = 2000;

/** Whether to time another step: at least `minSteps`, and more until they span `seconds` (both sides use this). */
export function measureMore(measured: number, measuredMs: number, minSteps: number, seconds: number): boolean {
  return measured < minSteps || (measuredMs < seconds * 1000 && measured < MAX_STEPS);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * CPU time the calling thread has run, in ms (Linux: /proc/thread-self/schedstat); undefined
 * elsewhere. On the main thread this is the host's share of a step: JS, Dawn's command recording,
 * and dawn.node's event polling while a map is pending.
 */
export function threadCpuMs(): number | undefined {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The environment of a peer's child process: the engine's own software-adapter threads left out.
 * With three per core, tfjs-webgpu's mlp step took 13% longer than with lavapipe's one per core
 * (BENCHMARKS.md, "Threads of a software adapter"), so the peer keeps the environment's setting.
 */
export function peerEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  const threads = threadsFromEnvironment();
  if (threads === undefined) delete env.LP_NUM_THREADS;
  else env.LP_NUM_THREADS = threads;
  return env;
}

/** What a peer child process reports per net (one JSON line prefixed with PEER_RESULT). */
export interface PeerNetResult {
  net: BenchNet;
  backend: string;
  batch: number;
  steps: number;
  warmup: number;
  /** Median wall time of a trainOnBatch step (loss read back), ms. */
  stepMs: number;
  examplesPerSec: number;
  /** Main-thread CPU per measured step, ms (mean; see threadCpuMs), and as a share of the steps' wall time. */
  hostCpuMs?: number;
  hostCpuShare?: number;
  /** Per measured step (webgpu only): queue submits, compute dispatches, bind groups and buffers created. */
  submits?: number;
  dispatches?: number;
  bindGroups?: number;
  buffers?: number;
  finalLoss: number;
  note?: string;
  error?: string;
}
export const PEER_RESULT = 'PEER_RESULT ';

/**
 * The GPU milliseconds of each of `steps` training steps encoded back to back in one submit, from
 * timestamps of empty passes around each step; the host sleeps through `expectMs` before reading
 * (so dawn.node does not poll meanwhile).
 */
export async function stepGpuTimes(ctx: GpuContext, graph: { encode(enc: GPUCommandEncoder): void }, steps: number, expectMs: number, label: string): Promise<number[]> {
  const bytes = 16 * steps;
  const qs = ctx.device.createQuerySet({ type: 'timestamp', count: 2 * steps, label: `${label} step timestamps` });
  const resolveBuf = ctx.createBuffer(bytes, BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, `${label} timestamps`);
  const readBuf = ctx.createBuffer(bytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, `${label} timestamps readback`);
  try {
    const enc = ctx.device.createCommandEncoder();
    for (let s = 0; s < steps; s++) {
      enc.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 2 * s } }).end();
      graph.encode(enc);
      enc.beginComputePass({ timestampWrites: { querySet: qs, endOfPassWriteIndex: 2 * s + 1 } }).end();
    }
    enc.resolveQuerySet(qs, 0, 2 * steps, resolveBuf, 0);
    enc.copyBufferToBuffer(resolveBuf, 0, readBuf, 0, bytes);
    ctx.device.queue.submit([enc.finish()]);
    if (expectMs > 2) await sleep(expectMs * 0.9);
    await ctx.mapRead(readBuf, 0, bytes, `${label}: reading the step timestamps`);
    const ts = new BigInt64Array(readBuf.getMappedRange(0, bytes).slice(0));
    readBuf.unmap();
    return Array.from({ length: steps }, (_, s) => Number(ts[2 * s + 1] - ts[2 * s]) / 1e6);
  } finally {
    qs.destroy();
    ctx.release(resolveBuf);
    ctx.release(readBuf);
  }
}

/** One op's GPU time in a step, its share of the ops' sum, and its dispatches. */
export interface OpTime {
  label: string;
  ms: number;
  share: number;
  dispatches: number;
}

/**
 * Each op's GPU milliseconds: the step encoded with one timed pass per op (Trainer.profile's layout),
 * or with `perDispatch` one per dispatch (labelled as the dispatch), one warm-up step, then the
 * median over `steps` steps, each read after sleeping through it. The ops come slowest first;
 * opSumMs is the median of the per-step sums.
 */
export async function opGpuTimes(ctx: GpuContext, graph: CompiledGraph, steps: number, opts: { perDispatch?: boolean } = {}): Promise<{ opSumMs: number; ops: OpTime[] }> {
  const ops = opts.perDispatch
    ? graph.ops.flatMap((o) => o.dispatches.map((d) => ({ label: d.label ?? o.label, dispatches: [d] })))
    : graph.ops;
  const timer = new PassTimer(ctx, ops.length);
  const per: number[][] = ops.map(() => []);
  const sums: number[] = [];
  const pacer = new ReadPacer();
  try {
    for (let s = 0; s < 1 + steps; s++) {
      timer.reset();
      const e = ctx.device.createCommandEncoder();
      const dispatches = new DispatchEncoder(e);
      for (const op of ops) dispatches.encode(op.dispatches, timer.pass(op.label));
      timer.resolve(e);
      const t0 = performance.now();
      ctx.device.queue.submit([e.finish()]);
      const woke = await pacer.sleep(t0);
      const r = await timer.read();
      pacer.done(t0, 1, woke);
      if (s < 1) continue;
      r.forEach((x, i) => per[i].push(x.ns / 1e6));
      sums.push(r.reduce((a, x) => a + x.ns, 0) / 1e6);
    }
  } finally {
    timer.destroy();
  }
  const opSumMs = median(sums);
  const times = ops
    .map((o, i) => ({ label: o.label, ms: median(per[i]), share: median(per[i]) / opSumMs, dispatches: o.dispatches.length }))
    .sort((a, b) => b.ms - a.ms);
  return { opSumMs, ops: times };
}

/**
 * GPU ms of `runs` back-to-back runs of one dispatch, each in its own timed pass, after a warm-up
 * submit of `warmup` runs (compiles, page faults). The host sleeps through most of the expected GPU
 * time before reading, so that dawn.node's polling leaves a software adapter its cores.
 */
export async function dispatchGpuTimes(ctx: GpuContext, timer: PassTimer, d: Dispatch, runs: number, warmup = 2): Promise<number[]> {
  let warmMs = 0;
  let times: number[] = [];
  for (const [round, n] of [[0, warmup], [1, runs]] as const) {
    timer.reset();
    const enc = ctx.device.createCommandEncoder();
    const dispatches = new DispatchEncoder(enc);
    for (let i = 0; i < n; i++) dispatches.encode([d], timer.pass(`${d.label} ${i}`));
    timer.resolve(enc);
    const t0 = performance.now();
    ctx.device.queue.submit([enc.finish()]);
    if (round === 1 && warmMs > 2) await sleep((warmMs / warmup) * n * 0.9);
    const t = await timer.read();
    if (round === 0) warmMs = performance.now() - t0;
    else times = t.map((x) => x.ns / 1e6);
  }
  return times;
}
