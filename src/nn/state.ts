// A trainer's whole training state as one safetensors file (docs/CHECKPOINTS.md has the layout):
// the parameters under their own names, every persistent optimizer state tensor of the training
// graph under `state/<param>/<slot>`, and in the metadata the GPU step counter, the model spec, the
// trainer's options, the caller's own keys and a CRC-32 of the whole file. Pure TypeScript (no fs,
// no Buffer): it runs in Node and in the browser.
import type { GpuContext } from '../gpu/context.js';
import { BufferUsage } from '../gpu/flags.js';
import type { Tensor as GraphTensor } from '../graph/tensor.js';
import { modelToSpec } from './spec.js';
import type { Trainer, TrainerOptions } from './trainer.js';

/** A state file that cannot be read or does not fit the trainer. One line: what is wrong. */
export class StateError extends Error {
  /** damaged: cut short or changed after it was written; foreign: a readable file that is not a training state of this trainer. */
  constructor(message: string, readonly kind: 'damaged' | 'foreign' = 'damaged') {
    super(message);
    this.name = 'StateError';
  }
}

/** The `format` metadata value of a training-state file. */
export const STATE_FORMAT = 'webgpu-train-state';
export const STATE_FORMAT_VERSION = '1';
/** Key prefix of the optimizer (and other persistent non-parameter) state tensors. */
export const STATE_PREFIX = 'state/';
/** Metadata keys written by saveState itself; a caller's extra keys may not use them. */
export const RESERVED_KEYS = ['format', 'format_version', 'step', 'model_spec', 'trainer', 'crc32'] as const;

const METADATA_KEY = '__metadata__';
const CRC_PLACEHOLDER = '00000000';

export type StateDType = 'F32' | 'U32';

/** One tensor of a training-state file: its name, dtype, shape and bytes. */
export interface StateTensor {
  dtype: StateDType;
  shape: number[];
  /** Little-endian bytes. */
  bytes: Uint8Array;
}

/** A decoded, checksum-verified training-state file. */
export interface TrainerState {
  /** The GPU step counter: training steps taken (it also positions the dropout streams and Adam's bias correction). */
  step: number;
  /** Every metadata key, including the caller's extra keys given to saveState. */
  metadata: Record<string, string>;
  tensors: Record<string, StateTensor>;
}

// ---- CRC-32 (IEEE 802.3, as zlib), table-driven ----

let CRC_TABLE: Uint32Array | undefined;

/** CRC-32 of `bytes`, continuing from `crc` (0 to start). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  const t = CRC_TABLE;
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

// ---- safetensors with a checksum ----

/**
 * A safetensors file of `tensors` (in order) and `metadata`, with metadata `crc32` set to the
 * CRC-32 of the whole file as written with `crc32` = "00000000".
 */
export function encodeStateFile(tensors: Record<string, StateTensor>, metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { [METADATA_KEY]: { ...metadata, crc32: CRC_PLACEHOLDER } };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === METADATA_KEY) throw new StateError(`a tensor may not be named ${METADATA_KEY}`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.bytes.length !== n * 4) throw new StateError(`tensor ${name}: ${t.bytes.length} bytes for shape [${t.shape.join(', ')}]`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.fill(0x20, 8, 8 + padded);
  out.set(json, 8);
  let at = 8 + padded;
  for (const t of Object.values(tensors)) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  const where = findCrc(out, 8, 8 + padded, CRC_PLACEHOLDER);
  out.set(new TextEncoder().encode(hex8(crc32(out))), where);
  return out;
}

/** Byte index of the 8 hex digits of `"crc32":"<value>"` in bytes[from, to), or -1. */
function findCrc(bytes: Uint8Array, from: number, to: number, value: string): number {
  const needle = new TextEncoder().encode(`"crc32":"${value}"`);
  let found = -1;
  outer: for (let i = from; i + needle.length <= to; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    if (found >= 0) return -1; // twice: ambiguous, so not ours
    found = i + needle.length - 9;
  }
  return found;
}

/**
 * Parses a training-state file and checks it whole: the safetensors layout, the format, and the
 * CRC-32 (a truncated file or any changed byte is caught). Throws StateError saying what is wrong.
 */
