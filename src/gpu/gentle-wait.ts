// Node-only: waiting for dawn.node without spinning a core.
//
// dawn.node delivers the results of mapAsync and onSubmittedWorkDone by polling Dawn from the JS
// event loop: while any such promise is pending it queues a native tick with setImmediate, again
// and again, so the main thread runs at most of a core (measured on lavapipe: 3.1 ms of CPU in
// 3.7 ms of waiting). On a software adapter that core is one of those running the kernels: a cnn
// step's GPU pass took 120 ms with the host asleep and 210 ms with it polling.
//
// While one of the engine's waits is pending, `gentleWait` puts a short futex sleep
// (Atomics.wait, TICK_MS) in front of each of dawn.node's ticks but the first: a result that is
// ready is seen at once, and one that is not arrives within a fraction of a millisecond of
// being ready, for a small share of the CPU. Only native callbacks are delayed (dawn.node's
// ticks; also any built-in, such as a bare promise resolver, that other code hands to
// setImmediate meanwhile: it runs TICK_MS later); JS callbacks pass straight through, and the
// global is restored as soon as the last wait settles.

import { promisify } from 'node:util';

const TICK_MS = 0.2;
const NATIVE = /\{\s*\[native code\]\s*\}\s*$/;
const cell = new Int32Array(new SharedArrayBuffer(4));
let pending = 0;
let original: typeof setImmediate | undefined;
/** The next tick is the first of a wait: it runs at once (the GPU may well be done already). */
let first = false;

function isNative(fn: unknown): boolean {
  return typeof fn === 'function' && NATIVE.test(Function.prototype.toString.call(fn));
}

/** Starts the GPU wait `start()` (a mapAsync, onSubmittedWorkDone) with dawn.node's polling slowed to one tick per TICK_MS. */
export async function gentleWait<T>(start: () => Promise<T>): Promise<T> {
  // Installed before start(): dawn.node queues its first tick inside mapAsync itself.
  if (pending++ === 0) {
    const immediate = globalThis.setImmediate;
    original = immediate;
    const slowed = (fn: (...a: unknown[]) => void, ...args: unknown[]) => {
      if (isNative(fn)) {
        if (first) first = false;
        else Atomics.wait(cell, 0, 0, TICK_MS);
      }
      return immediate(fn, ...args);
    };
    // util.promisify(setImmediate) keeps working meanwhile.
    Object.defineProperty(slowed, promisify.custom, { value: (immediate as unknown as Record<symbol, unknown>)[promisify.custom] });
    globalThis.setImmediate = slowed as typeof setImmediate;
  }
  first = true;
  try {
    return await start();
  } finally {
    if (--pending === 0) {
      globalThis.setImmediate = original!;
      original = undefined;
    }
  }
}
