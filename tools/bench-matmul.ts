// Matmul GFLOPS from timestamp queries (median of timed runs after warm-up), per shape and
// transpose, as a share of the FMA peak measured in the same run (the higher of a reading before the
// products and one after: a reading taken while the machine is slow would inflate every share);
// with --tiles all, each tile variant of the kernel too (what the tuner chooses among) and the
// best; with --operands both, each read from buffers and from textures (src/gpu/operand-textures.ts).
// Usage: node dist/tools/bench-matmul.js [--runs N] [--shapes MxKxN,MxKxN,...] [--tiles default|all] [--operands auto|buffers|textures|both]
import { createNodeContext } from '../src/gpu/node.js';
import { matmul, matmulKernelFor, matmulTileVariants, type MatmulSpec } from '../src/kernels/matmul.js';
import { PassTimer, median } from '../src/gpu/profiler.js';
import { highestPeak, measureFmaPeak } from './fma-peak.js';
import { dispatchGpuTimes } from './bench-common.js';
import { failUsage, toolFlags } from './tool-args.js';

const usage = 'usage: node dist/tools/bench-matmul.js [--runs N] [--shapes MxKxN,MxKxN,...] [--tiles default|all] [--operands auto|buffers|textures|both]';
const flags = toolFlags(process.argv.slice(2), [
  { name: 'runs', kind: 'int', arg: 'N', help: 'timed runs per shape and variant (default 25)' },
  { name: 'shapes', kind: 'string', arg: 'MxKxN,...', help: 'matmul shapes, comma-separated (default: square sizes and the nets\' products)' },
  { name: 'tiles', kind: 'choice', choices: ['default', 'all'], arg: 'default|all', help: 'the default tile only, or every tile variant of the kernel and the best (default: default)' },
  { name: 'operands', kind: 'choice', choices: ['auto', 'buffers', 'textures', 'both'], arg: 'auto|buffers|textures|both', help: 'read A and B as the engine chooses, from buffers, from textures, or each tile both ways (default: auto)' },
], usage);
const runs = (flags.get('runs') as number | undefined) ?? 25;
if (runs < 1) failUsage(`--runs ${runs} must be at least 1: give --runs 1 or more`);
const allTiles = flags.get('tiles') === 'all';
const operands = (flags.get('operands') as string | undefined) ?? 'auto';
const readings: { suffix: string; textures?: boolean }[] = operands === 'both'
  ? [{ suffix: ' buffers', textures: false }, { suffix: ' textures', textures: true }]
  : [{ suffix: '', textures: operands === 'auto' ? undefined : operands === 'textures' }];
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
const peakBefore = await measureFmaPeak(ctx);
console.log(`FMA peak (shaders/fma_peak.wgsl, ${peakBefore.entry}): ${peakBefore.gflops.toFixed(1)} GFLOPS`);
const timer = new PassTimer(ctx, runs + 3);
/** Each product's figures; their shares of the FMA peak are worked out once the second reading is in. */
const rows: { shape: string; name: string; kernel: string; byDefault: number; best?: { tile: string; gflops: number } }[] = [];
for (const [M, K, N] of shapes) {
  for (const transposes of [{}, { transA: true }, { transB: true }] as Partial<MatmulSpec>[]) {
    const spec = { M, N, K, ...transposes };
    const a = ctx.storage(M * K * 4), b = ctx.storage(K * N * 4), c = ctx.storage(M * N * 4);
    ctx.write(a, new Float32Array(M * K).fill(0.5));
    ctx.write(b, new Float32Array(K * N).fill(0.25));
    const kernel = matmulKernelFor(ctx, spec);
    const ids = matmulTileVariants(ctx, spec);
    const tiles = allTiles ? ids : ids.slice(0, 1);
    const gflopsOf = new Map<string, number>();
    for (const [i, id] of tiles.entries()) for (const { suffix, textures } of readings) {
      const tile = (i === 0 ? 'default' : id) + suffix;
      const d = matmul(ctx, { ...spec, variant: i === 0 ? undefined : id, textures }, { a, b, c });
      await d.kernel.ready;
      const ms = median(await dispatchGpuTimes(ctx, timer, d, runs, 3));
      ctx.throwIfFailed('bench');
      gflopsOf.set(tile, (2 * M * N * K) / (ms * 1e6));
      if (allTiles) console.log(`  ${M}x${K}x${N} ${tile}: ${ms.toFixed(3)} ms, ${gflopsOf.get(tile)!.toFixed(2)} GFLOPS`);
    }
    const name = transposes.transA ? 'Aᵀ·B' : transposes.transB ? 'A·Bᵀ' : 'A·B';
    const byDefault = gflopsOf.get(`default${readings[0].suffix}`)!;
    const [bestTile, best] = [...gflopsOf].reduce((x, y) => (y[1] > x[1] ? y : x));
    rows.push({ shape: `${M}x${K}x${N}`, name, kernel, byDefault, best: allTiles ? { tile: bestTile, gflops: best } : undefined });
    console.log(`${M}x${K}x${N}\t${name}\t${kernel}\t${byDefault.toFixed(2)}\t${((100 * byDefault) / peakBefore.gflops).toFixed(1)}% of the first peak reading`);
    for (const x of [a, b, c]) ctx.release(x);
  }
}
const peakAfter = await measureFmaPeak(ctx);
const peak = highestPeak([peakBefore, peakAfter]);
console.log(`FMA peak again: ${peakAfter.gflops.toFixed(1)} GFLOPS; the shares below are of the higher reading, ${peak.gflops.toFixed(1)} GFLOPS (${peak.entry})`);
const share = (gflops: number) => `${((100 * gflops) / peak.gflops).toFixed(1)}%`;
const header = ['M x K x N', 'transposes', 'kernel', 'GFLOPS (default tile)', 'share of FMA peak', ...(allTiles ? ['best tile', 'GFLOPS', 'share of FMA peak'] : [])];
console.log(`\n| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`);
for (const r of rows) {
  const cells = [r.shape, r.name, r.kernel, r.byDefault.toFixed(2), share(r.byDefault), ...(r.best ? [r.best.tile, r.best.gflops.toFixed(2), share(r.best.gflops)] : [])];
  console.log(`| ${cells.join(' | ')} |`);
}
timer.destroy();
ctx.destroy();
