// What a Node context sets up around Dawn before the adapter is made: the software adapter's threads.
import { expect } from 'chai';
import { softwareAdapterThreads, threadsFromEnvironment, useSoftwareAdapterThreads } from '../src/gpu/node.js';
import { peerEnvironment } from '../tools/bench-common.js';
import { testContext } from './support/gpu.js';
import { GpuContext } from '../src/gpu/context.js';

describe('Node context: a software adapter\'s threads', () => {
  it('are three per core by default, at most 32', () => {
    expect([1, 2, 4, 10, 11, 64].map(softwareAdapterThreads)).to.deep.equal([3, 6, 12, 30, 32, 32]);
    expect(softwareAdapterThreads(0), 'no core reported').to.equal(3);
  });

  it('go to LP_NUM_THREADS only where the environment does not set it already', () => {
    const before = process.env.LP_NUM_THREADS;
    try {
      delete process.env.LP_NUM_THREADS;
      useSoftwareAdapterThreads(9);
      expect(process.env.LP_NUM_THREADS, 'unset before').to.equal('9');
      process.env.LP_NUM_THREADS = '5';
      useSoftwareAdapterThreads(9);
      expect(process.env.LP_NUM_THREADS, 'the user\'s own value').to.equal('5');
    } finally {
      if (before === undefined) delete process.env.LP_NUM_THREADS;
      else process.env.LP_NUM_THREADS = before;
    }
  });

  it('are set by the time a context exists; the bench\'s peers get the environment\'s setting instead', async () => {
    const ctx = await testContext();
    expect(ctx.softwareAdapter, ctx.adapterDescription).to.equal(true);
    expect(Number(process.env.LP_NUM_THREADS), 'LP_NUM_THREADS after createNodeContext').to.be.at.least(1);
    expect(peerEnvironment().LP_NUM_THREADS, 'a peer\'s LP_NUM_THREADS').to.equal(threadsFromEnvironment());
    expect(peerEnvironment().PATH, 'the rest of the environment').to.equal(process.env.PATH);
  });

  it('are part of what tuning results are kept under, on a software adapter only', async () => {
    const ctx = await testContext();
    expect(ctx.tuningKey).to.equal(`${ctx.adapterDescription} (LP_NUM_THREADS=${process.env.LP_NUM_THREADS})`);
    const other = GpuContext.fromDevice(ctx.device, { adapterDescription: ctx.adapterDescription, softwareSettings: 'LP_NUM_THREADS=1' });
    expect(other.tuningKey, 'another thread count').to.not.equal(ctx.tuningKey);
    const gpu = GpuContext.fromDevice(ctx.device, { adapterDescription: 'nvidia / nvidia-h200 / NVIDIA: 580.159.04', softwareSettings: 'LP_NUM_THREADS=6' });
    expect(gpu.tuningKey, 'on a GPU').to.equal('nvidia / nvidia-h200 / NVIDIA: 580.159.04');
  });
});
