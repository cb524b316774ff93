// The CLI's output paths (--save, --log, --plots, --trace, ...), checked before any training: a
// path that cannot be written costs one line naming the flag and the fix at once, not a stack
// trace after hours of training (with the checkpoint lost).
import { accessSync, constants, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { TrainArgs } from './args.js';
import { LOG_EXTENSIONS } from './metrics-log.js';

/** An output path that cannot be written. The message is one line naming the flag and the fix. */
export class OutputPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutputPathError';
  }
}

/**
 * One output of a run. 'file': written whole or appended (its folder must exist, or with
 * `createFolders` be creatable); 'folder': made if missing, files are written into it.
 */
export interface OutputPath {
  flag: string;
  path: string;
  kind: 'file' | 'folder';
  /** A file's missing parent folders are made (as --trace always did); otherwise the folder must exist. */
  createFolders?: boolean;
  /** An example file name for the message when a folder is given for this file. */
  example?: string;
  /** The file name endings accepted (e.g. ['.csv', '.jsonl']); any when absent. */
  extensions?: readonly string[];
}

/**
 * Every output path the flags ask for, in the order they are written. A new output flag is one
 * more line here.
 */
export function outputPaths(args: TrainArgs): OutputPath[] {
  const out: (OutputPath | false | undefined)[] = [
    !args.eval && args.save !== undefined && { flag: '--save', path: args.save, kind: 'file', example: 'model.safetensors' },
    args.log !== undefined && { flag: '--log', path: args.log, kind: 'file', example: 'log.csv', extensions: LOG_EXTENSIONS },
    args.plots !== undefined && { flag: '--plots', path: args.plots, kind: 'folder' },
    args.trace !== undefined && { flag: '--trace', path: args.trace, kind: 'file', createFolders: true, example: 'trace.json' },
    args.export !== undefined && { flag: '--export', path: args.export, kind: 'file', example: 'model.onnx' },
  ];
  return out.filter((o): o is OutputPath => !!o);
}

function stat(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function writable(path: string, mode = constants.W_OK): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

/** The nearest folder above `path` that exists (or a file in the way, which is reported). */
function nearestExisting(path: string): { path: string; stats: Stats } {
  let p = resolve(path);
  for (;;) {
    const parent = dirname(p);
    const s = stat(parent);
    if (s || parent === p) return { path: parent, stats: s! };
    p = parent;
  }
}

/** Throws OutputPathError (one line: the flag, the problem, the fix) for the first path that cannot be written. */
export function checkOutputPaths(paths: readonly OutputPath[]): void {
  const seen = new Map<string, string>();
  for (const o of paths) {
    const { flag, path } = o;
    const key = resolve(path);
    const other = seen.get(key);
    if (other) throw new OutputPathError(`${flag} ${path} is also given to ${other}: give each output its own path`);
    seen.set(key, flag);
    if (o.extensions && !o.extensions.some((e) => path.toLowerCase().endsWith(e))) {
      throw new OutputPathError(`${flag} ${path} does not end in ${o.extensions.join(' or ')}: give e.g. ${flag} ${o.example ?? `out${o.extensions[0]}`}`);
    }
    const s = stat(path);
    if (o.kind === 'file') {
      if (s?.isDirectory()) throw new OutputPathError(`${flag} ${path} is a folder: give a file name, e.g. ${flag} ${path.replace(/\/+$/, '')}/${o.example ?? 'out'}`);
      if (s && !s.isFile()) throw new OutputPathError(`${flag} ${path} exists and is not a regular file: give another path`);
      if (s && !writable(path)) throw new OutputPathError(`${flag} ${path} is not writable: make it writable (chmod u+w) or give another path`);
    } else {
      if (s && !s.isDirectory()) throw new OutputPathError(`${flag} ${path} is a file, not a folder: give a folder (it is made if missing), e.g. ${flag} ${path}-plots`);
      if (s && !writable(path, constants.W_OK | constants.X_OK)) throw new OutputPathError(`${flag} ${path} is a folder that cannot be written: make it writable or give another folder`);
      if (s) continue;
    }
    // The folder the path is made in: it must exist (or, where it is made, its nearest existing
    // ancestor must be a folder) and be writable.
    const dir = dirname(path);
    const makesFolders = o.kind === 'folder' || o.createFolders === true;
    const ds = stat(dir);
    const base = ds ? { path: dir, stats: ds } : nearestExisting(dir);
    if (!base.stats.isDirectory()) throw new OutputPathError(`${flag} ${path}: ${base.path} is a file, not a folder: give ${flag} a path in a folder`);
    if (!ds && !makesFolders) throw new OutputPathError(`${flag} ${path}: folder ${dir} does not exist: create it (mkdir -p ${dir}) or give ${flag} another path`);
    if (!writable(base.path, constants.W_OK | constants.X_OK)) throw new OutputPathError(`${flag} ${path}: folder ${base.path} is not writable: give ${flag} a path in a folder you can write`);
  }
}

/** A failed file system call (EEXIST, ENOSPC, EACCES, ...): a Node error with a code and the call's name. */
export function isFileError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}
