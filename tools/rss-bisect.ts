// Where resident memory goes over a long run (not in the default suite, it takes minutes):
//   node --expose-gc dist/tools/rss-bisect.js --mode MODE [--steps N] [--net mlp] [--batch 100]
// Each mode repeats one part of a training step N times and prints the process's resident memory
// (process.memoryUsage().rss) and the JS heap every N/10 iterations, so a growth can be pinned on
// one of them:
//   step      trainer.step() with a read every 10 steps (the CLI's loop, without the data writes)
//   submit    the step's command buffer encoded and submitted, onSubmittedWorkDone every 10
//   empty     an empty command buffer submitted, onSubmittedWorkDone every 10
//   done      onSubmittedWorkDone alone, nothing submitted
//   map       mapAsync/unmap of one 16-byte staging buffer, nothing submitted
//   copymap   a 16-byte copy into that buffer submitted, then mapAsync/unmap (the metrics read's GPU side)
//   write     queue.writeBuffer of one batch's inputs, onSubmittedWorkDone every 10
//   mapread   as `map`, through GpuContext.mapRead (which races the map against the device's loss)
//   spin      as `map`, with dawn.node polling flat out (no gentle wait)
//   stepwrite `step` with the batch written before each step (trainer.writeBatch, always the same examples)
//   inflight  `step` with each read awaited only when the next is submitted (the CLI's one read in flight)
//   loop0     `loop` with each read awaited at once (no read in flight)
//   alloc     a new Float32Array of 500 images (1.5 MB) filled per iteration, no GPU (what an evaluation allocated)
//   bigwrite  queue.writeBuffer of 500 images (1.5 MB) per iteration, onSubmittedWorkDone after each
//   eval      trainer.evaluate() of 500 validation images (the CLI's --val 500 at each epoch's end)
//   loop      trainLoop as the CLI runs it (batches written, a read every 10, one in flight), no evaluation
//   cli       `loop` with an evaluation of 500 validation images at each epoch's end, as the CLI does
import { loadMnist } from '../src/data/mnist.js';
import { createNodeContext } from '../src/gpu/node.js';
import { BufferUsage, MapMode } from '../src/gpu/flags.js';
import { Trainer } from '../src/nn/trainer.js';
import { trainLoop } from '../src/nn/loop.js';
import type { NetKind } from '../src/nn/nets.js';

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

const MODES = ['step', 'submit', 'empty', 'done', 'map', 'copymap', 'write', 'spin', 'eval', 'loop', 'cli', 'stepwrite', 'inflight', 'loop0', 'alloc', 'bigwrite', 'mapread'] as const;
type Mode = (typeof MODES)[number];
const mode = flag('mode', 'step') as Mode;
const steps = Number(flag('steps', '10000'));
const net = flag('net', 'mlp') as NetKind;
const batch = Number(flag('batch', '100'));
if (!MODES.includes(mode) || !Number.isInteger(steps) || steps < 10) {
  console.error(`usage: node --expose-gc dist/tools/rss-bisect.js --mode ${MODES.join('|')} [--steps N (≥ 10)] [--net mlp] [--batch N]`);
  process.exit(2);
}

const gc = (globalThis as { gc?: () => void }).gc;
const rssMB = () => process.memoryUsage().rss / 1e6;
async function heapMB(): Promise<number> {
  gc?.();
  await new Promise((r) => setTimeout(r, 10));
  gc?.();
  return process.memoryUsage().heapUsed / 1e6;
}

const ctx = await createNodeContext({ spinWait: mode === 'spin' });
const data = loadMnist({ validation: 500 });
const trainer = await Trainer.create(ctx, { net, seed: 1, batch, optimizer: { kind: 'adam', lr: 1e-3 } });
const idx = new Uint32Array(batch).map((_, i) => i);
trainer.writeBatch(data.train, idx);
const staging = ctx.createBuffer(16, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'bisect staging');
const src = ctx.storage(16, 'bisect source');
const inputs = new Float32Array(batch * 784);
const done = () => ctx.wait(() => ctx.device.queue.onSubmittedWorkDone());

