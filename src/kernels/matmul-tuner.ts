// Per-adapter tuning of the matrix products: the first time an adapter meets a product (shape,
// transposes, epilogue, alignment), each tile variant of its kernel family (matmul-variants.ts) is
// timed on scratch buffers, at compile time, and the fastest is used from then on; the choices are
// kept in a store (a JSON file in Node, localStorage in a page) keyed by the adapter (ctx.tuningKey:
// its description, and a software adapter's thread count), so a later run (or a second context) on
// the same adapter times nothing. Every variant of a family computes the same sums in the same
// order, so the choice changes speed, not results.
import type { GpuContext } from '../gpu/context.js';
import { DispatchEncoder, type Dispatch } from '../gpu/dispatch.js';
import { PassTimer, median } from '../gpu/profiler.js';
import type { TunedProduct, TuningRecord, TuningStore } from '../gpu/tuning-store.js';

export type { TunedProduct, TuningRecord, TuningStore };

/** How a MatmulTuner times and where it keeps its choices. */
export interface MatmulTuningOptions {
  /** Where choices persist across runs; without one they last as long as the tuner. */
  store?: TuningStore;
  /** Timed runs per variant (after one warm-up run); the median counts. Default 5. */
  repetitions?: number;
  /** Time with the host's clock around onSubmittedWorkDone even where timestamp queries exist. */
  wallClock?: boolean;
  /** The host's clock in ms (default performance.now). */
  clock?: () => number;
  /** Where a warning goes (a damaged cache); default console.warn. */
  warn?: (message: string) => void;
  /** Only these variant ids are timed (the family's default always is); default: every variant. */
  variants?: readonly string[];
  /** Called before timing starts with the number of products to time (a first run is slower: say why). */
  onTiming?: (products: number) => void;
}

/** A product whose choice is not known yet: how to time its variants and where to apply the winner. */
export interface PendingProduct {
  key: string;
  /** Variant ids, the default first. */
  candidates: string[];
  /** The product prepared on scratch buffers, and how to free them. */
  scratch(): {
    /** The product as variant `id`. */
    dispatchOf(id: string): Dispatch;
    /** Frees every scratch buffer. */
    release(): void;
  };
  /** Switches the graph's dispatch(es) to variant `id`. */
  retarget: ((id: string) => void)[];
}

const active = new WeakMap<GpuContext, MatmulTuner>();

/** The tuner choosing variants for products prepared on `ctx` now (inside MatmulTuner.scope), if any. */
export function activeMatmulTuner(ctx: GpuContext): MatmulTuner | undefined {
  return active.get(ctx);
}

/** A new empty record. */
export function emptyTuningRecord(): TuningRecord {
  return { version: 1, adapters: {} };
}

/** Whether `x` has the shape of a TuningRecord (a cache written by another version, or damaged, does not). */
export function isTuningRecord(x: unknown): x is TuningRecord {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as { version?: unknown; adapters?: unknown };
  if (r.version !== 1 || typeof r.adapters !== 'object' || r.adapters === null) return false;
  for (const products of Object.values(r.adapters as Record<string, unknown>)) {
    if (typeof products !== 'object' || products === null) return false;
    for (const p of Object.values(products as Record<string, unknown>)) {
      const t = p as Partial<TunedProduct> | null;
      if (!t || typeof t.variant !== 'string' || !Array.isArray(t.candidates) || typeof t.ms !== 'object') return false;
    }
  }
  return true;
}

/**
 * Times the tile variants of the matrix products prepared inside `scope()` on one context and
 * makes them use the fastest. Products the store already knows for this adapter take the stored
 * choice at once; the others start with the default and are switched by `tunePending()`, which
 * the caller awaits after compiling (never per step).
 */
export class MatmulTuner {
  /** Variant timings done (each a warm-up and `repetitions` timed runs). */
  timings = 0;
  /** Products timed by this tuner. */
  tunedProducts = 0;
  private readonly known: Record<string, TunedProduct>;
  private readonly pending = new Map<string, PendingProduct>();
  private readonly repetitions: number;

  constructor(readonly ctx: GpuContext, private readonly opts: MatmulTuningOptions = {}) {
    this.repetitions = Math.max(1, Math.floor(opts.repetitions ?? 5));
    this.known = { ...(this.loadRecord()?.adapters[ctx.tuningKey] ?? {}) };
  }

  private loadRecord(): TuningRecord | undefined {
    const rec = this.opts.store?.load();
    if (rec === undefined) return undefined;
    if (isTuningRecord(rec)) return rec;
    this.warn('the matmul tuning cache has an unknown layout; ignoring it (it is rewritten after the next tuning)');
    return undefined;
  }

