import { closeTestContext } from './support/gpu.js';
import { NO_TUNE_ENV } from '../src/cli/tuning.js';

// The CLI tunes its matrix products by default (pipeline compiles of every tile variant: minutes on
// lavapipe): the suite's CLI runs, which inherit this, use the default tiles and never touch the
// user's tuning cache. (XDG_CACHE_HOME stays: Mesa keeps its compiled shaders there.)
process.env[NO_TUNE_ENV] = '1';

// Root hook: release the shared device so mocha's process can exit.
after(async () => {
  await closeTestContext();
});