export function decodeStateFile(bytes: Uint8Array): TrainerState {
  if (bytes.length < 8) throw new StateError(`it is ${bytes.length} bytes long, too short for a header (truncated)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(bytes.length - 8)) throw new StateError(`its header length ${n64} runs past the end of the ${bytes.length}-byte file (truncated or damaged)`);
  const n = Number(n64);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch {
    throw new StateError('its header is not valid JSON (damaged or truncated)');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new StateError('its header is not a JSON object (damaged)');
  const meta = header[METADATA_KEY] as Record<string, unknown> | undefined;
  if (typeof meta !== 'object' || meta === null) throw new StateError('it has no metadata: not a training-state file (a parameters-only checkpoint? use --load)', 'foreign');
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta)) {
    if (typeof v !== 'string') throw new StateError(`its metadata ${JSON.stringify(k)} is not a string (damaged)`);
    metadata[k] = v;
  }
  if (metadata.format !== STATE_FORMAT) throw new StateError(`it is not a training-state file (metadata format is ${JSON.stringify(metadata.format ?? null)}; a parameters-only checkpoint? use --load)`, 'foreign');
  const crc = metadata.crc32;
  if (!/^[0-9a-f]{8}$/.test(crc ?? '')) throw new StateError('its crc32 metadata is missing or malformed (damaged)');
  const at = findCrc(bytes, 8, 8 + n, crc);
  if (at < 0) throw new StateError('its crc32 metadata cannot be located in the header (damaged)');
  const copy = bytes.slice();
  copy.set(new TextEncoder().encode(CRC_PLACEHOLDER), at);
  const actual = hex8(crc32(copy));
  if (actual !== crc) throw new StateError(`its checksum does not match (crc32 ${actual}, recorded ${crc}): the file was damaged or cut short after it was written`);
  if (metadata.format_version !== STATE_FORMAT_VERSION) throw new StateError(`it has format_version ${metadata.format_version}; this version reads ${STATE_FORMAT_VERSION}`, 'foreign');
  const step = Number(metadata.step);
  if (!Number.isSafeInteger(step) || step < 0) throw new StateError(`its step ${JSON.stringify(metadata.step)} is not a whole number`);
  const dataStart = 8 + n;
  const tensors: Record<string, StateTensor> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === METADATA_KEY) continue;
    const { dtype, shape, data_offsets: offs } = (entry ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (dtype !== 'F32' && dtype !== 'U32') throw new StateError(`tensor ${name} has dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new StateError(`tensor ${name} has a bad shape`);
    if (!Array.isArray(offs) || offs.length !== 2) throw new StateError(`tensor ${name} has bad data_offsets`);
    const [b, e] = offs as number[];
    const count = (shape as number[]).reduce((a, x) => a * x, 1);
    if (!(Number.isSafeInteger(b) && Number.isSafeInteger(e) && b >= 0 && e - b === count * 4 && dataStart + e <= bytes.length)) {
      throw new StateError(`tensor ${name} has data_offsets [${b}, ${e}] that do not fit the file`);
    }
    tensors[name] = { dtype, shape: shape as number[], bytes: bytes.slice(dataStart + b, dataStart + e) };
  }
  return { step, metadata, tensors };
}

// ---- a trainer's state ----

/**
 * The persistent state tensors of the training graph that belong to a parameter: role 'state',
 * named `${param}/<slot>` (Adam's adam_m and adam_v, SGD's momentum, and whatever is added later
 * under that rule). Metric accumulators (loss_sum, correct) are not: they do not change the weights.
 */
export function optimizerStateTensors(trainer: Trainer): GraphTensor[] {
  const params = new Set(trainer.store.names);
  return trainer.graph.graph.tensors.filter((t) => {
    if (t.role !== 'state' || t.external || t.viewOf) return false;
    const cut = t.name.lastIndexOf('/');
    return cut > 0 && params.has(t.name.slice(0, cut));
  });
}

/** The trainer options a state file records (enough, with the model spec, to build the trainer again). */
function trainerRecord(opts: TrainerOptions): string {
  return JSON.stringify({ seed: opts.seed, batch: opts.batch, optimizer: opts.optimizer, evalBatch: opts.evalBatch ?? 500 });
}

/**
 * Reads the trainer's whole state back from the GPU (one copy into one staging buffer, so the
 * state is that after every step submitted so far) and encodes it. `extra`: the caller's metadata.
 */
