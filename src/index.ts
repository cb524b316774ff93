export { GpuContext, GpuError, describeAdapterInfo } from './gpu/context.js';
export { Kernel, type KernelConstants, type BufferBinding } from './gpu/kernel.js';
export { type Dispatch, encodeDispatch, runDispatches } from './gpu/dispatch.js';
export { BufferUsage, MapMode } from './gpu/flags.js';
export { matmul, type MatmulSpec, type MatmulBuffers, type Activation } from './kernels/matmul.js';
