import { createNodeContext } from '../../src/gpu/node.js';
import type { GpuContext } from '../../src/gpu/context.js';

let shared: Promise<GpuContext> | undefined;

/** One context for the whole test run (device creation is slow on lavapipe); destroyed in the root hook. */
export function testContext(): Promise<GpuContext> {
  shared ??= createNodeContext();
  return shared;
}

export async function closeTestContext(): Promise<void> {
  if (shared) (await shared).destroy();
  shared = undefined;
}
