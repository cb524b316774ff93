// Bundles the browser entry (src/browser.ts) into one ES module, dist/browser/webgpu-train.js, and
// the browser test bundle (test/browser/checks.ts: kernels + float64 references) next to it.
// platform 'browser' makes any Node-only import in those paths a build error.
import { build } from 'esbuild';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundles = [
  { entry: 'src/browser.ts', out: 'dist/browser/webgpu-train.js' },
  { entry: 'test/browser/checks.ts', out: 'dist/browser/test-checks.js' },
];
for (const b of bundles) {
  await build({
    absWorkingDir: root,
    entryPoints: [b.entry],
    outfile: b.out,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    logLevel: 'warning',
  });
  console.log(`build-browser: ${b.out} (${(statSync(join(root, b.out)).size / 1024).toFixed(0)} KB)`);
}
