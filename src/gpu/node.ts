// Node-only: a context on Dawn through the `webgpu` package. Kept out of the browser path.
import { availableParallelism } from 'node:os';
import { GpuContext, type MatmulKernelChoice } from './context.js';
import { gentleWait } from './gentle-wait.js';

/** Options of createNodeContext. */
export interface NodeContextOptions {
  /** Dawn toggles; timestamp quantization is disabled by default so profiles are exact. */
  dawnOptions?: string[];
  noTimestamps?: boolean;
  /**
   * Let dawn.node poll for GPU results flat out (true) or gently (false; see gentle-wait.ts).
   * Default: gently on a software adapter, whose kernels run on the cores the polling takes; flat
   * out on a GPU, where polling costs a host core, not GPU time, and a gentle poll's 0.2 ms sleep
   * would add to every read-back.
   */
  spinWait?: boolean;
  /** See ContextOptions.matmulKernel. */
  matmulKernel?: MatmulKernelChoice;
  /**
   * Threads of a software adapter (Mesa llvmpipe's LP_NUM_THREADS, set for the process where the
   * environment does not set it; other drivers ignore it). Default: three per core, see
   * softwareAdapterThreads.
   */
  softwareThreads?: number;
}

/** A GpuContext on a Dawn (npm `webgpu`) adapter in Node; the context created the device, so its destroy() destroys the device too. */
export async function createNodeContext(opts: NodeContextOptions = {}): Promise<GpuContext> {
  // Vulkan loaders complain without a runtime dir on headless machines.
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  useSoftwareAdapterThreads(opts.softwareThreads);
  const { create } = await import('webgpu');
  const gpu = create(opts.dawnOptions ?? ['disable-dawn-features=timestamp_quantization']);
  // Gently until the adapter is known (nothing waits on the GPU before then).
  let gently = true;
  const ctx = await GpuContext.request(gpu, {
    noTimestamps: opts.noTimestamps, matmulKernel: opts.matmulKernel, wait: (start) => (gently ? gentleWait(start) : start()),
    softwareSettings: `LP_NUM_THREADS=${process.env.LP_NUM_THREADS}`,
  });
  gently = waitsGently(ctx.softwareAdapter, opts.spinWait);
  return ctx;
}

/** Whether a Node context on this kind of adapter waits gently (NodeContextOptions.spinWait). */
export function waitsGently(softwareAdapter: boolean, spinWait?: boolean): boolean {
  return spinWait === undefined ? softwareAdapter : !spinWait;
}

/**
 * The threads a software adapter gets by default on `cores` cores: three per core, at most 32
 * (llvmpipe's most). llvmpipe hands each thread an equal share of a dispatch's workgroups, taken
 * whole (Mesa's lp_cs_tpool), so with one thread per core a core that the host, the driver's queue
 * thread or another process holds for a while leaves the others idle at the end of every dispatch.
 * With three, the kernel's scheduler moves the shares of a held core to the idle ones
 * (BENCHMARKS.md, "Threads of a software adapter").
 */
export function softwareAdapterThreads(cores: number): number {
  return Math.min(32, 3 * Math.max(1, cores));
}

/**
 * Gives the software adapters made from now on in this process `threads` threads (LP_NUM_THREADS,
 * which lavapipe reads when an adapter is made), unless the environment already says how many.
 */
export function useSoftwareAdapterThreads(threads = softwareAdapterThreads(availableParallelism())): void {
  if (!lookedAtEnvironment) {
    lookedAtEnvironment = true;
    environmentThreads = process.env.LP_NUM_THREADS;
  }
  process.env.LP_NUM_THREADS ??= String(threads);
}

let lookedAtEnvironment = false;
let environmentThreads: string | undefined;

/** LP_NUM_THREADS as the environment gave it, before the engine set its own (for child processes that should not inherit the engine's). */
export function threadsFromEnvironment(): string | undefined {
  return lookedAtEnvironment ? environmentThreads : process.env.LP_NUM_THREADS;
}
