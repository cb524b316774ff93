import { expect } from 'chai';
import { EpochProgress, formatDuration } from '../src/cli/progress.js';

class Sink {
  chunks: string[] = [];
  isTTY?: boolean;
  columns?: number;
  constructor(tty: boolean, columns?: number) {
    this.isTTY = tty;
    this.columns = columns;
  }
  write(s: string): boolean {
    this.chunks.push(s);
    return true;
  }
  get text(): string {
    return this.chunks.join('');
  }
}

describe('progress (src/cli/progress.ts)', () => {
  it('formats durations', () => {
    expect(formatDuration(0)).to.equal('0:00');
    expect(formatDuration(75.4)).to.equal('1:15');
    expect(formatDuration(3725)).to.equal('1:02:05');
    expect(formatDuration(NaN)).to.equal('?');
  });

  it('not a terminal: one plain line per 10% and a last one, with rate, ETA and running loss', () => {
    const out = new Sink(false);
    let t = 0;
    const p = new EpochProgress({ stream: out, total: 550, batch: 100, epoch: 2, epochs: 5, now: () => t });
    for (let s = 1; s <= 550; s++) {
      t += 10; // 10 ms a step: 10,000 examples/s
      p.update(s, s % 10 === 0 ? 1 : undefined);
    }
    p.finish();
    const lines = out.text.trimEnd().split('\n');
    expect(lines).to.have.length(10); // 10%..90% and the final line
    expect(out.text).not.to.include('\r');
    expect(out.text).not.to.include('\x1b');
    expect(lines[0]).to.match(/^epoch 2\/5 +10% +55\/550 10000 ex\/s ETA 0:05 loss 1\.0000$/);
    expect(lines[4]).to.match(/50% 275\/550 .* ETA 0:03/);
    expect(lines[9]).to.match(/^epoch 2\/5 100% 550\/550 10000 ex\/s time 0:06 loss 1\.0000$/);
    expect(p.runningLoss).to.equal(1);
  });

  it('running loss is the mean of the losses given; none given shows none', () => {
    const out = new Sink(false);
    const p = new EpochProgress({ stream: out, total: 4, batch: 1, epoch: 1, now: () => 0 });
    p.update(1, 2);
    p.update(2, 4);
    expect(p.runningLoss).to.equal(3);
    const q = new EpochProgress({ stream: out, total: 4, batch: 1, epoch: 1, now: () => 0 });
    q.finish();
    expect(out.text.trimEnd().split('\n').pop()).not.to.include('loss');
  });

  it('terminal: redraws one line with \\r, throttled, fitting the width, newline at the end', () => {
    const out = new Sink(true, 100);
    let t = 0;
    const p = new EpochProgress({ stream: out, total: 1000, batch: 50, epoch: 1, epochs: 3, now: () => t });
    for (let s = 1; s <= 1000; s++) {
      t += 1; // 1 ms a step: a redraw every 100 steps
      p.update(s, 0.5);
    }
    p.finish();
    const draws = out.chunks.filter((c) => c.startsWith('\r'));
    expect(draws.length).to.be.within(10, 13);
    for (const d of draws) {
      const visible = d.replace('\r', '').replace('\x1b[K', '');
      expect(visible.length).to.be.at.most(99);
      expect(visible).to.match(/^epoch 1\/3 +\d+% \|[█░]+\| +\d+\/1000 /);
    }
    const last = draws[draws.length - 1];
    expect(last).to.include('100%').and.include('1000/1000').and.include('50000 ex/s').and.include('loss 0.5000');
    expect(last).to.include('|' + '█'.repeat((last.match(/█/g) ?? []).length) + '|');
    expect(last).not.to.include('░');
    const mid = draws[Math.floor(draws.length / 2)];
    expect(mid).to.include('░').and.include('ETA');
    expect(out.chunks[out.chunks.length - 1]).to.equal('\n');
    expect(out.text.split('\n')).to.have.length(2);
  });

  it('the bar fits a narrow terminal and a stream without a size', () => {
    const narrow = new Sink(true, 60);
    const p = new EpochProgress({ stream: narrow, total: 10, batch: 1, epoch: 1, now: () => 0 });
    p.update(5, 1.2345);
    expect(narrow.chunks[0].replace('\r', '').replace('\x1b[K', '').length).to.be.at.most(59);
    const forced = new Sink(false);
    const q = new EpochProgress({ stream: forced, tty: true, total: 10, batch: 1, epoch: 1, now: () => 0 });
    q.update(3);
    expect(forced.chunks[0]).to.match(/^\r.*\|.*\|/);
  });
});
