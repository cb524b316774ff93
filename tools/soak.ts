// Soak test (not in the default suite, it takes minutes):
//   node --expose-gc dist/tools/soak.js [--steps 5000] [--net mlp] [--batch 100]
// Trains N steps on real MNIST the way the CLI does (a read-back every 10 steps, an evaluation of
// 1,000 validation images every 1,000 steps) and checks that the number of live GPU buffers is the
// same after the first step (and first evaluation) as at the end, and that the JS heap (after
// global.gc) grows by less than 20 MB. Prints the figures; exits 1 if either check fails. It also
// prints the process's resident memory (process.memoryUsage().rss) every 1,000 steps and its growth
// per 1,000 steps after step 1,000 (by then every pool and allocator arena has settled); that one is
// reported, not checked: it includes Dawn's and the driver's memory, which this engine does not control.
import { loadMnist } from '../src/data/mnist.js';
import { createNodeContext } from '../src/gpu/node.js';
import { Trainer } from '../src/nn/trainer.js';
import { trainLoop } from '../src/nn/loop.js';
import type { NetKind } from '../src/nn/nets.js';
import { NET_KINDS } from '../src/nn/models/builtin.js';
import { failUsage, toolFlags } from './tool-args.js';

const HEAP_LIMIT_MB = 20;
const READ_EVERY = 10;
const EVAL_EVERY = 1000;

const flags = toolFlags(process.argv.slice(2), [
  { name: 'steps', kind: 'int', arg: 'N', help: 'training steps, at least 2 (default 5000)' },
  { name: 'net', kind: 'choice', choices: NET_KINDS, arg: 'NAME', help: 'built-in net to train (default mlp)' },
  { name: 'batch', kind: 'int', arg: 'N', help: 'examples per step (default 100)' },
], 'usage: node --expose-gc dist/tools/soak.js [--steps N] [--net NAME] [--batch N]');
const steps = (flags.get('steps') as number | undefined) ?? 5000;
const net = ((flags.get('net') as string | undefined) ?? 'mlp') as NetKind;
const batch = (flags.get('batch') as number | undefined) ?? 100;
if (steps < 2) failUsage(`--steps ${steps} must be at least 2: give --steps 2 or more`);
if (batch < 1) failUsage(`--batch ${batch} must be at least 1: give --batch 1 or more`);

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) console.log('note: run with node --expose-gc for exact heap figures (without it the heap is measured without a forced collection)');

async function heapMB(): Promise<number> {
  if (gc) {
    // Two passes with a turn of the event loop between: finalizers and weak refs settle.
    gc();
    await new Promise((r) => setTimeout(r, 20));
    gc();
  }
  return process.memoryUsage().heapUsed / 1e6;
}

const mb = (x: number) => `${x.toFixed(2)} MB`;

