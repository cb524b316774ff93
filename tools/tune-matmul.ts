// Tunes the matrix products of a few training shapes on this adapter and prints each variant's median
// time (timestamp queries where the adapter has them), the default's and the chosen one's: all in one
// process run, so the ratios compare; absolute times vary between runs on a shared machine.
// Usage: node dist/tools/tune-matmul.js [--repetitions N]
import { createNodeContext } from '../src/gpu/node.js';
import { matmul, type MatmulSpec } from '../src/kernels/matmul.js';
import { MatmulTuner } from '../src/kernels/matmul-tuner.js';
import { MemoryTuningStore } from '../src/gpu/tuning-store.js';
import { toolFlags } from './tool-args.js';

const flags = toolFlags(process.argv.slice(2), [
  { name: 'repetitions', kind: 'int', arg: 'N', help: 'timed runs per variant (default 5)' },
], 'usage: node dist/tools/tune-matmul.js [--repetitions N]');

// The mlp net's products at batch 128 (784 → 256 → 10): forward, dW (+db), dx; and a small batch.
const SHAPES: (Partial<MatmulSpec> & { M: number; N: number; K: number; bias?: boolean })[] = [
  { M: 128, N: 256, K: 784, bias: true, activation: 'relu', label: 'dense1 forward' },
  { M: 784, N: 256, K: 128, transA: true, label: 'dense1 dW' },
  { M: 128, N: 10, K: 256, bias: true, label: 'dense2 forward' },
  { M: 128, N: 256, K: 10, transB: true, label: 'dense2 dx' },
  { M: 256, N: 10, K: 128, transA: true, label: 'dense2 dW' },
  { M: 32, N: 512, K: 512, label: 'batch 32, 512 → 512' },
];

const ctx = await createNodeContext();
const tuner = new MatmulTuner(ctx, { store: new MemoryTuningStore(), repetitions: (flags.get('repetitions') as number | undefined) ?? 5 });
console.log(`adapter: ${ctx.adapterDescription}; timing with ${ctx.hasTimestamps ? 'timestamp queries' : 'the host clock'}`);
const made: GPUBuffer[] = [];
const buf = (floats: number) => {
  const b = ctx.storage(4 * floats);
  made.push(b);
  return b;
};
const labels = new Map<string, string>();
for (const s of SHAPES) {
  const before = new Set(Object.keys(tuner.choices));
  tuner.scope(() => matmul(ctx, s, { a: buf(s.M * s.K), b: buf(s.K * s.N), c: buf(s.M * s.N), bias: s.bias ? buf(s.N) : undefined }));
  await tuner.tunePending();
  for (const k of Object.keys(tuner.choices)) if (!before.has(k)) labels.set(k, s.label!);
}
for (const [key, t] of Object.entries(tuner.choices)) {
  const def = t.ms[t.candidates[0]];
  const best = t.ms[t.variant];
  console.log(`\n${labels.get(key)} (${key}): default ${t.candidates[0]} ${def.toFixed(3)} ms, chosen ${t.variant} ${best.toFixed(3)} ms, ×${(def / best).toFixed(2)}`);
  for (const id of t.candidates) console.log(`  ${id.padEnd(24)} ${t.ms[id]?.toFixed(3) ?? 'failed'} ms`);
}
console.log(`\n${tuner.timings} variants timed for ${tuner.tunedProducts} products`);
for (const b of made) ctx.release(b);
ctx.destroy();
