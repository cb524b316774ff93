// Regenerates the README's plot screenshots in docs/plots/ from real runs of the CLI (after `npm run build`):
//   npm run docs:plots
// a 2-epoch mlp run (learning curves and misclassified digits) and a 300-step cnn run (learning curves).
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'docs', 'plots');
const runs = [
  { name: 'mlp-2-epochs', flags: ['--net', 'mlp', '--epochs', '2'], figures: ['learning-curves', 'misclassified'] },
  { name: 'cnn-300-steps', flags: ['--net', 'cnn', '--steps', '300'], figures: ['learning-curves'] },
];
const only = process.argv.slice(2);
mkdirSync(out, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'docs-plots-'));
try {
  for (const run of runs.filter((r) => only.length === 0 || only.includes(r.name))) {
    const dir = join(work, run.name);
    const args = [join(root, 'dist', 'train.js'), ...run.flags, '--plots', dir];
    console.log(`docs-plots: node ${args.slice(1).join(' ')}`);
    const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`the ${run.name} run exited with ${r.status ?? r.signal}`);
    for (const f of run.figures) {
      copyFileSync(join(dir, `${f}.png`), join(out, `${run.name}-${f}.png`));
      console.log(`docs-plots: docs/plots/${run.name}-${f}.png`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
