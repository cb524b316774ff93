// GPU time of a dense layer's weight gradient and its optimizer update: the product that stores the
// gradient followed by the update kernel, against the product with the update in its epilogue (what
// src/graph/fuse-updates.ts compiles), per tile variant. Medians of rounds of timestamp-timed runs.
// Usage: node dist/tools/bench-update.js [--shape IN,OUT,BATCH] [--optimizer adam|sgd|momentum] [--rounds N]
import { createNodeContext } from '../src/gpu/node.js';
import { adamEpilogue, prepareAdam, prepareSgd, sgdEpilogue } from '../src/kernels/optimizer.js';
import { matmul, matmulTileVariants, type MatmulSpec } from '../src/kernels/matmul.js';
import { createStepCounter } from '../src/kernels/step.js';
import { PassTimer, median } from '../src/gpu/profiler.js';
import type { Dispatch } from '../src/gpu/dispatch.js';
import { dispatchGpuTimes } from './bench-common.js';
import { failUsage, toolFlags } from './tool-args.js';

const flags = toolFlags(process.argv.slice(2), [
  { name: 'shape', kind: 'string', arg: 'IN,OUT,BATCH', help: 'the layer: weight [IN, OUT], batch (default 784,256,100: the mlp\'s first layer; the cnn\'s fc1 is 3136,1024,50)' },
  { name: 'optimizer', kind: 'choice', choices: ['adam', 'sgd', 'momentum'], arg: 'adam|sgd|momentum', help: 'the update (default adam)' },
  { name: 'rounds', kind: 'int', arg: 'N', help: 'rounds of 15 timed runs each, the median of their medians (default 5)' },
], 'usage: node dist/tools/bench-update.js [--shape IN,OUT,BATCH] [--optimizer adam|sgd|momentum] [--rounds N]');
const shape = ((flags.get('shape') as string | undefined) ?? '784,256,100').split(',').map(Number);
if (shape.length !== 3 || !shape.every((v) => Number.isInteger(v) && v > 0)) failUsage(`--shape ${flags.get('shape')}: give three positive integers, IN,OUT,BATCH`);
const [M, N, K] = shape;
if (N % 4 !== 0) failUsage(`--shape: OUT (${N}) must be a multiple of 4 for the update to run in the product's epilogue`);
const optimizer = (flags.get('optimizer') as string | undefined) ?? 'adam';
const rounds = Math.max(1, (flags.get('rounds') as number | undefined) ?? 5);

const ctx = await createNodeContext();
console.log(`adapter: ${ctx.adapterDescription}`);
console.log(`dW = xᵀ·dz for a weight [${M}, ${N}] over a batch of ${K}, then ${optimizer}; GPU ms, medians of ${rounds} rounds`);
const filled = (n: number, v: number) => ctx.upload(new Float32Array(n).fill(v));
const x = filled(K * M, 0.01), dz = filled(K * N, 0.01), grad = filled(M * N, 0);
const w = filled(M * N, 0.01), m = filled(M * N, 0), v = filled(M * N, 0.1);
const step = createStepCounter(ctx, 5);
const timer = new PassTimer(ctx, 40);
const time = async (d: Dispatch) => {
  await d.kernel.ready;
  const medians: number[] = [];
  for (let r = 0; r < rounds; r++) medians.push(median(await dispatchGpuTimes(ctx, timer, d, 15, 3)));
  return median(medians);
};
const lr = 1e-3;
const momentum = optimizer === 'momentum' ? 0.9 : undefined;
const update = optimizer === 'adam'
  ? prepareAdam(ctx, { n: M * N, lr }, { param: w, grad, m, v, step })
  : prepareSgd(ctx, { n: M * N, lr, momentum }, { param: w, grad, accum: momentum === undefined ? undefined : m });
const epilogue = () => (optimizer === 'adam'
  ? adamEpilogue(ctx, { rows: M, cols: N, lr }, { param: w, m, v, step })
  : sgdEpilogue(ctx, { rows: M, cols: N, lr, momentum }, { param: w, accum: momentum === undefined ? undefined : m }));
const updateMs = await time(update);
console.log(`\nthe update kernel alone: ${updateMs.toFixed(3)} ms\n`);
console.log('| tile | product | product + update kernel | product with the update in its epilogue | fused / apart |\n|---|---|---|---|---|');
const spec: MatmulSpec = { M, N, K, transA: true };
for (const variant of matmulTileVariants(ctx, spec)) {
  const plain = await time(matmul(ctx, { ...spec, variant }, { a: x, b: dz, c: grad }));
  const fused = await time(matmul(ctx, { ...spec, variant, epilogue: epilogue() }, { a: x, b: dz, c: w }));
  console.log(`| ${variant} | ${plain.toFixed(3)} | ${(plain + updateMs).toFixed(3)} | ${fused.toFixed(3)} | ${(fused / (plain + updateMs)).toFixed(2)} |`);
}
ctx.throwIfFailed('bench-update');
ctx.destroy();
