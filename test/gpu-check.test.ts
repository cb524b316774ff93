// The real-GPU check's parts (dist/tools/gpu-check-run.js, run by tools/gpu-check.sh) print one JSON
// line per figure that the script passes on as is: here the matmul part on a small odd shape.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './support/paths.js';

function runPart(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(PACKAGE_ROOT, 'dist', 'tools', 'gpu-check-run.js'), ...args], { cwd: PACKAGE_ROOT, encoding: 'utf8', timeout: 50_000, killSignal: 'SIGKILL' });
  if (r.error) throw new Error(`running gpu-check-run failed: ${(r.error as Error).message}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the real-GPU check (tools/gpu-check-run.ts)', function () {
  this.timeout(60_000);

  it('prints one JSON line per matmul shape: GFLOPS, its share of the given FMA peak, an exact spot check, the adapter', () => {
    const peak = 50;
    const r = runPart(['--part', 'matmul', '--shapes', '33x17x20,8x64x5', '--runs', '2', '--peak', String(peak)]);
    expect(r.code, r.stderr).to.equal(0);
    const lines = r.stdout.split('\n').filter((l) => l.length > 0);
    expect(lines, r.stdout).to.have.length(2);
    const figures = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(figures.map((f) => f.shape)).to.deep.equal(['33x17x20', '8x64x5']);
    for (const f of figures) {
      expect(f.figure).to.equal('matmul');
      expect(f.error, JSON.stringify(f)).to.equal(undefined);
      const [M, K, N] = (f.shape as string).split('x').map(Number);
      const ms = f.median_ms as number;
      expect(ms).to.be.greaterThan(0);
      // Both rounded to 4 significant digits: GFLOPS from the median time, the share from GFLOPS.
      expect(f.gflops as number).to.be.closeTo((2 * M * K * N) / (ms * 1e6), 2e-3 * (f.gflops as number));
      expect(f.share_of_fma_peak as number).to.be.closeTo((f.gflops as number) / peak, 2e-3 * (f.share_of_fma_peak as number));
      expect(f.spot_check_abs_err).to.equal(0);
      expect(f.runs).to.equal(2);
      expect(f.tile, 'without --tiles all, the kernel\'s default tile only').to.equal('default');
      expect(f.adapter).to.be.a('string').and.not.equal('');
    }
  });

  it('refuses a part it does not know in one line, exit 2, before any GPU work', () => {
    const r = runPart(['--part', 'matmull']);
    expect(r.code).to.equal(2);
    expect(r.stdout).to.equal('');
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/^error: .*--part/);
  });
});
