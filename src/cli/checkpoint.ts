// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
//   8-byte little-endian u64 N, N bytes of JSON header (space-padded to a multiple of 8),
//   then the tensors' little-endian bytes, contiguous, in header order.
// Header: { name: { dtype: "F32", shape: [...], data_offsets: [begin, end] }, "__metadata__": {str: str} },
// offsets relative to the start of the data. Written atomically: temp file, fsync, rename.
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A checkpoint that cannot be written, read, or used. One line: the file, what is wrong, what to do. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/** Named tensors, in the order they are written. */
export type TensorMap = Record<string, Tensor>;

export interface Checkpoint {
  tensors: TensorMap;
  metadata: Record<string, string>;
}

/** The fs calls saveCheckpoint makes; tests pass a wrapper that fails to check atomicity. */
export type CheckpointIo = Pick<typeof fs, 'openSync' | 'writeSync' | 'fsyncSync' | 'closeSync' | 'renameSync' | 'unlinkSync'>;

const METADATA_KEY = '__metadata__';
/** The reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER = 100_000_000;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function validShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/** Little-endian bytes of a Float32Array, without a copy on little-endian hosts. */
function leBytes(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const v = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) v.setFloat32(i * 4, data[i], true);
  return out;
}

/** The 8-byte length and the padded JSON header for these tensors, after checking them. */
function encodeHeader(tensors: TensorMap, metadata: Record<string, string>, what: string): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new CheckpointError(`${what}: metadata ${JSON.stringify(k)} is ${typeof v}, safetensors metadata values must be strings`);
    }
    header[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === METADATA_KEY) throw new CheckpointError(`${what}: a tensor may not be named ${METADATA_KEY}`);
    if (!validShape(t.shape)) throw new CheckpointError(`${what}: tensor ${name} has shape ${JSON.stringify(t.shape)}, not a list of whole numbers ≥ 0`);
    if (!(t.data instanceof Float32Array)) throw new CheckpointError(`${what}: tensor ${name} data is not a Float32Array`);
    if (t.data.length !== elements(t.shape)) {
      throw new CheckpointError(`${what}: tensor ${name} has ${t.data.length} values but shape [${t.shape.join(', ')}] needs ${elements(t.shape)}`);
    }
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** The whole file in memory. */
export function encodeSafetensors(tensors: TensorMap, metadata: Record<string, string> = {}): Uint8Array {
  const head = encodeHeader(tensors, metadata, 'checkpoint');
  const total = head.length + Object.values(tensors).reduce((a, t) => a + t.data.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(head, 0);
  let at = head.length;
  for (const t of Object.values(tensors)) {
    out.set(leBytes(t.data), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Parses and validates a safetensors file's bytes; `file` names it in errors. Only F32 tensors. */
export function decodeSafetensors(bytes: Uint8Array, file = 'checkpoint'): Checkpoint {
  const bad = (what: string): CheckpointError =>
    new CheckpointError(`${file} is not a valid safetensors checkpoint: ${what}; save it again (or pass another --load file)`);
  if (bytes.length < 8) throw bad(`it is ${bytes.length} bytes, too short for the 8-byte header length (truncated?)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(bytes.length - 8)) throw bad(`its header length ${n64} runs past the end of the ${bytes.length}-byte file (truncated?)`);
  const n = Number(n64);
  if (n > MAX_HEADER) throw bad(`its header length ${n} is above the 100 MB limit`);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, n).toString('utf8'));
  } catch (e) {
    throw bad(`its header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('its header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const spans: { name: string; begin: number; end: number }[] = [];
  const tensors: TensorMap = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw bad(`${METADATA_KEY} is not an object`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw bad(`metadata ${JSON.stringify(k)} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof entry !== 'object' || entry === null) throw bad(`tensor ${name} has no description`);
    const { dtype, shape, data_offsets: offs } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (dtype !== 'F32') throw bad(`tensor ${name} has dtype ${JSON.stringify(dtype)}, only F32 is supported`);
    if (!validShape(shape)) throw bad(`tensor ${name} has shape ${JSON.stringify(shape)}, not a list of whole numbers ≥ 0`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw bad(`tensor ${name} has data_offsets ${JSON.stringify(offs)}, not [begin, end]`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataLen) throw bad(`tensor ${name} has data_offsets [${begin}, ${end}] outside the ${dataLen} data bytes (truncated?)`);
    if (end - begin !== elements(shape) * 4) {
      throw bad(`tensor ${name} has ${end - begin} bytes but F32 shape [${shape.join(', ')}] needs ${elements(shape) * 4}`);
    }
    spans.push({ name, begin, end });
    const copy = new Uint8Array(end - begin);
    copy.set(bytes.subarray(dataStart + begin, dataStart + end));
    let data: Float32Array;
    if (LITTLE_ENDIAN) {
      data = new Float32Array(copy.buffer);
    } else {
      data = new Float32Array(elements(shape));
      const dv = new DataView(copy.buffer);
      for (let i = 0; i < data.length; i++) data[i] = dv.getFloat32(i * 4, true);
    }
    tensors[name] = { shape, data };
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < spans.length; i++) {
    const p = spans[i - 1];
    const s = spans[i];
    if (s.begin < p.end) throw bad(`tensors ${p.name} [${p.begin}, ${p.end}] and ${s.name} [${s.begin}, ${s.end}] overlap`);
  }
  return { tensors, metadata };
}

/**
 * Writes `file` atomically: a temp file in the same folder, fsync, rename over `file`. On any
 * failure the temp file is removed and an existing `file` is left as it was. Throws CheckpointError.
 */
export function saveCheckpoint(file: string, tensors: TensorMap, metadata: Record<string, string> = {}, io: CheckpointIo = fs): void {
  const head = encodeHeader(tensors, metadata, file);
  const dir = dirname(file);
  if (!fs.existsSync(dir)) throw new CheckpointError(`cannot save ${file}: folder ${dir} does not exist; create it or give --save another path`);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  let fd: number | undefined;
  try {
    fd = io.openSync(tmp, 'wx', 0o644);
    writeAll(io, fd, head);
    for (const t of Object.values(tensors)) writeAll(io, fd, leBytes(t.data));
    io.fsyncSync(fd);
    io.closeSync(fd);
    fd = undefined;
    io.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) {
      try { io.closeSync(fd); } catch { /* already failing */ }
    }
    try { io.unlinkSync(tmp); } catch { /* never created */ }
    const err = e as NodeJS.ErrnoException;
    throw new CheckpointError(`cannot save ${file}: ${err.code ? `${err.code} ` : ''}${err.message.split('\n')[0]}; the previous file (if any) is unchanged`);
  }
  // Make the rename itself durable; not every platform lets a folder be opened, so best effort.
  try {
    const dfd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
  } catch { /* best effort */ }
}

function writeAll(io: CheckpointIo, fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    const n = io.writeSync(fd, bytes, done, bytes.length - done);
    if (n <= 0) throw new Error(`write returned ${n}`);
    done += n;
  }
}

/** Reads and validates `file`. Throws CheckpointError. */
export function loadCheckpoint(file: string): Checkpoint {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new CheckpointError(`checkpoint ${file} does not exist: check the --load path, or train with --save ${file} first`);
    if (err.code === 'EISDIR') throw new CheckpointError(`checkpoint ${file} is a folder: give --load the .safetensors file`);
    throw new CheckpointError(`cannot read checkpoint ${file}: ${err.message.split('\n')[0]}`);
  }
  const ckpt = decodeSafetensors(bytes, file);
  // A training-state file (--checkpoint-every) holds the parameters under their names plus the
  // optimizer state under state/...: as a parameters checkpoint, only the former count.
  if (ckpt.metadata.format === 'webgpu-train-state') {
    for (const name of Object.keys(ckpt.tensors)) if (name.startsWith('state/')) delete ckpt.tensors[name];
  }
  return ckpt;
}

/**
 * Checks that the checkpoint holds exactly the tensors `expected` names, each of its shape;
 * throws CheckpointError naming the first missing, extra or mismatched tensor.
 */
export function checkShapes(ckpt: Checkpoint, expected: Record<string, readonly number[]>, file = 'checkpoint'): void {
  for (const [name, shape] of Object.entries(expected)) {
    const t = ckpt.tensors[name];
    if (!t) throw new CheckpointError(`${file} has no tensor ${name} (expected shape [${shape.join(', ')}]): it is a checkpoint of another net; load it with the net it was saved from`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(`${file}: tensor ${name} has shape [${t.shape.join(', ')}] but this net needs [${shape.join(', ')}]: load it with the flags it was saved with (--hidden, --layers, --cell)`);
    }
  }
  for (const name of Object.keys(ckpt.tensors)) {
    if (!(name in expected)) throw new CheckpointError(`${file} has a tensor ${name} that this net does not have: it is a checkpoint of another net; load it with the net it was saved from`);
  }
}

/**
 * Checks the checkpoint's metadata against what the run expects for `keys` (e.g. net, hidden,
 * layers, cell); throws CheckpointError naming the first that differs, with the saved value.
 */
export function checkMetadata(ckpt: Checkpoint, expected: Record<string, string>, keys: readonly string[], file = 'checkpoint'): void {
  for (const k of keys) {
    const want = expected[k];
    const got = ckpt.metadata[k];
    if (want === undefined && got === undefined) continue;
    if (got === undefined) throw new CheckpointError(`${file} does not record ${k} in its metadata (not saved by this trainer?): it cannot be checked against this run's ${k}=${want}; load a checkpoint saved with --save`);
    if (got !== want) {
      const flag = k === 'net' ? `--net ${got}` : `--${k} ${got}`;
      throw new CheckpointError(`${file} was saved with ${k}=${got} but this run has ${k}=${want ?? '(none)'}: load it with ${flag}`);
    }
  }
}
