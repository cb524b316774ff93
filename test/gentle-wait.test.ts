// gentleWait: dawn.node's polling ticks (native callbacks) are spaced by a futex sleep while the
// engine waits, JS callbacks are not, and the global setImmediate is put back afterwards.
import { expect } from 'chai';
import { promisify } from 'node:util';
import { gentleWait } from '../src/gpu/gentle-wait.js';
import { createNodeContext, waitsGently } from '../src/gpu/node.js';
import { BufferUsage, MapMode } from '../src/gpu/flags.js';
import type { GpuContext } from '../src/gpu/context.js';

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

/** Counts the native callbacks (dawn.node's polling ticks) handed to setImmediate while `fn` runs. */
async function countingTicks<T>(fn: () => Promise<T>): Promise<{ result: T; ticks: number }> {
  const real = globalThis.setImmediate;
  let ticks = 0;
  const counting = (cb: (...a: unknown[]) => void, ...args: unknown[]) => {
    if (/\{\s*\[native code\]\s*\}\s*$/.test(Function.prototype.toString.call(cb))) ticks++;
    return real(cb, ...args);
  };
  Object.defineProperty(counting, promisify.custom, { value: (real as unknown as Record<symbol, unknown>)[promisify.custom] });
  globalThis.setImmediate = counting as typeof setImmediate;
  try {
    return { result: await fn(), ticks };
  } finally {
    globalThis.setImmediate = real;
  }
}

/**
 * Submits enough copying (8 × 32 MiB) that a read-back of the last copy's target stays pending for
 * many polling ticks, then waits for that map through the context; returns the first value read.
 */
async function waitForSlowMap(ctx: GpuContext): Promise<number> {
  const bytes = 32 << 20;
  const src = ctx.storage(bytes);
  const mid = ctx.storage(bytes);
  const dst = ctx.createBuffer(16, BufferUsage.MAP_READ | BufferUsage.COPY_DST);
  ctx.write(src, new Float32Array([42]));
  try {
    const enc = ctx.device.createCommandEncoder();
    for (let i = 0; i < 8; i++) enc.copyBufferToBuffer(i % 2 ? mid : src, 0, i % 2 ? src : mid, 0, bytes);
    enc.copyBufferToBuffer(src, 0, dst, 0, 16);
    ctx.device.queue.submit([enc.finish()]);
    await ctx.wait(() => dst.mapAsync(MapMode.READ));
    const first = new Float32Array(dst.getMappedRange().slice(0))[0];
    dst.unmap();
    return first;
  } finally {
    for (const b of [src, mid, dst]) ctx.release(b);
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

  it('a Node context waits gently by default on a software adapter only; spinWait decides where given', () => {
    expect(waitsGently(true), 'software adapter, by default').to.equal(true);
    expect(waitsGently(false), 'GPU, by default').to.equal(false);
    expect(waitsGently(true, true), 'software adapter, spinWait: true').to.equal(false);
    expect(waitsGently(false, false), 'GPU, spinWait: false').to.equal(true);
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

  it('while a map is pending, the gentle context sleeps between polling ticks and the spin context never sleeps', async () => {
    const gentle = await createNodeContext();
    const spinning = await createNodeContext({ spinWait: true });
    try {
      const g = await countingSleeps(() => countingTicks(() => waitForSlowMap(gentle)));
      expect(g.result.result, 'the gentle read-back').to.equal(42);
      // the map stayed pending over several ticks, and every tick but the first was preceded by a sleep
      expect(g.result.ticks, 'dawn.node polling ticks during the gentle wait').to.be.at.least(3);
      expect(g.sleeps.length, `futex sleeps during ${g.result.ticks} polling ticks`).to.equal(g.result.ticks - 1);
      for (const ms of g.sleeps) expect(ms).to.be.within(0.05, 1);
      const s = await countingSleeps(() => countingTicks(() => waitForSlowMap(spinning)));
      expect(s.result.result, 'the spinning read-back').to.equal(42);
      expect(s.result.ticks, 'dawn.node polling ticks during the spinning wait').to.be.at.least(3);
      expect(s.sleeps, 'futex sleeps during the spinning wait').to.deep.equal([]);
      console.log(`      gentle: ${g.result.ticks} ticks, ${g.sleeps.length} sleeps; spinning: ${s.result.ticks} ticks, no sleep`);
    } finally {
      gentle.destroy();
      spinning.destroy();
    }
  });
});
