// What --checkpoint-every costs, measured in one process (so the ratio holds on a shared machine):
//   node dist/tools/bench-checkpoint.js [--net rnn] [--every 500] [--blocks 5] [--block-steps 40]
// Trains the net as the CLI does (its default flags, a read-back every 10 steps, one read in flight)
// in blocks of --block-steps steps, and after each block writes the training state exactly as
// --checkpoint-every does (GPU readback, CRC-32, temp file, fsync, rotation, rename). Blocks and
// writes alternate, so machine load hits both alike. Prints the median step time, the median write
// time (the first write, which also fingerprints the training set and checks the kept files, is
// shown apart) and the share of training time that one write per --every steps adds.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from '../src/cli/args.js';
import { RunKeeper } from '../src/cli/resume.js';
import { loadMnist } from '../src/data/mnist.js';
import { createNodeContext } from '../src/gpu/node.js';
import { median } from '../src/gpu/profiler.js';
import { builtinModel } from '../src/nn/models/builtin.js';
import { Trainer } from '../src/nn/trainer.js';
import { trainLoop } from '../src/nn/loop.js';

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

async function main(): Promise<void> {
  const net = flag('net', 'rnn');
  const every = Number(flag('every', '500'));
  const blocks = Number(flag('blocks', '5'));
  const blockSteps = Number(flag('block-steps', '40'));
  const dir = mkdtempSync(join(tmpdir(), 'bench-checkpoint-'));
  const argv = ['--net', net, '--checkpoint-every', String(every), '--save', join(dir, `${net}.state.safetensors`)];
  const args = parseArgs(argv);
  const data = loadMnist({ validation: args.val });
  const model = builtinModel(args.net!, { hidden: args.hidden, layers: args.layers, cell: args.cell, keepProb: args.keepProb });
  const ctx = await createNodeContext();
  const trainer = await Trainer.create(ctx, { model, seed: args.seed, batch: args.batch, optimizer: { kind: args.optimizer, lr: args.lr } });
  const keeper = new RunKeeper(args, argv, model, data, Math.floor(data.train.count / args.batch), undefined, () => {});
  try {
    await trainLoop(trainer, data.train, { steps: 10, readEvery: 10, readsInFlight: 1 }); // warm-up: pipelines, first reads
    await trainer.finish();
    let step = 10;
    const stepMs: number[] = [];
    const writeMs: number[] = [];
    for (let b = 0; b <= blocks; b++) {
      let t = performance.now();
      await trainLoop(trainer, data.train, { steps: blockSteps, startStep: step, readEvery: 10, readsInFlight: 1 });
      await trainer.finish();
      stepMs.push((performance.now() - t) / blockSteps);
      step += blockSteps;
      t = performance.now();
      await keeper.write(trainer, step);
      writeMs.push(performance.now() - t);
    }
    const first = writeMs.shift()!;
    const w = median(writeMs);
    const s = median(stepMs);
    const bytes = trainer.store.names.length;
    console.log(`${net} (batch ${args.batch}, ${bytes} parameter tensors): median step ${s.toFixed(1)} ms over ${stepMs.length} blocks of ${blockSteps} steps; ` +
      `state write median ${w.toFixed(1)} ms over ${writeMs.length} (first write ${first.toFixed(1)} ms, with the data fingerprint and the kept-file check)`);
    console.log(`--checkpoint-every ${every}: ${((100 * w) / (every * s)).toFixed(3)}% of training time per write; first write alone ${((100 * first) / (every * s)).toFixed(3)}% of ${every} steps`);
  } finally {
    trainer.destroy();
    ctx.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
