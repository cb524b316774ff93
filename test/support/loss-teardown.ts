// Run as a child process by the device-loss test: rounds of "an evaluation in flight, the device
// destroyed under it, everything torn down", with a garbage collection after each. A buffer
// destroyed while its map was still pending made Dawn abort (often at exit), so the parent
// checks this process's exit code, not only what it printed.
import { createNodeContext } from '../../src/gpu/node.js';
import { GpuError } from '../../src/gpu/context.js';
import { Trainer } from '../../src/nn/trainer.js';

const rounds = Number(process.argv[2] ?? 10);
const count = 2000;
const data = {
  count,
  images: Float32Array.from({ length: count * 784 }, (_, i) => ((i * 37) % 256) / 255),
  labels: Uint8Array.from({ length: count }, (_, i) => (i * 7) % 10),
};
const collect = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
let lost = 0;
for (let round = 0; round < rounds; round++) {
  const ctx = await createNodeContext();
  const trainer = await Trainer.create(ctx, { net: 'mlp', seed: 3, batch: 8, hidden: 16, optimizer: { kind: 'adam', lr: 1e-3 } });
  await trainer.evaluate(data, 500); // compiles the evaluation graph
  const pending = trainer.evaluate(data);
  // Destroy at a different point of the evaluation each round: at once, or a few ms in.
  if (round % 2 === 1) await new Promise((resolve) => setTimeout(resolve, round % 5));
  ctx.device.destroy();
  try {
    await pending;
  } catch (e) {
    if (!(e instanceof GpuError) || !/device was lost/.test(e.message)) throw e;
    lost++;
  }
  trainer.destroy();
  ctx.destroy();
  collect();
}
console.log(`${rounds} rounds, ${lost} evaluations ended by the loss`);
