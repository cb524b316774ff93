// GPU time of a built-in net's training step compiled with the graph's fusion passes and without
// (src/graph/fuse-updates.ts, fuse-activation-grads.ts, fuse-accuracy.ts), the two compilations
// alternating in one process: each op timed in a pass of its own, medians over rounds. Default
// tiles (no tuning).
// Usage: node dist/tools/bench-fusion.js [--net mlp|cnn|rnn|bp|softmax] [--rounds N] [--apart updates|activations|accuracy|all]
import { createNodeContext } from '../src/gpu/node.js';
import { builtinModel, NET_DEFAULTS, NET_KINDS, type NetKind } from '../src/nn/models/builtin.js';
import { ParamStore } from '../src/nn/params.js';
import { CompiledGraph, type CompileOptions } from '../src/graph/recorder.js';
import { createStepCounter } from '../src/kernels/step.js';
import { PassTimer, median } from '../src/gpu/profiler.js';
import { toolFlags } from './tool-args.js';

const flags = toolFlags(process.argv.slice(2), [
  { name: 'net', kind: 'choice', choices: [...NET_KINDS], arg: NET_KINDS.join('|'), help: 'the net (default cnn)' },
  { name: 'rounds', kind: 'int', arg: 'N', help: 'timed steps of each compilation, alternating (default 9)' },
  { name: 'apart', kind: 'choice', choices: ['updates', 'activations', 'accuracy', 'all'], arg: 'updates|activations|accuracy|all', help: 'which passes the second compilation leaves out (default all)' },
], 'usage: node dist/tools/bench-fusion.js [--net NAME] [--rounds N] [--apart updates|activations|accuracy|all]');
const net = ((flags.get('net') as string | undefined) ?? 'cnn') as NetKind;
const rounds = Math.max(1, (flags.get('rounds') as number | undefined) ?? 9);
const apart = (flags.get('apart') as string | undefined) ?? 'all';
const without: Pick<CompileOptions, 'fuseUpdates' | 'fuseActivationGrads' | 'fuseAccuracy'> = {
  fuseUpdates: apart !== 'updates' && apart !== 'all',
  fuseActivationGrads: apart !== 'activations' && apart !== 'all',
  fuseAccuracy: apart !== 'accuracy' && apart !== 'all',
};

const ctx = await createNodeContext();
console.log(`adapter: ${ctx.adapterDescription}`);
const d = NET_DEFAULTS[net];
interface Side {
  name: string;
  graph: CompiledGraph;
  timer: PassTimer;
  byOp: Map<string, number[]>;
  totals: number[];
}
const sides: Side[] = [];
for (const [name, fusions] of [['fused', {}], [`without ${apart === 'all' ? 'any pass' : `the ${apart} pass`}`, without]] as const) {
  const store = new ParamStore(ctx, 1);
  const built = builtinModel(net, { hidden: d.hidden, layers: d.layers, cell: d.cell, keepProb: d.keepProb }).build(store, d.batch, true, 1);
  const graph = new CompiledGraph(ctx, built.graph, { loss: built.loss, optimizer: { kind: d.optimizer, lr: d.lr }, stepCounter: createStepCounter(ctx, 0), incrementStep: true, ...fusions });
  await graph.ready();
  ctx.write(graph.bufferOf(built.x), Float32Array.from({ length: built.x.size }, (_, i) => (i % 97) / 97));
  sides.push({ name, graph, timer: new PassTimer(ctx, graph.ops.length), byOp: new Map(), totals: [] });
}

/** One step; with `timed`, each op in a timed pass of its own. */
async function step(side: Side, timed: boolean): Promise<void> {
  const enc = ctx.device.createCommandEncoder();
  side.timer.reset();
  side.graph.encode(enc, timed ? side.timer : undefined);
  if (timed) side.timer.resolve(enc);
  ctx.device.queue.submit([enc.finish()]);
  if (!timed) return ctx.wait(() => ctx.device.queue.onSubmittedWorkDone());
  let total = 0;
  for (const pass of await side.timer.read()) {
    const ms = pass.ns / 1e6;
    total += ms;
    side.byOp.set(pass.label, [...(side.byOp.get(pass.label) ?? []), ms]);
  }
  side.totals.push(total);
}

for (const side of sides) for (let i = 0; i < 3; i++) await step(side, false);
for (let r = 0; r < rounds; r++) for (const side of sides) await step(side, true);
ctx.throwIfFailed('bench-fusion');
const [fused, other] = sides;
const ms = (xs?: number[]) => (xs ? median(xs).toFixed(3) : '–');
console.log(`\n${net}, batch ${d.batch}: GPU ms per op (each in a pass of its own), medians of ${rounds} alternating rounds\n`);
console.log(`| op | ${fused.name} | ${other.name} |\n|---|---|---|`);
for (const label of new Set([...fused.byOp.keys(), ...other.byOp.keys()])) console.log(`| ${label} | ${ms(fused.byOp.get(label))} | ${ms(other.byOp.get(label))} |`);
console.log(`| **step** (${fused.graph.dispatchCount} and ${other.graph.dispatchCount} dispatches) | ${ms(fused.totals)} | ${ms(other.totals)} |`);
console.log(`\nfused / without: ${(median(fused.totals) / median(other.totals)).toFixed(3)}; planned MB ${(fused.graph.plan.plannedBytes / 1e6).toFixed(2)} and ${(other.graph.plan.plannedBytes / 1e6).toFixed(2)}`);
ctx.destroy();