let inFlight: Promise<unknown> | undefined;
let sink = 0;
const big = ctx.storage(500 * 784 * 4, 'bisect 500 images');
async function once(i: number): Promise<void> {
  switch (mode) {
    case 'stepwrite':
      trainer.writeBatch(data.train, idx);
      if (i % 10 === 9) await trainer.step(true);
      else trainer.step();
      return;
    case 'inflight':
      if (i % 10 === 9) {
        if (inFlight) await inFlight;
        inFlight = trainer.step(true);
      } else trainer.step();
      return;
    case 'mapread':
      await ctx.mapRead(staging, 0, 8, 'bisect');
      staging.getMappedRange(0, 8).slice(0);
      staging.unmap();
      return;
    case 'alloc':
      sink += new Float32Array(500 * 784).fill(i)[i % 1000];
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1));
      return;
    case 'bigwrite': {
      const x = new Float32Array(500 * 784).fill(i);
      ctx.device.queue.writeBuffer(big, 0, x.buffer, 0, x.byteLength);
      await done();
      return;
    }
    case 'eval':
      await trainer.evaluate(data.validation);
      return;
    case 'step':
      if (i % 10 === 9) await trainer.step(true);
      else trainer.step();
      return;
    case 'submit': {
      const enc = ctx.device.createCommandEncoder();
      trainer.graph.encode(enc);
      ctx.device.queue.submit([enc.finish()]);
      if (i % 10 === 9) await done();
      return;
    }
    case 'empty':
      ctx.device.queue.submit([ctx.device.createCommandEncoder().finish()]);
      if (i % 10 === 9) await done();
      return;
    case 'done':
      await done();
      return;
    case 'map':
    case 'spin':
      await ctx.wait(() => staging.mapAsync(MapMode.READ, 0, 8));
      staging.getMappedRange(0, 8).slice(0);
      staging.unmap();
      return;
    case 'copymap': {
      const enc = ctx.device.createCommandEncoder();
      enc.copyBufferToBuffer(src, 0, staging, 0, 8);
      ctx.device.queue.submit([enc.finish()]);
      await ctx.wait(() => staging.mapAsync(MapMode.READ, 0, 8));
      staging.getMappedRange(0, 8).slice(0);
      staging.unmap();
      return;
    }
    case 'write':
      ctx.write(trainer.graph.bufferOf(trainer.net.x), inputs);
      if (i % 10 === 9) await done();
      return;
  }
}

const t0 = performance.now();
const every0 = Math.max(10, Math.floor(steps / 10 / 10) * 10);
if (mode === 'loop' || mode === 'cli' || mode === 'loop0') {
  // The loop in stretches of `every0` steps, each ending with its reads delivered; memory after each.
  let base: number | undefined;
  for (let s = 0; s < steps; s += every0) {
    await trainLoop(trainer, data.train, {
      startStep: s, steps: every0, seed: 1, readEvery: 10, readsInFlight: mode === 'loop0' ? 0 : 1,
      onEpochEnd: mode === 'cli' ? async () => { await trainer.evaluate(data.validation); } : undefined,
    });
    await done();
    const heap = await heapMB();
    const rss = rssMB();
    base ??= rss;
    console.log(`${mode} ${s + every0}: rss ${rss.toFixed(1)} MB (${rss - base >= 0 ? '+' : ''}${(rss - base).toFixed(1)}), heap ${heap.toFixed(1)} MB (of ${(process.memoryUsage().heapTotal / 1e6).toFixed(1)} MB), ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  console.log(`${mode}: rss growth ${(((rssMB() - base!) / (steps - every0)) * 1000).toFixed(3)} MB per 1,000 steps after the first ${every0}`);
  trainer.destroy();
  ctx.destroy();
  process.exit(0);
}
// The first 10% warm everything up (pipelines, pools, allocator arenas); growth is measured from there.
const every = Math.max(10, Math.floor(steps / 10 / 10) * 10);
let base: number | undefined;
for (let i = 0; i < steps; i++) {
  await once(i);
  if ((i + 1) % every === 0) {
    await done();
    const heap = await heapMB();
    const rss = rssMB();
    base ??= rss;
    console.log(`${mode} ${i + 1}: rss ${rss.toFixed(1)} MB (${rss - base >= 0 ? '+' : ''}${(rss - base).toFixed(1)}), heap ${heap.toFixed(1)} MB (of ${(process.memoryUsage().heapTotal / 1e6).toFixed(1)} MB), ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
}
const perK = ((rssMB() - base!) / (steps - every)) * 1000;
console.log(`${mode}: rss growth ${perK.toFixed(3)} MB per 1,000 iterations after the first ${every}`);
await inFlight; // the last read of `inflight` before the context goes
ctx.release(staging);
ctx.release(src);
trainer.destroy();
ctx.destroy();
