// gentleWait: dawn.node's polling ticks (native callbacks) are spaced by a futex sleep while the
// engine waits, JS callbacks are not, and the global setImmediate is put back afterwards.
import { expect } from 'chai';
import { promisify } from 'node:util';
import { gentleWait } from '../src/gpu/gentle-wait.js';
import { createNodeContext } from '../src/gpu/node.js';
import { BufferUsage, MapMode } from '../src/gpu/flags.js';

/** Counts Atomics.wait calls made while `fn` runs. */
async function countingSleeps<T>(fn: () => Promise<T>): Promise<{ result: T; sleeps: number[] }> {
  const real = Atomics.wait;
  const sleeps: number[] = [];
  Atomics.wait = ((a: Int32Array, i: number, v: number, ms?: number) => {
    sleeps.push(ms ?? Infinity);
    return real(a, i, v, ms);
  }) as typeof Atomics.wait;
  try {
    return { result: await fn(), sleeps };
  } finally {
    Atomics.wait = real;
  }
}

describe('gentleWait (dawn.node polling without a spinning core)', () => {
  it('sleeps before each native tick but the first, never before a JS callback', async () => {
    const native = Math.random; // any native function stands in for dawn.node's tick
    const { sleeps } = await countingSleeps(() => gentleWait(async () => {
      for (let i = 0; i < 3; i++) setImmediate(native);
      for (let i = 0; i < 5; i++) setImmediate(() => undefined);
      await new Promise<void>((r) => setImmediate(() => r())); // (a bare resolver would be a native callback too)
    }));
    expect(sleeps.length, 'one futex sleep per native tick after the first').to.equal(2);
    for (const ms of sleeps) expect(ms).to.be.within(0.05, 1);
  });

  it('puts setImmediate back when the last wait settles, also after a rejection', async () => {
    const before = globalThis.setImmediate;
    let inner: typeof setImmediate | undefined;
    await gentleWait(async () => {
      inner = globalThis.setImmediate;
      // a nested wait keeps the wrapper until the outer one settles
      await gentleWait(async () => undefined);
      expect(globalThis.setImmediate).to.equal(inner);
    });
    expect(inner).to.not.equal(before);
    expect(globalThis.setImmediate).to.equal(before);
    let caught: unknown;
    try {
      await gentleWait(() => Promise.reject(new Error('map failed')));
    } catch (e) {
      caught = e;
    }
    expect((caught as Error).message).to.equal('map failed');
    expect(globalThis.setImmediate).to.equal(before);
  });

  it('keeps util.promisify(setImmediate) working meanwhile', async () => {
    await gentleWait(async () => {
      expect(await promisify(setImmediate)('value')).to.equal('value');
    });
  });

  it('a Node context waits gently: a GPU read-back arrives, with futex sleeps in place of spinning', async () => {
    const ctx = await createNodeContext();
    try {
      const src = ctx.upload(new Float32Array([1, 2, 3, 4]));
      const dst = ctx.createBuffer(16, BufferUsage.MAP_READ | BufferUsage.COPY_DST);
      const enc = ctx.device.createCommandEncoder();
      enc.copyBufferToBuffer(src, 0, dst, 0, 16);
      ctx.device.queue.submit([enc.finish()]);
      await ctx.wait(() => dst.mapAsync(MapMode.READ));
      expect(Array.from(new Float32Array(dst.getMappedRange().slice(0)))).to.deep.equal([1, 2, 3, 4]);
      dst.unmap();
      // spinWait opts out: the context then just awaits
      const spinning = await createNodeContext({ spinWait: true });
      try {
        const { sleeps } = await countingSleeps(() => spinning.wait(() => spinning.device.queue.onSubmittedWorkDone()));
        expect(sleeps).to.deep.equal([]);
      } finally {
        spinning.destroy();
      }
    } finally {
      ctx.destroy();
    }
  });
});