async function main(): Promise<number> {
  const data = loadMnist({ validation: 5000 });
  const ctx = await createNodeContext();
  const trainer = await Trainer.create(ctx, { net, seed: 1, batch, optimizer: { kind: 'adam', lr: 1e-3 } });
  const val = { count: 1000, images: data.validation.images, labels: data.validation.labels };
  const t0 = performance.now();
  try {
    // Step 1 (with its read-back) and a first evaluation make everything that is made lazily.
    let lastLoss = NaN;
    await trainLoop(trainer, data.train, { steps: 1, seed: 1, onRead: (m) => { lastLoss = m.loss; } });
    const first = lastLoss;
    await trainer.evaluate(val);
    const buffers0 = ctx.liveBuffers;
    const heap0 = await heapMB();
    const rss0 = process.memoryUsage().rss / 1e6;
    const ab0 = process.memoryUsage().arrayBuffers / 1e6;
    console.log(`${net}, batch ${batch}, ${steps} steps on ${ctx.adapterDescription}`);
    console.log(`after step 1: ${buffers0} live GPU buffers, heap ${mb(heap0)}, rss ${mb(rss0)}, loss ${first.toFixed(4)}`);

    let rss1000: number | undefined;
    let maxBuffers = buffers0;
    let minBuffers = buffers0;
    const samples: string[] = [];
    // The CLI's loop in stretches of EVAL_EVERY steps (each ends with its reads delivered), an evaluation between.
    for (let s = 1; s < steps;) {
      const next = Math.min(steps, (Math.floor(s / EVAL_EVERY) + 1) * EVAL_EVERY);
      await trainLoop(trainer, data.train, {
        startStep: s, steps: next - s, seed: 1, readEvery: READ_EVERY, readsInFlight: 1,
        onRead: (m) => { lastLoss = m.loss; },
        onStep: () => {
          maxBuffers = Math.max(maxBuffers, ctx.liveBuffers);
          minBuffers = Math.min(minBuffers, ctx.liveBuffers);
        },
      });
      s = next;
      if (s % EVAL_EVERY === 0) {
        const ev = await trainer.evaluate(val);
        const heap = await heapMB();
        const rss = process.memoryUsage().rss / 1e6;
        rss1000 ??= rss;
        const line = `step ${s}: ${ctx.liveBuffers} live GPU buffers, heap ${mb(heap)} (${heap - heap0 >= 0 ? '+' : ''}${mb(heap - heap0)}), rss ${mb(rss)} (${rss - rss1000 >= 0 ? '+' : ''}${mb(rss - rss1000)} since step 1000), train loss ${lastLoss.toFixed(4)}, validation accuracy ${ev.accuracy.toFixed(3)}, ${((performance.now() - t0) / 1000).toFixed(0)} s`;
        samples.push(line);
        console.log(line);
      }
    }
    await trainer.finish();
    const buffers1 = ctx.liveBuffers;
    const heap1 = await heapMB();
    const rss1 = process.memoryUsage().rss / 1e6;
    const ab1 = process.memoryUsage().arrayBuffers / 1e6;
    const seconds = (performance.now() - t0) / 1000;
    const growth = heap1 - heap0;
    console.log(`after step ${steps}: ${buffers1} live GPU buffers (min ${minBuffers}, max ${maxBuffers} during the run), heap ${mb(heap1)}, rss ${mb(rss1)}, final train loss ${lastLoss.toFixed(4)}`);
    console.log(`heap growth ${mb(growth)} (limit ${HEAP_LIMIT_MB} MB${gc ? '' : ', measured without --expose-gc'}), ArrayBuffer growth ${mb(ab1 - ab0)} (same limit; MNIST's arrays are ${mb(ab0)} of them), rss growth ${mb(rss1 - rss0)}, ${steps} steps in ${seconds.toFixed(1)} s (${(steps / seconds).toFixed(1)} steps/s)`);
    const buffersOk = buffers1 === buffers0 && maxBuffers === buffers0 && minBuffers === buffers0;
    const heapOk = growth < HEAP_LIMIT_MB && ab1 - ab0 < HEAP_LIMIT_MB;
    if (rss1000 !== undefined && steps > EVAL_EVERY) {
      console.log(`resident memory: ${mb(rss1000)} after step ${EVAL_EVERY}, ${mb(rss1)} after step ${steps}: ${(((rss1 - rss1000) / (steps - EVAL_EVERY)) * 1000).toFixed(3)} MB per 1,000 steps`);
    }
    console.log(`live GPU buffers constant: ${buffersOk ? 'yes' : 'NO'}; heap and ArrayBuffer growth under ${HEAP_LIMIT_MB} MB: ${heapOk ? 'yes' : 'NO'}`);
    return buffersOk && heapOk ? 0 : 1;
  } finally {
    trainer.destroy();
    const left = ctx.liveBuffers;
    ctx.destroy();
    console.log(`after trainer.destroy(): ${left} live GPU buffers (the context's shared dummy binding is the only one expected)`);
  }
}

process.exitCode = await main();
