// The buffer planner's figures for each net's training step at the tutorials' batch sizes: planned
// bytes for activations and gradients against the naive sum (a buffer per tensor), once counting the
// values written in place over another tensor (the recurrent gate gradients) as buffers of their own
// and once without them, and the largest shared slots with the tensors that take turns in them.
// Usage: node dist/tools/plan.js [--net softmax|bp|mlp|cnn|rnn] [--slots N] (default: cnn and rnn, 6 slots)
import { createNodeContext } from '../src/gpu/node.js';
import { Trainer } from '../src/nn/trainer.js';
import { NET_DEFAULTS, NETS, type NetName } from '../src/cli/args.js';

const args = process.argv.slice(2);
const usage = 'usage: node dist/tools/plan.js [--net softmax|bp|mlp|cnn|rnn] [--slots N]';
for (let i = 0; i < args.length; i += 2) {
  if (!['--net', '--slots'].includes(args[i]) || args[i + 1] === undefined) {
    console.error(`${args[i]}${args[i + 1] === undefined && args[i].startsWith('--') ? ' needs a value' : ': unknown argument'}; ${usage}`);
    process.exit(2);
  }
}
const pick = (name: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : undefined);
const nets = (pick('net') ? [pick('net')] : ['cnn', 'rnn']) as NetName[];
for (const n of nets) {
  if (!NETS.includes(n)) {
    console.error(`--net ${n}: expected one of ${NETS.join(', ')}`);
    process.exit(2);
  }
}
const showSlots = Number(pick('slots') ?? 6);
if (!Number.isInteger(showSlots) || showSlots < 0) {
  console.error(`--slots ${pick('slots')}: give a whole number of slots to list, e.g. --slots 6`);
  process.exit(2);
}
const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;

const ctx = await createNodeContext();
try {
  for (const net of nets) {
    const d = NET_DEFAULTS[net];
    const trainer = await Trainer.create(ctx, {
      net, seed: 1, batch: d.batch, hidden: d.hidden, layers: d.layers, cell: d.cell, keepProb: d.keepProb,
      optimizer: { kind: d.optimizer, lr: d.lr },
    });
    const { plannedBytes, naiveBytes, inPlaceBytes, slots } = trainer.graph.plan;
    const pct = (naive: number) => `${((plannedBytes / naive) * 100).toFixed(1)}%`;
    console.log(`${net} (batch ${d.batch}): planned ${mb(plannedBytes)} in ${slots.length} slots, ${trainer.graph.dispatchCount} dispatches per step;` +
      ` of ${mb(naiveBytes)} naive with in-place values counted as buffers = ${pct(naiveBytes)},` +
      ` of ${mb(naiveBytes - inPlaceBytes)} naive without them = ${pct(naiveBytes - inPlaceBytes)}`);
    for (const s of [...slots].sort((a, b) => b.bytes - a.bytes).slice(0, showSlots)) {
      console.log(`  slot ${s.index} ${mb(s.bytes)}: ${s.tensors.map((t) => `${t.name} ${mb(t.bytes)}`).join(' | ')}`);
    }
    trainer.destroy();
  }
} finally {
  ctx.destroy();
}
