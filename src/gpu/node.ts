// Node-only: a context on Dawn through the `webgpu` package. Kept out of the browser path.
import { GpuContext, type MatmulKernelChoice } from './context.js';
import { gentleWait } from './gentle-wait.js';

/** Options of createNodeContext. */
export interface NodeContextOptions {
  /** Dawn toggles; timestamp quantization is disabled by default so profiles are exact. */
  dawnOptions?: string[];
  noTimestamps?: boolean;
  /** Let dawn.node poll for GPU results flat out instead of gently (see gentle-wait.ts); for comparisons. */
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
  return GpuContext.request(gpu, { noTimestamps: opts.noTimestamps, wait: opts.spinWait ? undefined : gentleWait, matmulKernel: opts.matmulKernel });
}
