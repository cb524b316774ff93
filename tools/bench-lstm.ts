// GPU time per training step of the rnn net's recurrent layer (LSTM B=100, T=28, I=28, H=128, many-to-one,
// no input gradient: the first layer reads the images), forward and backward, from timestamp queries:
// median of timed steps after warm-up.
// Usage: node dist/tools/bench-lstm.js [--runs N] [--cell lstm|gru|rnn] [--layers L] [--T 28 --B 100 --I 28 --H 128]
//        [--fused]       LSTM steps as one fused kernel (recurrent matmul + cell) instead of matmul + cell kernel
//        [--cell-kernels] LSTM: a matmul and a cell kernel per step, not the cell as the matmul's epilogue (the
//                        default where the adapter has subgroups)
//        [--breakdown]   also time every dispatch in its own pass and sum by kind (slower; adds pass overhead)
import { createNodeContext } from '../src/gpu/node.js';
import { prepareRecurrentStack, recurrentInit, type RecurrentCell } from '../src/kernels/recurrent.js';
import { DispatchEncoder, type Dispatch } from '../src/gpu/dispatch.js';
import { PassTimer, median } from '../src/gpu/profiler.js';
import { failUsage, toolFlags } from './tool-args.js';

const flags = toolFlags(process.argv.slice(2), [
  { name: 'runs', kind: 'int', arg: 'N', help: 'timed steps, at least 20 (default 25)' },
  { name: 'T', kind: 'int', arg: 'N', help: 'time steps (default 28)' },
  { name: 'B', kind: 'int', arg: 'N', help: 'batch (default 100)' },
  { name: 'I', kind: 'int', arg: 'N', help: 'input width (default 28)' },
  { name: 'H', kind: 'int', arg: 'N', help: 'hidden units (default 128)' },
  { name: 'layers', kind: 'int', arg: 'N', help: 'stacked cells (default 1)' },
  { name: 'cell', kind: 'choice', choices: ['lstm', 'gru', 'rnn'], arg: 'lstm|gru|rnn', help: 'recurrent cell (default lstm)' },
  { name: 'breakdown', kind: 'bool', help: 'time each part of a step' },
  { name: 'fused', kind: 'bool', help: 'the fused step kernels instead of matmul + cell per step' },
  { name: 'cell-kernels', kind: 'bool', help: 'LSTM: a matmul and a cell kernel per step, not the cell in the matmul\'s epilogue' },
], 'usage: node dist/tools/bench-lstm.js [--runs N] [--T N] [--B N] [--I N] [--H N] [--layers N] [--cell lstm|gru|rnn] [--breakdown] [--fused] [--cell-kernels]');
const opt = (name: string, def: number): number => {
  const v = (flags.get(name) as number | undefined) ?? def;
  if (v < 1) failUsage(`--${name} ${v} must be at least 1: give --${name} 1 or more`);
  return v;
};
const runs = Math.max(20, opt('runs', 25));
const T = opt('T', 28), B = opt('B', 100), I = opt('I', 28), H = opt('H', 128), layers = opt('layers', 1);
const cell = ((flags.get('cell') as string | undefined) ?? 'lstm') as RecurrentCell;
const breakdown = flags.get('breakdown') === true;
const fused = flags.get('fused') === true;
const cellInMatmul = flags.get('cell-kernels') !== true;

const ctx = await createNodeContext();
console.log(`adapter: ${ctx.adapterDescription}`);
console.log(`${cell} ×${layers}: T=${T} B=${B} I=${I} H=${H}, many-to-one, ${fused ? 'fused steps' : cellInMatmul && cell === 'lstm' ? 'the cell in the matmul where the adapter allows' : 'matmul + cell per step'}, ${runs} timed steps`);

