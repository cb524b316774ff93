// Node-only: the tuning cache as a JSON file in the user's cache folder. Kept out of the browser path.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TuningRecord, TuningStore } from './tuning-store.js';

/** $XDG_CACHE_HOME/webgpu-train/tuning.json, or ~/.cache/webgpu-train/tuning.json. */
export function defaultTuningFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.length ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'webgpu-train', 'tuning.json');
}

/**
 * A store in a JSON file (default: defaultTuningFile()). Saves are atomic (a temp file in the same
 * folder, then a rename), so a reader never sees half a file; a damaged or unreadable file is
 * ignored with one warning, and a failed save warns once: neither ever stops a run.
 */
export function fileTuningStore(file = defaultTuningFile(), warn: (m: string) => void = (m) => console.warn(`webgpu-train: ${m}`)): TuningStore & { file: string } {
  let warned = false;
  const warnOnce = (m: string) => {
    if (!warned) warn(m);
    warned = true;
  };
  return {
    file,
    load() {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') warnOnce(`cannot read the matmul tuning cache ${file} (${(e as Error).message}); tuning again`);
        return undefined;
      }
      try {
        return JSON.parse(text) as TuningRecord;
      } catch {
        warnOnce(`the matmul tuning cache ${file} is damaged; ignoring it (it is rewritten after the next tuning)`);
        return undefined;
      }
    },
    save(record) {
      const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
      try {
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(tmp, `${JSON.stringify(record, null, 1)}\n`);
        renameSync(tmp, file);
      } catch (e) {
        try { rmSync(tmp, { force: true }); } catch { /* nothing more to do */ }
        warnOnce(`cannot save the matmul tuning cache ${file} (${(e as Error).message})`);
      }
    },
  };
}
