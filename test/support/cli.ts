// Runs `node dist/train.js` as a user would, from the package root, for the CLI tests.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { CLI_ENTRY, PACKAGE_ROOT } from './paths.js';
import { ArgsError, parseArgs } from '../../src/cli/args.js';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A stack trace or an uncaught error in the CLI's output: users should never see one. */
export const STACK = /^\s+at |\n\s+at |Error: .*\n|node:internal/;

/** Runs the CLI with `args` (and extra environment), killing it after `timeoutMs` as a hang. */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): CliRun {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI_ENTRY, ...args], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, XDG_RUNTIME_DIR: '/tmp', ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  const ms = performance.now() - t0;
  if (r.error) throw new Error(`running the CLI failed (${(r.error as Error).message}) after ${ms.toFixed(0)} ms: a hang?`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms };
}

/** One line "error: ..." on stderr holding every part, nothing on stdout (no GPU work), exit 2. */
export function expectEarlyError(r: CliRun, ...parts: string[]): string {
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines, `stderr:\n${r.stderr}`).to.have.length(1);
  const line = lines[0];
  expect(line).to.match(/^error: /);
  expect(r.stderr).not.to.match(STACK);
  for (const p of parts) expect(line, line).to.include(p);
  expect(r.stdout, 'nothing on stdout').to.equal('');
  expect(r.code, line).to.equal(2);
  return line;
}

/** Expects `run` to throw an ArgsError whose message is one line holding every part. */
export function expectOneLineArgsError(run: () => unknown, what: string, ...parts: string[]): void {
  let err: unknown;
  try {
    run();
  } catch (e) {
    err = e;
  }
  expect(err, `expected an ArgsError for ${what}`).to.be.instanceOf(ArgsError);
  const msg = (err as Error).message;
  expect(msg, 'one line').not.to.include('\n');
  for (const p of parts) expect(msg, msg).to.include(p);
}

/** Expects parseArgs(argv) to throw one ArgsError line holding every part. */
export function expectArgsError(argv: string[], ...parts: string[]): void {
  expectOneLineArgsError(() => parseArgs(argv), argv.join(' '), ...parts);
}