let seed = 1;
const rand = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 4294967296;
};
const hidden = Array(layers).fill(H);
const x = ctx.storage(T * B * I * 4, 'x');
ctx.write(x, Float32Array.from({ length: T * B * I }, () => rand()));
const params = hidden.map((h, l) => {
  const p = recurrentInit(cell, l === 0 ? I : hidden[l - 1], h, rand);
  return { w: ctx.upload(p.w), b: ctx.upload(p.b) };
});
const stack = prepareRecurrentStack(ctx, { cell, T, B, I, hidden, gradFrom: 'last', inputGrad: false, fused, cellInMatmul }, { x, params });
ctx.write(stack.dy, Float32Array.from({ length: B * H }, () => rand() - 0.5));
await Promise.all([...stack.forward, ...stack.backward].map((d) => d.kernel.ready));
console.log(`dispatches: forward ${stack.forward.length}, backward ${stack.backward.length}`);

const timer = new PassTimer(ctx, Math.max(2 * runs, breakdown ? stack.forward.length + stack.backward.length : 0));

async function timeSteps(n: number): Promise<{ fwd: number[]; bwd: number[] }> {
  timer.reset();
  const enc = ctx.device.createCommandEncoder();
  const dispatches = new DispatchEncoder(enc);
  for (let i = 0; i < n; i++) {
    for (const [name, ds] of [['fwd', stack.forward], ['bwd', stack.backward]] as [string, Dispatch[]][]) dispatches.encode(ds, timer.pass(name));
  }
  timer.resolve(enc);
  ctx.device.queue.submit([enc.finish()]);
  const t = await timer.read();
  return { fwd: t.filter((p) => p.label === 'fwd').map((p) => p.ns), bwd: t.filter((p) => p.label === 'bwd').map((p) => p.ns) };
}

await timeSteps(3); // warm-up
const { fwd, bwd } = await timeSteps(runs);
ctx.throwIfFailed('bench-lstm');
const ms = (ns: number) => (ns / 1e6).toFixed(3);
const flops = (ds: Dispatch[]) => ds.reduce((s, d) => s + (d.flops ?? 0), 0);
console.log(`\n| ${cell} T=${T} B=${B} I=${I} H=${H} | median ms | min ms | GFLOPS (matmul flops / median) |\n|---|---|---|---|`);
console.log(`| forward | ${ms(median(fwd))} | ${ms(Math.min(...fwd))} | ${(flops(stack.forward) / median(fwd)).toFixed(2)} |`);
console.log(`| backward | ${ms(median(bwd))} | ${ms(Math.min(...bwd))} | ${(flops(stack.backward) / median(bwd)).toFixed(2)} |`);
const step = fwd.map((f, i) => f + bwd[i]);
console.log(`| step | ${ms(median(step))} | ${ms(Math.min(...step))} | ${((flops(stack.forward) + flops(stack.backward)) / median(step)).toFixed(2)} |`);

if (breakdown) {
  // every dispatch in its own pass; median over rounds, summed by kind (the label without the layer/step)
  const all = [...stack.forward, ...stack.backward];
  const perKind = new Map<string, number[][]>();
  const rounds = 7;
  for (let r = 0; r < rounds; r++) {
    timer.reset();
    const enc = ctx.device.createCommandEncoder();
    const dispatches = new DispatchEncoder(enc);
    for (const [i, d] of all.entries()) dispatches.encode([d], timer.pass(`${i}`));
    timer.resolve(enc);
    ctx.device.queue.submit([enc.finish()]);
    const t = await timer.read();
    const sums = new Map<string, number>();
    for (const [i, d] of all.entries()) {
      const kind = `${i < stack.forward.length ? 'fwd' : 'bwd'} ${d.label.replace(/^.*layer \d+ /, '').replace(/ t=\d+$/, '')}`;
      sums.set(kind, (sums.get(kind) ?? 0) + t[i].ns);
    }
    for (const [k, v] of sums) {
      if (!perKind.has(k)) perKind.set(k, [[]]);
      perKind.get(k)![0].push(v);
    }
  }
  console.log('\n| dispatch kind (summed over steps) | count | median ms |\n|---|---|---|');
  for (const [k, [v]] of perKind) {
    const count = all.filter((d, i) => `${i < stack.forward.length ? 'fwd' : 'bwd'} ${d.label.replace(/^.*layer \d+ /, '').replace(/ t=\d+$/, '')}` === k).length;
    console.log(`| ${k} | ${count} | ${ms(median(v))} |`);
  }
}
timer.destroy();
ctx.destroy();
