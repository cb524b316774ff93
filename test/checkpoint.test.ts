import { expect } from 'chai';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CheckpointError, checkMetadata, checkShapes, decodeSafetensors, encodeSafetensors, loadCheckpoint, saveCheckpoint,
  type CheckpointIo, type TensorMap,
} from '../src/cli/checkpoint.js';
import { hyperParameters, parseArgs, SHAPE_KEYS, type TrainArgs } from '../src/cli/args.js';
import { Trainer, type TrainerOptions } from '../src/nn/trainer.js';
import { testContext } from './support/gpu.js';
import { rng } from './support/cpu.js';

function tensors(seed = 1): TensorMap {
  let s = seed;
  const r = () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
  return {
    'dense1.w': { shape: [7, 5], data: Float32Array.from({ length: 35 }, r) },
    'dense1.b': { shape: [5], data: Float32Array.from({ length: 5 }, r) },
    'dense2.w': { shape: [5, 3], data: Float32Array.from({ length: 15 }, r) },
    scalar: { shape: [], data: Float32Array.of(-0.0) },
  };
}

/** A file with a hand-written header and `dataBytes` bytes of data. */
function rawFile(header: unknown, dataBytes: number, headerText?: string): Uint8Array {
  const json = Buffer.from(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function expectCkptError(fn: () => unknown, ...parts: string[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a CheckpointError').to.be.instanceOf(CheckpointError);
  const msg = (err as Error).message;
  expect(msg, 'one line').not.to.include('\n');
  for (const p of parts) expect(msg, msg).to.include(p);
}

describe('safetensors checkpoints (src/cli/checkpoint.ts)', () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(join(tmpdir(), 'ckpt-test-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('round-trips tensors bit for bit and metadata', () => {
    const t = tensors();
    t['dense1.b'].data[0] = NaN;
    t['dense1.b'].data[1] = -Infinity;
    t['dense1.b'].data[2] = 1e-45; // denormal
    const meta = { net: 'mlp', hidden: '256', lr: '0.001' };
    const file = join(dir, 'rt.safetensors');
    saveCheckpoint(file, t, meta);
    const back = loadCheckpoint(file);
    expect(back.metadata).to.deep.equal(meta);
    expect(Object.keys(back.tensors)).to.deep.equal(Object.keys(t));
    for (const [name, v] of Object.entries(t)) {
      expect(back.tensors[name].shape).to.deep.equal(v.shape);
      expect(Buffer.from(back.tensors[name].data.buffer)).to.deep.equal(Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength));
    }
    expect(Object.is(back.tensors.scalar.data[0], -0)).to.equal(true);
  });

  it('writes the layout other safetensors readers expect', () => {
    const bytes = encodeSafetensors({ a: { shape: [2], data: Float32Array.of(1, -2) }, b: { shape: [1, 1], data: Float32Array.of(0.5) } }, { net: 'softmax' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).to.equal(0);
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString());
    expect(header).to.deep.equal({
      __metadata__: { net: 'softmax' },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [1, 1], data_offsets: [8, 12] },
    });
    expect(bytes.length).to.equal(8 + n + 12);
    const data = new DataView(bytes.buffer, 8 + n);
    expect([data.getFloat32(0, true), data.getFloat32(4, true), data.getFloat32(8, true)]).to.deep.equal([1, -2, 0.5]);
  });

  it('replaces an existing file, leaving no temp file', () => {
    const file = join(dir, 'replace.safetensors');
    saveCheckpoint(file, tensors(1), { net: 'a' });
    saveCheckpoint(file, tensors(2), { net: 'b' });
    expect(loadCheckpoint(file).metadata.net).to.equal('b');
    expect(fs.readdirSync(dir).filter((f) => f.includes('replace') && f !== 'replace.safetensors')).to.deep.equal([]);
  });

  it('a write that fails half-way leaves the old file byte for byte and no temp file', () => {
    const file = join(dir, 'atomic.safetensors');
    saveCheckpoint(file, tensors(1), { net: 'mlp', epoch: '3' });
    const before = fs.readFileSync(file);
    let writes = 0;
    const failing: CheckpointIo = {
      ...fs,
      writeSync: ((fd: number, buf: Uint8Array, off?: number, len?: number) => {
        if (++writes > 1) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        return fs.writeSync(fd, buf, off, len);
      }) as typeof fs.writeSync,
    };
    expectCkptError(() => saveCheckpoint(file, tensors(2), { net: 'mlp', epoch: '4' }, failing), file, 'ENOSPC', 'unchanged');
    expect(writes).to.equal(2);
    expect(fs.readFileSync(file).equals(before)).to.equal(true);
    expect(fs.readdirSync(dir).filter((f) => f.includes('atomic') && f !== 'atomic.safetensors')).to.deep.equal([]);
    // a failing rename, too
    const noRename: CheckpointIo = { ...fs, renameSync: () => { throw Object.assign(new Error('cross-device link'), { code: 'EXDEV' }); } };
    expectCkptError(() => saveCheckpoint(file, tensors(2), {}, noRename), 'EXDEV');
    expect(fs.readFileSync(file).equals(before)).to.equal(true);
    expect(fs.readdirSync(dir).filter((f) => f.includes('atomic') && f !== 'atomic.safetensors')).to.deep.equal([]);
  });

  it('refuses bad tensors before touching the file', () => {
    const file = join(dir, 'refuse.safetensors');
    saveCheckpoint(file, tensors(1));
    const before = fs.readFileSync(file);
    expectCkptError(() => saveCheckpoint(file, { w: { shape: [3, 3], data: new Float32Array(8) } }), 'tensor w', '8 values', '[3, 3]');
    expectCkptError(() => saveCheckpoint(file, { w: { shape: [2, -1], data: new Float32Array(2) } }), 'tensor w', 'shape');
    expect(fs.readFileSync(file).equals(before)).to.equal(true);
    expectCkptError(() => saveCheckpoint(join(dir, 'no', 'such', 'x.safetensors'), tensors(1)), 'does not exist');
  });

  describe('rejects corrupt files with one clear line', () => {
    const good = () => encodeSafetensors(tensors(), { net: 'mlp' });
    const cases: [string, () => Uint8Array, string[]][] = [
      ['too short', () => new Uint8Array(5), ['5 bytes', 'too short']],
      ['empty', () => new Uint8Array(0), ['0 bytes']],
      ['truncated data', () => good().subarray(0, good().length - 4), ['data_offsets', 'outside']],
      ['header length beyond the file', () => good().subarray(0, 40), ['header length', 'past the end']],
      ['bad JSON', () => rawFile(null, 0, '{"a": {"dtype": "F32",'), ['not JSON']],
      ['header not an object', () => rawFile([1, 2], 0), ['not a JSON object']],
      ['dtype not F32', () => rawFile({ w: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, 4), ['tensor w', '"F16"', 'F32']],
      ['offsets out of range', () => rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4), ['tensor w', '[0, 8]', '4 data bytes']],
      ['offsets reversed', () => rawFile({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, 8), ['tensor w', '[8, 4]']],
      ['offsets not [begin, end]', () => rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 4), ['tensor w', 'data_offsets']],
      ['bytes not matching the shape', () => rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), ['tensor w', '8 bytes', 'needs 12']],
      ['bad shape', () => rawFile({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, 4), ['tensor w', 'shape']],
      ['overlapping tensors', () => rawFile({
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      }, 12), ['a [0, 8]', 'b [4, 12]', 'overlap']],
      ['non-string metadata', () => rawFile({ __metadata__: { epoch: 3 } }, 0), ['metadata "epoch"', 'not a string']],
    ];
    for (const [what, bytes, parts] of cases) {
      it(what, () => {
        const file = join(dir, `corrupt-${what.replace(/\W+/g, '-')}.safetensors`);
        fs.writeFileSync(file, bytes());
        expectCkptError(() => loadCheckpoint(file), file, 'not a valid safetensors checkpoint', ...parts);
      });
    }

    it('a missing file and a folder', () => {
      expectCkptError(() => loadCheckpoint(join(dir, 'missing.safetensors')), 'missing.safetensors', 'does not exist', '--load');
      expectCkptError(() => loadCheckpoint(dir), 'is a folder');
    });

    it('accepts an unpadded header and zero-sized tensors (other writers)', () => {
      const bytes = rawFile({ e: { dtype: 'F32', shape: [0, 3], data_offsets: [0, 0] }, w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4);
      const ck = decodeSafetensors(bytes);
      expect(ck.tensors.e.data.length).to.equal(0);
      expect(ck.tensors.w.data[0]).to.equal(0);
    });
  });

  describe('checking a checkpoint against the net', () => {
    const ck = () => ({ tensors: tensors(), metadata: { net: 'mlp', hidden: '256', layers: '1' } });
    const expected = { 'dense1.w': [7, 5], 'dense1.b': [5], 'dense2.w': [5, 3], scalar: [] };

    it('passes when names and shapes match', () => {
      checkShapes(ck(), expected, 'm.safetensors');
      checkMetadata(ck(), { net: 'mlp', hidden: '256', layers: '1' }, ['net', 'hidden', 'layers', 'cell'], 'm.safetensors');
    });

    it('names a mismatched, missing or extra tensor', () => {
      expectCkptError(() => checkShapes(ck(), { ...expected, 'dense1.w': [7, 6] }, 'm.safetensors'), 'm.safetensors', 'dense1.w', '[7, 5]', '[7, 6]');
      expectCkptError(() => checkShapes(ck(), { ...expected, 'dense1.w': [35] }, 'm.safetensors'), 'dense1.w', '[7, 5]', '[35]');
      expectCkptError(() => checkShapes(ck(), { ...expected, 'conv1.w': [5, 5, 1, 32] }, 'm.safetensors'), 'no tensor conv1.w', 'another net');
      const fewer: Record<string, number[]> = { ...expected };
      delete fewer['dense2.w'];
      expectCkptError(() => checkShapes(ck(), fewer, 'm.safetensors'), 'dense2.w', 'does not have');
    });

    it('names the net or knob a checkpoint was saved with', () => {
      expectCkptError(() => checkMetadata(ck(), { net: 'cnn' }, ['net'], 'm.safetensors'), 'm.safetensors', 'net=mlp', 'net=cnn', '--net mlp');
      expectCkptError(() => checkMetadata(ck(), { net: 'mlp', hidden: '128' }, ['net', 'hidden'], 'm.safetensors'), 'hidden=256', 'hidden=128', '--hidden 256');
      expectCkptError(() => checkMetadata({ tensors: {}, metadata: {} }, { net: 'mlp' }, ['net'], 'x.safetensors'), 'x.safetensors', 'does not record net');
    });
  });
});

describe('checkpoint round trip through a Trainer (save after training, load into a new Trainer, as the CLI does)', function () {
  this.timeout(300_000);
  let dir: string;
  before(() => { dir = fs.mkdtempSync(join(tmpdir(), 'ckpt-trainer-test-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** The Trainer options the CLI makes from its arguments (src/cli/train.ts). */
  const optionsOf = (args: TrainArgs): TrainerOptions => ({
    net: args.net, hidden: args.hidden, layers: args.layers, cell: args.cell, keepProb: args.keepProb, seed: args.seed,
    batch: args.batch, optimizer: { kind: args.optimizer, lr: args.lr },
  });

  it('a trained mlp saved and loaded into a new Trainer has the same parameter bytes, test predictions, accuracy and loss', async () => {
    const ctx = await testContext();
    const rand = rng(31);
    const count = 150;
    const data = {
      count,
      images: Float32Array.from({ length: count * 784 }, () => (rand() < 0.3 ? rand() : 0)),
      labels: Uint8Array.from({ length: count }, () => Math.floor(rand() * 10)),
    };
    const args = parseArgs(['--net', 'mlp', '--hidden', '24', '--layers', '2', '--keep-prob', '0.8', '--batch', '16', '--seed', '4', '--optimizer', 'adam']);
    const file = join(dir, 'mlp.safetensors');
    const trained = await Trainer.create(ctx, optionsOf(args));
    let saved: Record<string, { shape: number[]; data: Float32Array }>;
    let before: Awaited<ReturnType<Trainer['evaluate']>>;
    try {
      const initial = await trained.store.read();
      for (let s = 0; s < 5; s++) {
        trained.writeBatch(data, Uint32Array.from({ length: 16 }, (_, i) => (s * 16 + i) % count));
        trained.step();
      }
      await trained.finish();
      saved = await trained.store.read();
      const moved = Object.keys(saved).filter((n) => saved[n].data.some((v, i) => v !== initial[n].data[i]));
      expect(moved, 'training changed every parameter').to.deep.equal(Object.keys(saved));
      before = await trained.evaluate(data);
      saveCheckpoint(file, saved, hyperParameters(args));
    } finally {
      trained.destroy();
    }

    // A new Trainer with another seed: its own initial values differ, so only the load can make them equal.
    const loadArgs = parseArgs(['--net', 'mlp', '--hidden', '24', '--layers', '2', '--batch', '16', '--seed', '99', '--load', file, '--eval']);
    const ckpt = loadCheckpoint(file);
    checkMetadata(ckpt, hyperParameters(loadArgs), SHAPE_KEYS, file);
    const loaded = await Trainer.create(ctx, optionsOf(loadArgs));
    try {
      const fresh = await loaded.store.read();
      expect(Object.keys(fresh).some((n) => fresh[n].data.some((v, i) => v !== saved[n].data[i])), 'the new Trainer starts from other values').to.equal(true);
      checkShapes(ckpt, loaded.store.shapes(), file);
      for (const [name, t] of Object.entries(ckpt.tensors)) loaded.store.write(name, t.data);
      const back = await loaded.store.read();
      expect(Object.keys(back).sort()).to.deep.equal(Object.keys(saved).sort());
      for (const [name, t] of Object.entries(saved)) {
        const a = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
        const b = new Uint8Array(back[name].data.buffer, back[name].data.byteOffset, back[name].data.byteLength);
        expect(back[name].shape, `${name} shape`).to.deep.equal(t.shape);
        expect(Buffer.compare(a, b), `${name}: the loaded parameter's bytes equal the saved ones`).to.equal(0);
      }
      const after = await loaded.evaluate(data);
      expect(Array.from(after.predictions), 'test predictions').to.deep.equal(Array.from(before.predictions));
      expect(after.accuracy, 'test accuracy').to.equal(before.accuracy);
      expect(after.loss, 'test loss').to.equal(before.loss);
      console.log(`      ${Object.keys(saved).length} tensors round-tripped; test accuracy ${after.accuracy.toFixed(4)}, loss ${after.loss.toFixed(6)} before and after`);
    } finally {
      loaded.destroy();
    }
  });
});
