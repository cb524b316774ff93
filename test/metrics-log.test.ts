// --log FILE.csv | FILE.jsonl: a row per read (step, epoch, loss, accuracy, learning rate,
// examples/s) and a row per evaluation, written as the run goes, so a run killed with SIGKILL keeps
// every row written so far, each whole.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOG_COLUMNS } from '../src/cli/metrics-log.js';
import { runCli, STACK } from './support/cli.js';
import { CLI_ENTRY, PACKAGE_ROOT } from './support/paths.js';
import { writeTinyMnist } from './support/tiny-mnist.js';

type Row = Record<string, string | number | undefined>;

/** Parses a CSV log strictly: the header is LOG_COLUMNS, each line ends with a newline and has one field per column. */
function parseCsv(text: string): Row[] {
  expect(text.endsWith('\n'), 'the last row is whole').to.equal(true);
  const [header, ...lines] = text.slice(0, -1).split('\n');
  expect(header).to.equal(LOG_COLUMNS.join(','));
  return lines.map((line) => {
    const fields = line.split(',');
    expect(fields, line).to.have.length(LOG_COLUMNS.length);
    const row: Row = {};
    LOG_COLUMNS.forEach((c, i) => {
      const f = fields[i];
      if (c === 'event') row[c] = f;
      else if (f !== '') {
        expect(f, `${c} in ${line}`).to.match(/^-?\d+(\.\d+)?(e[+-]?\d+)?$/);
        row[c] = Number(f);
      }
    });
    return row;
  });
}

function parseJsonl(text: string): Row[] {
  expect(text.endsWith('\n'), 'the last row is whole').to.equal(true);
  return text.slice(0, -1).split('\n').map((line) => JSON.parse(line) as Row);
}

/** A training row has every training field as a finite number, and no validation fields. */
function expectTrainRow(r: Row, lr: number): void {
  for (const c of ['step', 'epoch', 'loss', 'accuracy', 'lr', 'examples_per_s', 'seconds']) {
    expect(Number.isFinite(r[c]), `${c} of ${JSON.stringify(r)}`).to.equal(true);
  }
  expect(r.val_loss).to.equal(undefined);
  expect(r.lr).to.equal(lr);
  expect(r.accuracy as number).to.be.within(0, 1);
  expect(r.examples_per_s as number).to.be.greaterThan(0);
}

describe('train CLI: --log writes a row per read and per evaluation', function () {
  this.timeout(120_000);
  let root: string;
  let data: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'metrics-log-'));
    data = writeTinyMnist(join(root, 'data'), 120, 20);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  // 100 training images in batches of 5: 20 steps an epoch, reads at steps 10 and 20 of each.
  const flags = () => ['--net', 'mlp', '--data', data, '--val', '20', '--batch', '5', '--epochs', '2', '--lr', '0.002'];

  for (const ext of ['csv', 'jsonl'] as const) {
    it(`a 2-epoch run: a row per read, one per validation, one for the test set (.${ext})`, () => {
      const file = join(root, `run.${ext}`);
      const r = runCli([...flags(), '--log', file]);
      expect(r.stderr).not.to.match(STACK);
      expect(r.code, r.stderr).to.equal(0);
      const text = readFileSync(file, 'utf8');
      const rows = ext === 'csv' ? parseCsv(text) : parseJsonl(text);
      expect(rows.map((x) => `${x.event} ${x.step} ${x.epoch ?? '-'}`)).to.deep.equal([
        'train 10 1', 'train 20 1', 'validation 20 1', 'train 30 2', 'train 40 2', 'validation 40 2', 'test 40 -',
      ]);
      for (const row of rows.filter((x) => x.event === 'train')) expectTrainRow(row, 0.002);
      for (const row of rows.filter((x) => x.event !== 'train')) {
        expect(row.val_loss as number, JSON.stringify(row)).to.be.greaterThan(0);
        expect(row.val_accuracy as number).to.be.within(0, 1);
        expect(row.loss, 'an evaluation row has no training loss').to.equal(undefined);
      }
      // The CLI prints the same figures: the epoch's validation accuracy is the logged one.
      const printed = [...r.stdout.matchAll(/validation loss ([\d.]+) acc ([\d.]+)/g)].map((m) => Number(m[2]));
      const logged = rows.filter((x) => x.event === 'validation').map((x) => Number((x.val_accuracy as number).toFixed(4)));
      expect(logged).to.deep.equal(printed);
    });
  }

  it('a run killed with SIGKILL midway keeps whole rows that all parse', async () => {
    const file = join(root, 'killed.csv');
    const child = spawn(process.execPath, [CLI_ENTRY, ...flags().slice(0, -4), '--steps', '100000', '--lr', '0.002', '--log', file], {
      cwd: PACKAGE_ROOT, env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' }, stdio: 'ignore',
    });
    const closed = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
    // Kill it once a few rows are down, mid-run (reads come every 10 steps, one row each).
    const t0 = performance.now();
    for (;;) {
      await new Promise((r) => setTimeout(r, 50));
      const rows = existsSync(file) ? readFileSync(file, 'utf8').split('\n').length - 2 : 0;
      if (rows >= 6) break;
      if (performance.now() - t0 > 100_000) {
        child.kill('SIGKILL');
        throw new Error('the run wrote fewer than 6 rows in 100 s');
      }
    }
    child.kill('SIGKILL');
    expect(await closed).to.equal('SIGKILL');
    const rows = parseCsv(readFileSync(file, 'utf8'));
    expect(rows.length).to.be.at.least(6);
    const train = rows.filter((x) => x.event === 'train');
    for (const row of train) expectTrainRow(row, 0.002);
    expect(train.map((x) => x.step)).to.deep.equal(train.map((_, i) => 10 * (i + 1)));
  });
});