export async function saveTrainerState(trainer: Trainer, extra: Record<string, string> = {}): Promise<Uint8Array> {
  for (const k of RESERVED_KEYS) if (k in extra) throw new StateError(`saveState: metadata key ${k} is written by saveState itself`);
  const ctx = trainer.ctx;
  const sources: { name: string; dtype: StateDType; shape: number[]; buffer: GPUBuffer; offset: number; bytes: number }[] = [];
  const shapes = trainer.store.shapes();
  for (const name of trainer.store.names) {
    const shape = shapes[name];
    sources.push({ name, dtype: 'F32', shape, buffer: trainer.store.buffer(name), offset: 0, bytes: shape.reduce((a, b) => a * b, 1) * 4 });
  }
  for (const t of optimizerStateTensors(trainer)) {
    sources.push({ name: STATE_PREFIX + t.name, dtype: t.dtype === 'u32' ? 'U32' : 'F32', shape: [...t.shape], buffer: trainer.graph.bufferOf(t), offset: t.offset * 4, bytes: t.bytes });
  }
  sources.push({ name: '', dtype: 'U32', shape: [1], buffer: trainer.stepCounter, offset: 0, bytes: 4 });
  const total = sources.reduce((a, s) => a + s.bytes, 0);
  ctx.throwIfLost('saving the training state');
  const staging = ctx.createBuffer(total, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'training state readback');
  let all: Uint8Array;
  try {
    const enc = ctx.device.createCommandEncoder();
    let at = 0;
    for (const s of sources) {
      enc.copyBufferToBuffer(s.buffer, s.offset, staging, at, s.bytes);
      at += s.bytes;
    }
    ctx.device.queue.submit([enc.finish()]);
    await ctx.mapRead(staging, 0, total, 'saving the training state');
    all = new Uint8Array(staging.getMappedRange(0, total).slice(0));
  } finally {
    ctx.release(staging);
  }
  const tensors: Record<string, StateTensor> = {};
  let at = 0;
  let step = 0;
  for (const s of sources) {
    if (s.name === '') step = new DataView(all.buffer, at, 4).getUint32(0, true);
    else tensors[s.name] = { dtype: s.dtype, shape: s.shape, bytes: all.subarray(at, at + s.bytes) };
    at += s.bytes;
  }
  return encodeStateFile(tensors, {
    format: STATE_FORMAT, format_version: STATE_FORMAT_VERSION, step: String(step),
    model_spec: JSON.stringify(modelToSpec(trainer.model)), trainer: trainerRecord(trainer.opts), ...extra,
  } as Record<string, string>);
}

/**
 * Checks that `state` was saved from a trainer like this one (same model, batch, seed and
 * optimizer; every parameter and optimizer state tensor present with its shape, no others) and
 * writes it into the GPU buffers, step counter included. Throws StateError before writing anything.
 */
export function loadTrainerState(trainer: Trainer, state: TrainerState): void {
  const spec = JSON.stringify(modelToSpec(trainer.model));
  if (state.metadata.model_spec !== spec) throw new StateError(`it was saved from another model (its model_spec differs from ${trainer.model.name}'s)`, 'foreign');
  const mine = JSON.parse(trainerRecord(trainer.opts)) as Record<string, unknown>;
  let theirs: Record<string, unknown>;
  try {
    theirs = JSON.parse(state.metadata.trainer ?? '') as Record<string, unknown>;
  } catch {
    throw new StateError('its trainer metadata is not JSON', 'foreign');
  }
  for (const k of ['batch', 'seed', 'optimizer'] as const) {
    if (JSON.stringify(theirs[k]) !== JSON.stringify(mine[k])) throw new StateError(`it was saved with ${k} ${JSON.stringify(theirs[k])}, this trainer has ${JSON.stringify(mine[k])}`, 'foreign');
  }
  const targets: { name: string; shape: readonly number[]; buffer: GPUBuffer; offset: number }[] = [];
  const shapes = trainer.store.shapes();
  for (const name of trainer.store.names) targets.push({ name, shape: shapes[name], buffer: trainer.store.buffer(name), offset: 0 });
  for (const t of optimizerStateTensors(trainer)) targets.push({ name: STATE_PREFIX + t.name, shape: t.shape, buffer: trainer.graph.bufferOf(t), offset: t.offset * 4 });
  const wanted = new Set(targets.map((t) => t.name));
  for (const t of targets) {
    const s = state.tensors[t.name];
    if (!s) throw new StateError(`it has no tensor ${t.name}`, 'foreign');
    if (s.shape.join() !== t.shape.join()) throw new StateError(`its tensor ${t.name} is [${s.shape.join(', ')}], this trainer's is [${t.shape.join(', ')}]`, 'foreign');
  }
  for (const name of Object.keys(state.tensors)) if (!wanted.has(name)) throw new StateError(`it has a tensor ${name} that this trainer does not have`, 'foreign');
  const ctx: GpuContext = trainer.ctx;
  ctx.throwIfLost('restoring the training state');
  for (const t of targets) ctx.write(t.buffer, state.tensors[t.name].bytes, t.offset);
  ctx.write(trainer.stepCounter, new Uint32Array([state.step]));
}

/** The trainer options recorded in a state file, to build its trainer again (Trainer.restoreState). */
export function recordedTrainerOptions(state: TrainerState): Pick<TrainerOptions, 'seed' | 'batch' | 'optimizer' | 'evalBatch'> {
  try {
    const r = JSON.parse(state.metadata.trainer) as { seed: number; batch: number; optimizer: TrainerOptions['optimizer']; evalBatch?: number };
    if (typeof r.seed !== 'number' || typeof r.batch !== 'number' || typeof r.optimizer !== 'object') throw new Error('fields');
    return r;
  } catch {
    throw new StateError('its trainer metadata is missing or not valid', 'foreign');
  }
}