  private warn(message: string): void {
    (this.opts.warn ?? ((m: string) => console.warn(`webgpu-train: ${m}`)))(message);
  }

  /** Runs `fn` (which prepares matmuls on this tuner's context) with this tuner choosing their variants. */
  scope<T>(fn: () => T): T {
    const before = active.get(this.ctx);
    active.set(this.ctx, this);
    try {
      return fn();
    } finally {
      if (before) active.set(this.ctx, before);
      else active.delete(this.ctx);
    }
  }

  /** Whether variant `id` may be timed (see MatmulTuningOptions.variants). */
  considers(id: string): boolean {
    return !this.opts.variants || this.opts.variants.includes(id);
  }

  /** The stored choice for `key`, if it was made among exactly these candidates. */
  choice(key: string, candidates: readonly string[]): string | undefined {
    const t = this.known[key];
    if (!t || t.candidates.join(',') !== candidates.join(',') || !candidates.includes(t.variant)) return undefined;
    return t.variant;
  }

  /** Notes a product to time in tunePending(); products of one key are timed once. */
  defer(p: PendingProduct): void {
    const same = this.pending.get(p.key);
    if (same) same.retarget.push(...p.retarget);
    else this.pending.set(p.key, { ...p, retarget: [...p.retarget] });
  }

  /** Products waiting for tunePending(). */
  get pendingProducts(): number {
    return this.pending.size;
  }

  /** Times every pending product's variants, switches its dispatches to the fastest, and saves the choices. */
  async tunePending(): Promise<void> {
    if (this.pending.size === 0) return;
    const products = [...this.pending.values()];
    this.pending.clear();
    this.opts.onTiming?.(products.length);
    const useTimestamps = this.ctx.hasTimestamps && !this.opts.wallClock;
    const timer = useTimestamps ? new PassTimer(this.ctx, this.repetitions + 1) : undefined;
    const learned: Record<string, TunedProduct> = {};
    try {
      for (const p of products) {
        const ms: Record<string, number> = {};
        const s = p.scratch();
        try {
          for (const id of p.candidates) {
            const d = s.dispatchOf(id);
            try {
              await d.kernel.ready;
            } catch {
              continue; // a variant this adapter cannot compile is not a candidate
            }
            ms[id] = timer ? await this.timeWithTimestamps(timer, d) : await this.timeWithClock(d);
            this.timings++;
          }
        } finally {
          s.release();
        }
        const timed = Object.keys(ms);
        if (timed.length === 0) continue;
        const best = timed.reduce((a, b) => (ms[b] < ms[a] ? b : a));
        for (const retarget of p.retarget) retarget(best);
        learned[p.key] = { variant: best, candidates: p.candidates, ms };
        this.tunedProducts++;
      }
    } finally {
      timer?.destroy();
    }
    Object.assign(this.known, learned);
    this.ctx.throwIfFailed('tuning the matrix products');
    if (this.opts.store && Object.keys(learned).length) {
      // Merge with what another run may have saved meanwhile.
      const rec = this.loadRecord() ?? emptyTuningRecord();
      rec.adapters[this.ctx.tuningKey] = { ...(rec.adapters[this.ctx.tuningKey] ?? {}), ...learned };
      this.opts.store.save(rec);
    }
  }

  /** The choices known for this adapter (stored and learned), by product key. */
  get choices(): Readonly<Record<string, TunedProduct>> {
    return this.known;
  }

  private async timeWithTimestamps(timer: PassTimer, d: Dispatch): Promise<number> {
    timer.reset();
    const enc = this.ctx.device.createCommandEncoder();
    const dispatches = new DispatchEncoder(enc);
    for (let i = 0; i <= this.repetitions; i++) dispatches.encode([d], timer.pass(`${d.label} ${i}`));
    timer.resolve(enc);
    this.ctx.device.queue.submit([enc.finish()]);
    const times = await timer.read();
    return median(times.slice(1).map((t) => t.ns / 1e6));
  }

  private async timeWithClock(d: Dispatch): Promise<number> {
    const clock = this.opts.clock ?? (() => performance.now());
    const times: number[] = [];
    for (let i = 0; i <= this.repetitions; i++) {
      const t0 = i > 0 ? clock() : 0; // run 0 warms up
      const enc = this.ctx.device.createCommandEncoder();
      new DispatchEncoder(enc).encode([d]);
      this.ctx.device.queue.submit([enc.finish()]);
      await this.ctx.wait(() => this.ctx.device.queue.onSubmittedWorkDone());
      if (i > 0) times.push(clock() - t0);
    }
    return median(times);
  }
}
