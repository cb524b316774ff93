// ReadPacer against a simulated GPU and timer on a fake clock: the host's sleeps must track the
// GPU's time, not their own length (pacing by "submit to done" settles at ten times the timer's
// slack and lets one slow step slow dozens after it).
import { expect } from 'chai';
import { ReadPacer } from '../src/gpu/pacer.js';
import { median } from '../src/gpu/profiler.js';

/** A fake clock, a timer that oversleeps by `slack` ms, and a map that resolves `poll` ms after the GPU is done. */
function simulation(slack: number, poll = 0.05) {
  let clock = 1000;
  const pacer = new ReadPacer({ now: () => clock, sleep: async (ms) => void (clock += ms + slack) });
  /** One synchronous step of `gpuMs` GPU time: submit, paced sleep, map; returns its wall time. */
  async function step(gpuMs: number): Promise<number> {
    const since = clock;
    const woke = await pacer.sleep(since);
    clock = Math.max(clock, since + gpuMs) + poll;
    pacer.done(since, 1, woke);
    return clock - since;
  }
  return { pacer, step };
}

describe('ReadPacer (read-back pacing)', () => {
  it('settles near the GPU time, not at ten times the timer slack', async () => {
    const { pacer, step } = simulation(1);
    const walls: number[] = [];
    for (let i = 0; i < 60; i++) walls.push(await step(5));
    // 5 ms of GPU work plus at most the slack of one timer
    expect(median(walls.slice(-20))).to.be.below(6.2);
    expect(pacer.ms).to.be.within(4, 6);
  });

  it('forgets a slow first step within a few steps', async () => {
    const { step } = simulation(0.5);
    await step(200); // first read: no estimate yet, polls
    await step(200); // measured: the estimate is now 200 ms
    const walls: number[] = [];
    for (let i = 0; i < 30; i++) walls.push(await step(5));
    expect(median(walls.slice(-10))).to.be.below(6);
  });

  it('follows the GPU when it slows down', async () => {
    const { pacer, step } = simulation(0.5);
    for (let i = 0; i < 20; i++) await step(5);
    const walls: number[] = [];
    for (let i = 0; i < 20; i++) walls.push(await step(20));
    expect(median(walls.slice(-10))).to.be.below(21);
    expect(pacer.ms).to.be.within(17, 21);
  });

  it('estimates per step when one read covers several steps', async () => {
    let clock = 0;
    const pacer = new ReadPacer({ now: () => clock, sleep: async (ms) => void (clock += ms) });
    clock = 40; // four steps of 10 ms, waited for by polling
    pacer.done(0, 4, undefined);
    expect(pacer.ms).to.equal(10);
    // The next read of 4 steps sleeps 0.9 of 40 ms.
    const woke = await pacer.sleep(clock, 4);
    expect(woke).to.equal(76);
  });

  it('does not sleep without an estimate or for less than a millisecond', async () => {
    let slept = 0;
    const pacer = new ReadPacer({ now: () => 0, sleep: async () => void slept++ });
    expect(await pacer.sleep(0)).to.equal(undefined);
    pacer.ms = 1;
    expect(await pacer.sleep(0)).to.equal(undefined);
    expect(slept).to.equal(0);
  });
});
