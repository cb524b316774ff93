// The buffer planner's figures for each net's training step at the tutorials' batch sizes: planned
// bytes for activations and gradients against the naive sum (a buffer per tensor), once counting the
// values written in place over another tensor (the recurrent gate gradients) as buffers of their own
// and once without them, and the largest shared slots with the tensors that take turns in them.
// Usage: node dist/tools/plan.js [--net softmax|bp|mlp|cnn|rnn] [--slots N] (default: cnn and rnn, 6 slots)
import { createNodeContext } from '../src/gpu/node.js';
import { Trainer } from '../src/nn/trainer.js';
import { NET_DEFAULTS, NETS, type NetName } from '../src/cli/args.js';
import { failUsage, toolFlags } from './tool-args.js';

const flags = toolFlags(process.argv.slice(2), [
  { name: 'net', kind: 'choice', choices: NETS, arg: 'NAME', help: 'the net to plan (default: cnn and rnn)' },
  { name: 'slots', kind: 'int', arg: 'N', help: 'largest shared slots to list per net (default 6)' },
], 'usage: node dist/tools/plan.js [--net softmax|bp|mlp|cnn|rnn] [--slots N]');
const nets = (flags.has('net') ? [flags.get('net')] : ['cnn', 'rnn']) as NetName[];
const showSlots = (flags.get('slots') as number | undefined) ?? 6;
if (showSlots < 0) failUsage(`--slots ${showSlots} is negative: give a whole number of slots to list, e.g. --slots 6`);
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
