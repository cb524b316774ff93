// Whole training steps of this build against another checkout's, paired: both train the same net
// in one process (a context each), in blocks of --steps finished steps that alternate between the
// builds, the order flipped every round. Per pair of blocks: the ratio of their median step wall
// times (each step's loss read back, as the bench does) and of their median GPU times (timestamps
// around the step). On a machine whose speed drifts by tens of percent between minutes, the ratios
// of neighbouring blocks say more than either build's own figures. Default tiles (no tuning).
// --threads and --against-threads give each side's software adapter its own thread count
// (LP_NUM_THREADS, read when a context is made); --against . compares this build with itself.
// Usage: node dist/tools/bench-against.js --against DIR [--net mlp|cnn|rnn] [--rounds N] [--steps N] [--threads N] [--against-threads N]
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { failUsage, toolFlags } from './tool-args.js';
import { BENCH_NETS, median, type BenchNet } from './bench-common.js';

const usage = 'usage: node dist/tools/bench-against.js --against DIR [--net mlp|cnn|rnn] [--rounds N] [--steps N] [--threads N] [--against-threads N]';
const flags = toolFlags(process.argv.slice(2), [
  { name: 'against', kind: 'string', arg: 'DIR', help: 'the root of another checkout, built (npm run build)' },
  { name: 'net', kind: 'choice', choices: [...BENCH_NETS], arg: BENCH_NETS.join('|'), help: 'the net, at the bench\'s batch and rate (default mlp)' },
  { name: 'rounds', kind: 'int', arg: 'N', help: 'paired blocks, after one warm-up round (default 30)' },
  { name: 'steps', kind: 'int', arg: 'N', help: 'finished steps per block (default 10)' },
  { name: 'threads', kind: 'int', arg: 'N', help: 'this build\'s software adapter threads (LP_NUM_THREADS; default: the engine\'s choice)' },
  { name: 'against-threads', kind: 'int', arg: 'N', help: 'the other build\'s software adapter threads (default: the same as this build\'s)' },
], usage);
const against = flags.get('against') as string | undefined;
if (!against) failUsage(`--against DIR is required\n${usage}`);
const net = ((flags.get('net') as string | undefined) ?? 'mlp') as BenchNet;
const rounds = (flags.get('rounds') as number | undefined) ?? 30;
const steps = (flags.get('steps') as number | undefined) ?? 10;
if (rounds < 1 || steps < 1) failUsage(`--rounds ${rounds} and --steps ${steps} must be at least 1`);

/** What a build offers this tool: the modules of its dist/, loaded by path. */
interface Build {
  name: string;
  trainer: {
    writeBatch(data: unknown, index: ArrayLike<number>): void;
    step(read: true): Promise<unknown>;
    graph: { dispatchCount: number; encode(enc: GPUCommandEncoder): void };
    destroy(): void;
  };
  ctx: { destroy(): void };
  common: typeof import('./bench-common.js');
  wall: number[];
  gpu: number[];
}

async function load(root: string, name: string): Promise<Build> {
  const imp = (p: string) => import(pathToFileURL(join(resolve(root), 'dist', p)).href);
  const [{ createNodeContext }, { Trainer }, { NET_DEFAULTS, builtinModel }, common] = await Promise.all([
    imp('src/gpu/node.js'), imp('src/nn/trainer.js'), imp('src/nn/models/builtin.js'), imp('tools/bench-common.js'),
  ]);
  const ctx = await createNodeContext();
  const { batch, lr } = common.NET_SETTINGS[net];
  const { hidden, layers, cell, keepProb } = NET_DEFAULTS[net];
  const trainer = await Trainer.create(ctx, { model: builtinModel(net, { hidden, layers, cell, keepProb }), seed: 1, batch, optimizer: { kind: 'adam', lr }, tuning: false });
  return { name, trainer, ctx, common, wall: [], gpu: [] };
}

/** Sets the software adapter threads of the next context made (createNodeContext keeps a set value). */
const useThreads = (n: unknown) => {
  if (n === undefined) return;
  if (!(Number(n) >= 1)) failUsage(`thread counts must be at least 1, got ${n}`);
  process.env.LP_NUM_THREADS = String(n);
};
useThreads(flags.get('threads'));
const here = await load(join(import.meta.dirname, '..', '..'), `this build${flags.get('threads') ? `, ${flags.get('threads')} threads` : ''}`);
useThreads(flags.get('against-threads'));
const builds = [here, await load(against!, `${against!}${flags.get('against-threads') ? `, ${flags.get('against-threads')} threads` : ''}`)];
const data = builds[0].common.trainSplit();
const { batch } = builds[0].common.NET_SETTINGS[net];
let k = 0;
const wallRatio: number[] = [];
const gpuRatio: number[] = [];
for (let r = 0; r <= rounds; r++) {
  const block = new Map<Build, { wall: number; gpu: number }>();
  for (const b of r % 2 ? [...builds].reverse() : builds) {
    const times: number[] = [];
    for (let s = 0; s < steps; s++) {
      const t0 = performance.now();
      b.trainer.writeBatch(data, b.common.batchIndex(k++, batch, data.count));
      await b.trainer.step(true);
      times.push(performance.now() - t0);
    }
    const gpu = median(await b.common.stepGpuTimes(b.ctx as never, b.trainer.graph, steps, median(times) * steps, 'bench-against'));
    block.set(b, { wall: median(times), gpu });
  }
  if (r === 0) continue; // warm-up
  for (const b of builds) {
    b.wall.push(block.get(b)!.wall);
    b.gpu.push(block.get(b)!.gpu);
  }
  wallRatio.push(block.get(builds[1])!.wall / block.get(builds[0])!.wall);
  gpuRatio.push(block.get(builds[1])!.gpu / block.get(builds[0])!.gpu);
}

const quartiles = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[Math.floor((s.length - 1) / 4)].toFixed(3)}–${s[Math.ceil((3 * (s.length - 1)) / 4)].toFixed(3)}`;
};
console.log(`${net}, batch ${batch}: ${rounds} paired blocks of ${steps} finished steps (medians)\n`);
console.log('| build | dispatches | step ms | GPU ms |\n|---|---|---|---|');
for (const b of builds) console.log(`| ${b.name} | ${b.trainer.graph.dispatchCount} | ${median(b.wall).toFixed(3)} | ${median(b.gpu).toFixed(3)} |`);
console.log(`\nother / this: step time ${median(wallRatio).toFixed(3)} (quartiles ${quartiles(wallRatio)}), GPU time ${median(gpuRatio).toFixed(3)} (quartiles ${quartiles(gpuRatio)})`);
for (const b of builds) {
  b.trainer.destroy();
  b.ctx.destroy();
}
