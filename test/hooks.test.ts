import { closeTestContext } from './support/gpu.js';

// Root hook: release the shared device so mocha's process can exit.
after(async () => {
  await closeTestContext();
});
