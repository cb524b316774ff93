// Matmul GFLOPS from timestamp queries: median of timed runs after warm-up, per shape and variant.
// Usage: node dist/tools/bench-matmul.js [--runs N] [--shapes MxKxN,MxKxN,...]
import { createNodeContext } from '../src/gpu/node.js';
import { matmul, type MatmulSpec } from '../src/kernels/matmul.js';
import { encodeDispatch } from '../src/gpu/dispatch.js';
import { PassTimer, median } from '../src/gpu/profiler.js';
import { failUsage, toolFlags } from './tool-args.js';

const flags = toolFlags(process.argv.slice(2), [
  { name: 'runs', kind: 'int', arg: 'N', help: 'timed runs per shape and variant (default 25)' },
  { name: 'shapes', kind: 'string', arg: 'MxKxN,...', help: 'matmul shapes, comma-separated (default: square sizes and the nets\' products)' },
], 'usage: node dist/tools/bench-matmul.js [--runs N] [--shapes MxKxN,MxKxN,...]');
const runs = (flags.get('runs') as number | undefined) ?? 25;
if (runs < 1) failUsage(`--runs ${runs} must be at least 1: give --runs 1 or more`);
const shapeArgs = ((flags.get('shapes') as string | undefined) ?? '').split(',').filter((s) => s.length > 0);
for (const s of shapeArgs) {
  if (!/^\d+x\d+x\d+$/.test(s) || s.split('x').some((v) => Number(v) < 1)) failUsage(`--shapes ${JSON.stringify(s)} is not MxKxN: give positive sizes, e.g. --shapes 512x512x512`);
}
// M x K x N: square sizes, then the MNIST nets' products (mlp forward, its logits, cnn dense, lstm step)
const shapes = shapeArgs.length
  ? shapeArgs.map((s) => s.split('x').map(Number) as [number, number, number])
  : ([[512, 512, 512], [1024, 1024, 1024], [100, 784, 256], [100, 256, 10], [50, 3136, 1024], [100, 156, 512]] as [number, number, number][]);

const ctx = await createNodeContext();
console.log(`adapter: ${ctx.adapterDescription}`);
const timer = new PassTimer(ctx, runs + 3);
const rows: string[][] = [];
for (const [M, K, N] of shapes) {
  for (const variant of [{}, { transA: true }, { transB: true }] as Partial<MatmulSpec>[]) {
    const a = ctx.storage(M * K * 4), b = ctx.storage(K * N * 4), c = ctx.storage(M * N * 4);
    ctx.write(a, new Float32Array(M * K).fill(0.5));
    ctx.write(b, new Float32Array(K * N).fill(0.25));
    const d = matmul(ctx, { M, N, K, ...variant }, { a, b, c });
    await d.kernel.ready;
    const times: number[] = [];
    let warmMs = 0;
    for (let round = 0; round < 2; round++) {
      // round 0 warms up (shader compile caches, page faults); round 1 is measured
      timer.reset();
      const enc = ctx.device.createCommandEncoder();
      const n = round === 0 ? 3 : runs;
      for (let i = 0; i < n; i++) {
        const pass = enc.beginComputePass(timer.pass(`${i}`));
        encodeDispatch(pass, d);
        pass.end();
      }
      timer.resolve(enc);
      const t0 = performance.now();
      ctx.device.queue.submit([enc.finish()]);
      // dawn.node polls on the main thread while a read is pending, taking a core from a
      // software adapter: sleep through most of the expected GPU time before reading.
      if (round === 1 && warmMs > 0) await new Promise((r) => setTimeout(r, (warmMs / 3) * n * 0.9));
      const t = await timer.read();
      if (round === 0) warmMs = performance.now() - t0;
      if (round === 1) times.push(...t.map((x) => x.ns));
    }
    ctx.throwIfFailed('bench');
    const ns = median(times);
    const name = variant.transA ? 'Aᵀ·B' : variant.transB ? 'A·Bᵀ' : 'A·B';
    rows.push([`${M}x${K}x${N}`, name, (ns / 1e6).toFixed(3), ((2 * M * N * K) / ns).toFixed(2)]);
    console.log(rows[rows.length - 1].join('\t'));
    for (const x of [a, b, c]) ctx.release(x);
  }
}
console.log('\n| M x K x N | variant | median ms | GFLOPS |\n|---|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
timer.destroy();
ctx.destroy();
