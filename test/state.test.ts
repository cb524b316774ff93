// The library's training state: trainer.saveState() bytes restored with Trainer.restoreState() go
// on with the same bits as a trainer never stopped; the CRC-32 catches every single flipped byte.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { Trainer } from '../src/nn/trainer.js';
import { trainLoop } from '../src/nn/loop.js';
import { crc32, decodeStateFile, StateError, STATE_PREFIX } from '../src/nn/state.js';
import { mulberry32 } from '../src/data/random.js';

describe('training state (trainer.saveState, Trainer.restoreState)', function () {
  this.timeout(120_000);
  const rand = mulberry32(7);
  const count = 64;
  const data = {
    count,
    images: Float32Array.from({ length: count * 784 }, () => (rand() < 0.3 ? rand() : 0)),
    labels: Uint8Array.from({ length: count }, () => Math.floor(rand() * 10)),
  };
  // SGD with momentum (a 'momentum' slot per parameter) and dropout (the step counter positions its masks).
  const options = { net: 'mlp' as const, hidden: 16, keepProb: 0.7, seed: 5, batch: 8, optimizer: { kind: 'sgd' as const, lr: 0.05, momentum: 0.9 } };

  it('CRC-32 is the IEEE/zlib one', () => {
    expect(crc32(new TextEncoder().encode('123456789')).toString(16)).to.equal('cbf43926');
    expect(crc32(new Uint8Array(0))).to.equal(0);
  });

  it('a state saved mid-epoch and restored into a new trainer trains on to the bits of a trainer never stopped', async () => {
    const ctx = await testContext();
    const a = await Trainer.create(ctx, options);
    let mid: Uint8Array;
    let end: Uint8Array;
    try {
      await trainLoop(a, data, { steps: 11 }); // 8 steps per epoch: step 11 is inside the second epoch
      mid = await a.saveState({ note: 'mine' });
      await trainLoop(a, data, { steps: 6, startStep: 11 });
      end = await a.saveState();
    } finally {
      a.destroy();
    }
    const saved = decodeStateFile(mid);
    expect(saved.step).to.equal(11);
    expect(saved.metadata.note).to.equal('mine');
    expect(Object.keys(saved.tensors).filter((n) => n.startsWith(STATE_PREFIX)).sort()).to.deep.equal(
      ['mlp/b1', 'mlp/b_out', 'mlp/w1', 'mlp/w_out'].map((p) => `${STATE_PREFIX}${p}/momentum`));

    const { trainer: b, state } = await Trainer.restoreState(ctx, mid);
    try {
      expect(state.step).to.equal(11);
      await trainLoop(b, data, { steps: 6, startStep: state.step });
      const got = decodeStateFile(await b.saveState());
      const want = decodeStateFile(end);
      for (const [name, t] of Object.entries(want.tensors)) {
        expect(got.tensors[name].bytes.findIndex((x, i) => x !== t.bytes[i]), `${name}: first differing byte`).to.equal(-1);
      }
      expect(Object.keys(got.tensors)).to.deep.equal(Object.keys(want.tensors));
      expect(got.step).to.equal(17);
    } finally {
      b.destroy();
    }

    // Another model's trainer refuses it before writing anything.
    const c = await Trainer.create(ctx, { ...options, hidden: 12 });
    try {
      const before = await c.store.read();
      expect(() => c.loadState(mid)).to.throw(StateError, /another model/);
      const after = await c.store.read();
      for (const n of Object.keys(before)) expect(after[n].data).to.deep.equal(before[n].data);
    } finally {
      c.destroy();
    }

    // Every single flipped byte (header length, JSON header, data) and every cut is caught.
    const r = mulberry32(3);
    for (let i = 0; i < 200; i++) {
      const at = i < 8 ? i : Math.floor(r() * mid.length);
      const bad = mid.slice();
      bad[at] ^= 1 << Math.floor(r() * 8);
      expect(() => decodeStateFile(bad), `byte ${at} flipped`).to.throw(StateError);
    }
    for (const cut of [0, 7, 8, 100, mid.length - 1]) expect(() => decodeStateFile(mid.slice(0, cut)), `cut at ${cut}`).to.throw(StateError);
  });
});
