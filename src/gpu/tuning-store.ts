// Where tuning results persist: the record's types, an in-memory store and a page's localStorage
// store. The Node file store is in tuning-store-node.ts (Node-only, kept out of the browser bundle).

/** What the tuner learned about one matrix product on one adapter. */
export interface TunedProduct {
  /** The fastest variant's id. */
  variant: string;
  /** The variants timed (a stored choice counts only while the candidates are the same). */
  candidates: string[];
  /** Median time of each candidate, ms. */
  ms: Record<string, number>;
}

/** The tuning cache: per adapter description, per product key, the choice. */
export interface TuningRecord {
  version: 1;
  adapters: Record<string, Record<string, TunedProduct>>;
}

/** Where tuning results persist (injected: a file in Node, localStorage in a page, memory in tests). */
export interface TuningStore {
  /** The saved record, or undefined when there is none or it is unreadable (the store then warns once). */
  load(): TuningRecord | undefined;
  /** Saves the record; a failure warns and never throws (tuning again next time is the only cost). */
  save(record: TuningRecord): void;
}

/** A store in memory: for tests, and for several trainers of one process sharing their choices. */
export class MemoryTuningStore implements TuningStore {
  saves = 0;
  constructor(public record: TuningRecord | undefined = undefined) {}
  load(): TuningRecord | undefined {
    return this.record && (JSON.parse(JSON.stringify(this.record)) as TuningRecord);
  }
  save(record: TuningRecord): void {
    this.saves++;
    this.record = JSON.parse(JSON.stringify(record)) as TuningRecord;
  }
}

/** The key of the page's tuning record in localStorage. */
export const TUNING_STORAGE_KEY = 'webgpu-train/tuning';

/**
 * A store in a page's localStorage (or any Storage). A damaged entry is ignored with one warning;
 * a full or blocked storage warns once and keeps working without saving.
 */
export function localStorageTuningStore(storage: Storage = globalThis.localStorage, warn: (m: string) => void = (m) => console.warn(`webgpu-train: ${m}`)): TuningStore {
  let warned = false;
  const warnOnce = (m: string) => {
    if (!warned) warn(m);
    warned = true;
  };
  return {
    load() {
      let text: string | null;
      try {
        text = storage.getItem(TUNING_STORAGE_KEY);
      } catch (e) {
        warnOnce(`cannot read the matmul tuning cache from localStorage (${(e as Error).message}); tuning again`);
        return undefined;
      }
      if (text === null) return undefined;
      try {
        return JSON.parse(text) as TuningRecord;
      } catch {
        warnOnce(`the matmul tuning cache in localStorage["${TUNING_STORAGE_KEY}"] is damaged; ignoring it`);
        return undefined;
      }
    },
    save(record) {
      try {
        storage.setItem(TUNING_STORAGE_KEY, JSON.stringify(record));
      } catch (e) {
        warnOnce(`cannot save the matmul tuning cache to localStorage (${(e as Error).message})`);
      }
    },
  };
}
