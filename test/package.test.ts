// The npm package as a user gets it: `npm pack` of the built project, installed into a new empty
// folder (its dependencies from the npm cache or registry), then its bin run with npx and the package
// imported from an ESM script and type-checked from TypeScript there.
import { expect } from 'chai';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './support/paths.js';
import { STACK } from './support/cli.js';

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';

function run(cmd: string, args: string[], cwd: string, timeoutMs: number, env: Record<string, string> = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? tmpdir(), npm_config_update_notifier: 'false', ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')} did not finish in ${timeoutMs} ms: ${(r.error as Error).message}`);
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  expect(r.status, `${what} exited with ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`).to.equal(0);
  return r.stdout;
}

describe('the npm package: packed, installed into an empty folder, and used there', function () {
  this.timeout(300_000);
  let work = '';
  let app = '';
  let packed: string[] = [];

  before(function () {
    this.timeout(300_000);
    work = mkdtempSync(join(tmpdir(), 'webgpu-train-package-'));
    // The build is already in dist/ (the tests run from it): pack it as it is, without prepack's rebuild.
    const json = ok(run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', work], PACKAGE_ROOT, 120_000), 'npm pack');
    const info = JSON.parse(json.slice(json.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    packed = info[0].files.map((f) => f.path);
    const tarball = join(work, info[0].filename);
    expect(existsSync(tarball), tarball).to.equal(true);
    app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'an-app', version: '1.0.0', private: true, type: 'module' }));
    ok(run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], app, 240_000), 'npm install of the tarball');
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the tarball holds the built library, the bin, the browser bundle and the license, and no tests or sources', () => {
    for (const f of ['package.json', 'README.md', 'LICENSE', 'dist/train.js', 'dist/src/node.js', 'dist/src/node.d.ts', 'dist/src/index.d.ts', 'dist/browser/webgpu-train.js']) {
      expect(packed, f).to.include(f);
    }
    const stray = packed.filter((f) => /^(dist\/test|dist\/tools|test|src|tools|node_modules)\//.test(f) || f.endsWith('.map') || f.endsWith('.ts') && !f.endsWith('.d.ts'));
    expect(stray, 'files users do not need').to.deep.equal([]);
  });

  it('npx webgpu-train --net mlp --steps 20 trains and prints the test accuracy', () => {
    const r = run(NPX, ['--no-install', 'webgpu-train', '--net', 'mlp', '--steps', '20', '--val', '0'], app, 180_000);
    ok(r, 'npx webgpu-train');
    expect(r.stdout).to.match(/trained 20 steps/);
    const m = /test accuracy (\d\.\d{4})/.exec(r.stdout);
    expect(m, r.stdout).to.not.equal(null);
    expect(Number(m![1]), 'above chance after 20 steps').to.be.greaterThan(0.3);
    expect(r.stderr).not.to.match(STACK);
  });

  it('an ESM script imports the package (node condition) and builds a trainer on the GPU with it', () => {
    writeFileSync(join(app, 'use.mjs'), `
import { createNodeContext, Trainer, sequential, dense, NET_KINDS, gentleWait } from 'webgpu-train';
import { matmul } from 'webgpu-train';
const ctx = await createNodeContext();
try {
  const trainer = await Trainer.create(ctx, { model: sequential([3], [dense({ units: 4, activation: 'softmax' })]), batch: 2, seed: 1, optimizer: { kind: 'sgd', lr: 0.1 } });
  trainer.destroy();
  console.log(JSON.stringify({ nets: NET_KINDS, gentleWait: typeof gentleWait, matmul: typeof matmul, ok: true }));
} finally {
  ctx.destroy();
}
`);
    const out = ok(run(process.execPath, ['use.mjs'], app, 120_000), 'node use.mjs');
    const got = JSON.parse(out.trim().split('\n').at(-1)!) as { nets: string[]; gentleWait: string; matmul: string; ok: boolean };
    expect(got).to.deep.include({ gentleWait: 'function', matmul: 'function', ok: true });
    expect(got.nets).to.include('mlp');
  });

  it('the browser condition resolves to the bundle, which has the browser-only data path', () => {
    const code = "const m = await import('webgpu-train'); console.log(typeof m.fetchMnist, typeof m.createNodeContext, typeof m.GpuContext);";
    const out = ok(run(process.execPath, ['--conditions=browser', '--input-type=module', '-e', code], app, 60_000), 'node --conditions=browser');
    expect(out.trim()).to.equal('function undefined function');
    // and the bundle it resolved to is the one shipped
    expect(readdirSync(join(app, 'node_modules', 'webgpu-train', 'dist', 'browser'))).to.deep.equal(['webgpu-train.js']);
  });

  it('TypeScript finds the package\'s types through its exports map', () => {
    writeFileSync(join(app, 'use-types.ts'), `
import { createNodeContext, type GpuContext, type TrainMetrics } from 'webgpu-train';
const ctx: Promise<GpuContext> = createNodeContext();
const m: TrainMetrics = { loss: 1, accuracy: 0.5, steps: 1 };
// @ts-expect-error: the package's types know that loss is a number
const bad: TrainMetrics = { loss: 'high', accuracy: 0.5, steps: 1 };
export { ctx, m, bad };
`);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: true, types: [] },
      files: ['use-types.ts'],
    }));
    const tsc = join(PACKAGE_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    ok(run(process.execPath, [tsc, '-p', 'tsconfig.json'], app, 120_000), 'tsc in the app');
  });
});
