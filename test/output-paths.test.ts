// Every output path of `node dist/train.js` (--save, --log, --plots, --trace) is checked before any
// training: a path that cannot be written costs one line naming the flag and the fix, exit 2, and
// nothing is made. And at the end the checkpoint is written first, so an output that fails after it
// (a folder replaced by a file during the run) loses nothing of it.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkOutputPaths, OutputPathError } from '../src/cli/output-paths.js';
import { decodeSafetensors } from '../src/cli/checkpoint.js';
import { expectEarlyError, runCli, STACK } from './support/cli.js';
import { CLI_ENTRY, PACKAGE_ROOT } from './support/paths.js';
import { writeTinyMnist } from './support/tiny-mnist.js';

describe('train CLI: output paths are checked before training', function () {
  this.timeout(60_000);
  let root: string;
  let data: string;
  let aFile: string;
  let aFolder: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'output-paths-'));
    data = writeTinyMnist(join(root, 'data'));
    aFile = join(root, 'a-file.txt');
    writeFileSync(aFile, 'not a folder\n');
    aFolder = join(root, 'a-folder');
    mkdirSync(aFolder);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const run = (...flags: string[]) => runCli(['--net', 'mlp', '--data', data, '--val', '20', '--steps', '3', ...flags]);
  /** The root holds only what before() made: a refused run made nothing. */
  const nothingMade = () => expect(readdirSync(root).sort()).to.deep.equal(['a-file.txt', 'a-folder', 'data']);

  it('--plots naming an existing file', () => {
    expectEarlyError(run('--plots', aFile), `--plots ${aFile}`, 'is a file, not a folder', 'give a folder');
    expect(readFileSync(aFile, 'utf8')).to.equal('not a folder\n');
    nothingMade();
  });

  it('--plots inside a file', () => {
    expectEarlyError(run('--plots', join(aFile, 'plots')), '--plots', `${aFile} is a file, not a folder`);
    nothingMade();
  });

  it('--save naming a folder', () => {
    expectEarlyError(run('--save', aFolder), `--save ${aFolder} is a folder`, `--save ${aFolder}/model.safetensors`);
    expect(readdirSync(aFolder)).to.deep.equal([]);
    nothingMade();
  });

  it('--save inside a file', () => {
    expectEarlyError(run('--save', join(aFile, 'm.safetensors')), '--save', `${aFile} is a file, not a folder`);
    nothingMade();
  });

  it('--log in a folder that does not exist, or naming a folder', () => {
    const missing = join(root, 'no-such-dir', 'log.csv');
    expectEarlyError(run('--log', missing), `--log ${missing}`, 'does not exist', 'mkdir -p');
    mkdirSync(join(root, 'dir.csv'));
    try {
      expectEarlyError(run('--log', join(root, 'dir.csv')), `--log ${join(root, 'dir.csv')} is a folder`, 'give a file name');
    } finally {
      rmSync(join(root, 'dir.csv'), { recursive: true });
    }
    nothingMade();
  });

  it('--log with neither .csv nor .jsonl', () => {
    expectEarlyError(run('--log', join(root, 'log.txt')), '--log', 'does not end in .csv or .jsonl');
    nothingMade();
  });

  it('--trace inside a file', () => {
    expectEarlyError(run('--trace', join(aFile, 'sub', 'trace.json')), '--trace', `${aFile} is a file, not a folder`);
    nothingMade();
  });

  it('one path given to two outputs', () => {
    const p = join(root, 'same.csv');
    expectEarlyError(run('--save', p, '--log', p), `--log ${p} is also given to --save`);
    nothingMade();
  });

  it('accepts the paths it can make: a missing --plots folder, missing --trace folders, a new file in a folder', () => {
    expect(() => checkOutputPaths([
      { flag: '--plots', path: join(root, 'new', 'plots'), kind: 'folder' },
      { flag: '--trace', path: join(root, 'x', 'y', 'trace.json'), kind: 'file', createFolders: true },
      { flag: '--save', path: join(aFolder, 'm.safetensors'), kind: 'file' },
      { flag: '--log', path: aFile, kind: 'file' }, // an existing file is overwritten
    ])).not.to.throw();
    expect(() => checkOutputPaths([{ flag: '--save', path: join(root, 'new', 'm.safetensors'), kind: 'file' }])).to.throw(OutputPathError, 'does not exist');
    nothingMade();
  });

  it('the checkpoint is written first: a --plots folder replaced by a file during training costs one line, not the checkpoint', async () => {
    const save = join(root, 'first.safetensors');
    const plots = join(root, 'plots-later');
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI_ENTRY, '--net', 'softmax', '--data', data, '--val', '20', '--steps', '40', '--save', save, '--plots', plots], {
        cwd: PACKAGE_ROOT, env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' },
      });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('the run hung')); }, 50_000);
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        // The paths were checked at the start; now the folder's name is taken by a file.
        if (stdout.includes('adapter:') && !existsSync(plots)) writeFileSync(plots, 'in the way\n');
      });
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    });
    expect(statSync(plots).isFile(), 'the file put in the way during the run').to.equal(true);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    expect(errors, r.stderr).to.have.length(1);
    expect(r.stderr).not.to.match(STACK);
    expect(errors[0]).to.include(plots).and.include(`the checkpoint ${save} was written before it`);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.include(`saved ${save}`);
    const ckpt = decodeSafetensors(new Uint8Array(readFileSync(save)));
    expect(Object.keys(ckpt.tensors).length, 'parameters in the checkpoint').to.be.greaterThan(0);
    rmSync(plots);
    rmSync(save);
    nothingMade();
  });
});
