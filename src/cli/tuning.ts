// The tuner the Node entry points use (the CLI, the bench, the GPU check): matmul tile variants
// timed once per adapter and product, the choices cached in the user's cache folder.
import type { GpuContext } from '../gpu/context.js';
import { fileTuningStore } from '../gpu/tuning-store-node.js';
import { MatmulTuner } from '../kernels/matmul-tuner.js';

/** Set to turn tuning off in every Node entry point (the test suite does: its runs stay quick). */
export const NO_TUNE_ENV = 'WEBGPU_TRAIN_NO_TUNE';

/**
 * A tuner whose choices persist in $XDG_CACHE_HOME/webgpu-train/tuning.json (else ~/.cache/...),
 * or undefined (the default tiles) where `tune` is false or WEBGPU_TRAIN_NO_TUNE is set. The first
 * run on an adapter says, through `log`, what it is timing and how to skip it.
 */
export function nodeMatmulTuner(ctx: GpuContext, tune: boolean, log: (line: string) => void, env: NodeJS.ProcessEnv = process.env): MatmulTuner | undefined {
  if (!tune || env[NO_TUNE_ENV]) return undefined;
  const store = fileTuningStore();
  return new MatmulTuner(ctx, {
    store,
    onTiming: (n) => log(`timing matmul tile variants for ${n} products on this adapter (once: the choices are cached in ${store.file}; --no-tune or ${NO_TUNE_ENV}=1 skips this)`),
  });
}
