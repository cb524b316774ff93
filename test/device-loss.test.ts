// A device lost mid-training (here destroyed under the library's feet) ends the
// pending read-back with a GpuError naming the loss within seconds, and every later call fails the
// same way at once: no hang, no silent no-op, no raw DOMException. Uses its own device (not the
// shared test context, which other files keep using).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './support/paths.js';
import { createNodeContext } from '../src/gpu/node.js';
import { GpuError, type GpuContext } from '../src/gpu/context.js';
import { Trainer } from '../src/nn/trainer.js';

const B = 8;

function batchData(count: number): { count: number; images: Float32Array; labels: Uint8Array } {
  return {
    count,
    images: Float32Array.from({ length: count * 784 }, (_, i) => ((i * 37) % 256) / 255),
    labels: Uint8Array.from({ length: count }, (_, i) => (i * 7) % 10),
  };
}

/** Settles `p` or fails after `ms`: a hang is a test failure, not a stuck run. */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown; ms: number }> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`HANG: not settled within ${ms} ms`)), ms); });
  try {
    const value = await Promise.race([p, timeout]);
    return { value, ms: performance.now() - t0 };
  } catch (error) {
    if (error instanceof Error && error.message.startsWith('HANG')) throw error;
    return { error, ms: performance.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}

function expectLost(err: unknown, what: RegExp): void {
  expect(err, 'a GpuError').to.be.instanceOf(GpuError);
  const msg = (err as Error).message;
  expect(msg).to.match(/the GPU device was lost \(destroyed/);
  expect(msg).to.match(what);
  expect(msg, 'one line').not.to.include('\n');
}

describe('device loss: a lost device ends training with one clear error, never a hang', function () {
  this.timeout(60_000);
  const data = batchData(64);
  const idx = Uint32Array.from({ length: B }, (_, i) => i);

  async function setup(net: 'mlp' | 'cnn' = 'mlp'): Promise<{ ctx: GpuContext; trainer: Trainer }> {
    const ctx = await createNodeContext();
    const trainer = await Trainer.create(ctx, { net, seed: 3, batch: B, hidden: 16, optimizer: { kind: 'adam', lr: 1e-3 } });
    return { ctx, trainer };
  }

  it('the pending step(true) rejects with a GpuError naming the loss within 5 s; later calls throw at once', async () => {
    const { ctx, trainer } = await setup();
    try {
      for (let s = 0; s < 5; s++) {
        trainer.writeBatch(data, idx);
        trainer.step();
      }
      const first = await within(trainer.step(true), 20_000);
      expect(first.error, String(first.error)).to.equal(undefined);
      expect(Number.isFinite(first.value!.loss)).to.equal(true);

      for (let s = 0; s < 3; s++) trainer.step();
      const pending = trainer.step(true);
      ctx.device.destroy();
      const r = await within(pending, 5_000);
      expectLost(r.error, /^training step 10: /);
      expect(r.ms).to.be.lessThan(5_000);

      // Every later call fails at once with the same clear error (the loss is known by now).
      expect(ctx.deviceLost).to.match(/^destroyed/);
      let thrown: unknown;
      try { trainer.step(); } catch (e) { thrown = e; }
      expectLost(thrown, /^training step 11: /);
      const later = await within((async () => trainer.step(true))(), 5_000);
      expectLost(later.error, /^training step 11: /);
      const ev = await within(trainer.evaluate(data), 5_000);
      expectLost(ev.error, /^evaluation: /);
      const read = await within(ctx.readF32(trainer.paramBuffer('mlp/b1')), 5_000);
      expectLost(read.error, /the GPU device was lost/);
    } finally {
      trainer.destroy();
      ctx.destroy();
    }
    expect(ctx.liveBuffers, 'every buffer released').to.equal(0);
  });

  it('a read-back asked for right after the loss (before it is reported) also rejects, within 5 s', async () => {
    const { ctx, trainer } = await setup();
    try {
      trainer.writeBatch(data, idx);
      await trainer.step(true);
      trainer.step();
      ctx.device.destroy();
      // The loss is not known synchronously: this step is still recorded, and its read-back must not hang.
      const r = await within((async () => trainer.step(true))(), 5_000);
      expectLost(r.error, /^training step 3: /);
    } finally {
      trainer.destroy();
      ctx.destroy();
    }
  });

  it('an evaluation in flight when the device goes rejects within 5 s', async () => {
    const { ctx, trainer } = await setup();
    try {
      const big = batchData(2000);
      await trainer.evaluate(big, 500); // compiles the evaluation graph
      const pending = trainer.evaluate(big);
      ctx.device.destroy();
      const r = await within(pending, 5_000);
      expectLost(r.error, /^evaluation: /);
    } finally {
      trainer.destroy();
      ctx.destroy();
    }
  });

  it('tearing down after a loss mid-evaluation leaves the process sound: 12 rounds with garbage collection, exit 0', () => {
    const script = join(PACKAGE_ROOT, 'dist/test/support/loss-teardown.js');
    const run = spawnSync(process.execPath, ['--expose-gc', script, '12'], { encoding: 'utf8', timeout: 50_000, killSignal: 'SIGKILL', env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' } });
    const output = `${run.stdout}${run.stderr}`;
    expect(run.status, `exit ${run.status} (signal ${run.signal}):\n${output}`).to.equal(0);
    expect(run.stdout).to.match(/^12 rounds, \d+ evaluations ended by the loss$/m);
  });
});
