// The tools (dist/tools/*.js) parse their flags with the CLI's parser: a bad flag is one line naming
// it (with a suggestion), nothing else, exit 2, before any GPU work.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ArgsError, parseFlags, type FlagSpec } from '../src/cli/args.js';
import { PACKAGE_ROOT } from './support/paths.js';
import { STACK } from './support/cli.js';

function runTool(tool: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(PACKAGE_ROOT, 'dist', 'tools', `${tool}.js`), ...args], { cwd: PACKAGE_ROOT, encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
  if (r.error) throw new Error(`running ${tool} failed: ${(r.error as Error).message}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectOneLineError(r: { code: number | null; stdout: string; stderr: string }, ...parts: string[]): void {
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines, `stderr:\n${r.stderr}`).to.have.length(1);
  expect(lines[0]).to.match(/^error: /);
  for (const p of parts) expect(lines[0]).to.include(p);
  expect(r.stderr).not.to.match(STACK);
  expect(r.stdout).to.equal('');
  expect(r.code).to.equal(2);
}

describe("the tools' flags (tools/tool-args.ts on the CLI's parser)", function () {
  this.timeout(60_000);

  const SPECS: FlagSpec[] = [
    { name: 'runs', kind: 'int', arg: 'N', help: 'runs' },
    { name: 'cell', kind: 'choice', choices: ['lstm', 'gru'], arg: 'lstm|gru', help: 'cell' },
    { name: 'fused', kind: 'bool', help: 'fused' },
  ];

  it('parseFlags reads a tool\'s own flags in both forms and parses their kinds', () => {
    const raw = parseFlags(['--runs', '7', '--cell=gru', '--fused'], SPECS);
    expect([...raw.entries()]).to.deep.equal([['runs', 7], ['cell', 'gru'], ['fused', true]]);
  });

  it('parseFlags names an unknown flag and suggests the tool\'s nearest one', () => {
    expect(() => parseFlags(['--run', '7'], SPECS)).to.throw(ArgsError, 'unknown flag --run: did you mean --runs?');
    expect(() => parseFlags(['--runs', 'many'], SPECS)).to.throw(ArgsError, '--runs "many" is not a whole number');
    expect(() => parseFlags(['--cell', 'tcn'], SPECS)).to.throw(ArgsError, '--cell "tcn" is not one of lstm, gru');
  });

  for (const [tool, args, parts] of [
    ['plan', ['--nett', 'cnn'], ['unknown flag --nett', 'did you mean --net?']],
    ['plan', ['--net', 'resnet'], ['--net "resnet" is not one of']],
    ['bench', ['--step', '5'], ['unknown flag --step', 'did you mean --steps?']],
    ['bench', ['--nets', 'mlp,vgg'], ['--nets "vgg" is not one of mlp, cnn, rnn']],
    ['soak', ['--stepz', '5'], ['unknown flag --stepz', 'did you mean --steps?']],
    ['soak', ['--steps', '1'], ['--steps 1 must be at least 2']],
    ['bench-matmul', ['--shape', '8x8x8'], ['unknown flag --shape', 'did you mean --shapes?']],
    ['bench-matmul', ['--shapes', '8x8'], ['--shapes "8x8" is not MxKxN']],
    ['bench-lstm', ['--cells', 'gru'], ['unknown flag --cells', 'did you mean --cell?']],
    ['bench-peer', ['--backend', 'cuda'], ['--backend "cuda" is not one of webgpu, wasm']],
    ['bench-update', ['--shape', '784,10,100'], ['OUT (10) must be a multiple of 4']],
    ['bench-update', ['--shape', '784x256'], ['give three positive integers']],
  ] as const) {
    it(`${tool} ${args.join(' ')}: one line naming the flag, exit 2`, () => {
      expectOneLineError(runTool(tool, [...args]), ...parts);
    });
  }

  it('a tool\'s --help prints its usage and flags and exits 0', () => {
    const r = runTool('plan', ['--help']);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^usage: node dist\/tools\/plan\.js/);
    expect(r.stdout).to.include('--slots N');
    expect(r.stderr).to.equal('');
  });
});
