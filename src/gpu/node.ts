// Node-only: a context on Dawn through the `webgpu` package. Kept out of the browser path.
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
}

/** A GpuContext on a Dawn (npm `webgpu`) adapter in Node; the context created the device, so its destroy() destroys the device too. */
export async function createNodeContext(opts: NodeContextOptions = {}): Promise<GpuContext> {
  // Vulkan loaders complain without a runtime dir on headless machines.
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const { create } = await import('webgpu');
  const gpu = create(opts.dawnOptions ?? ['disable-dawn-features=timestamp_quantization']);
  // Gently until the adapter is known (nothing waits on the GPU before then).
  let gently = true;
  const ctx = await GpuContext.request(gpu, {
    noTimestamps: opts.noTimestamps, matmulKernel: opts.matmulKernel, wait: (start) => (gently ? gentleWait(start) : start()),
  });
  gently = waitsGently(ctx.softwareAdapter, opts.spinWait);
  return ctx;
}

/** Whether a Node context on this kind of adapter waits gently (NodeContextOptions.spinWait). */
export function waitsGently(softwareAdapter: boolean, spinWait?: boolean): boolean {
  return spinWait === undefined ? softwareAdapter : !spinWait;
}
