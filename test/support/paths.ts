// Paths the tests need, resolved from this file so the suite runs from a clone in any folder.
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The package root: this file runs as dist/test/support/paths.js. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The CLI's entry point, as `node dist/train.js` runs it. */
export const CLI_ENTRY = join(PACKAGE_ROOT, 'dist/train.js');
