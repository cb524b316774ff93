// A read-back keeps nothing alive once it is done: thousands of GpuContext.mapRead calls (the
// metrics read of every 10th training step, each evaluation) leave the JS heap where it was.
import { expect } from 'chai';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BufferUsage } from '../src/gpu/flags.js';
import { testContext } from './support/gpu.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function heapAfterGc(): Promise<number> {
  gc();
  await new Promise((r) => setTimeout(r, 10));
  gc();
  return process.memoryUsage().heapUsed;
}

describe('read-backs keep no memory', function () {
  this.timeout(60_000);

  it('4,000 mapRead calls grow the heap by less than 100 KB (a reaction kept per read was 0.5 KB each)', async () => {
    const ctx = await testContext();
    const staging = ctx.createBuffer(16, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'read-memory test');
    try {
      const read = async () => {
        await ctx.mapRead(staging, 0, 8, 'read-memory test');
        staging.getMappedRange(0, 8).slice(0);
        staging.unmap();
      };
      for (let i = 0; i < 500; i++) await read(); // warm: code compiled, pools made
      const before = await heapAfterGc();
      for (let i = 0; i < 4000; i++) await read();
      const grown = (await heapAfterGc()) - before;
      expect(grown, `heap growth over 4,000 reads: ${(grown / 1e3).toFixed(1)} KB`).to.be.below(100_000);
    } finally {
      ctx.release(staging);
    }
  });
});
