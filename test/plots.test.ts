import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { GLYPHS, Raster, learningCurvesPng, misclassifiedPng, niceTicks, textWidth, writePlots, type EpochStats } from '../src/cli/plots.js';

function decode(buf: Buffer): PNG {
  return PNG.sync.read(buf);
}

/** Distinct RGB colours in the image. */
function colours(png: PNG): Set<number> {
  const s = new Set<number>();
  for (let i = 0; i < png.data.length; i += 4) s.add((png.data[i] << 16) | (png.data[i + 1] << 8) | png.data[i + 2]);
  return s;
}

function pixel(png: PNG, x: number, y: number): [number, number, number] {
  const i = (y * png.width + x) * 4;
  return [png.data[i], png.data[i + 1], png.data[i + 2]];
}

const history: EpochStats[] = Array.from({ length: 8 }, (_, i) => ({
  epoch: i + 1, trainLoss: 1 / (i + 1), valLoss: 1.2 / (i + 1) + 0.05, trainAcc: 0.9 + 0.01 * i, valAcc: 0.88 + 0.01 * i,
}));

describe('PNG plots (src/cli/plots.ts)', () => {
  it('every glyph is 7 rows of 5 bits', () => {
    for (const [ch, hex] of Object.entries(GLYPHS)) {
      expect(hex, `glyph ${JSON.stringify(ch)}`).to.match(/^[0-9a-f]{14}$/);
      for (let i = 0; i < 7; i++) expect(parseInt(hex.slice(2 * i, 2 * i + 2), 16), `glyph ${ch}`).to.be.lessThan(32);
    }
    for (const ch of 'label=, predict:0123456789.-epochlossaccuracytrainvalidation') expect(GLYPHS[ch], ch).to.be.a('string');
  });

  it('text draws glyph pixels where the table says', () => {
    const r = new Raster(20, 10);
    r.text(1, 1, '1');
    // '1' = 04 0c 04 04 04 04 0e: row 0 has only column 2 set
    expect(r.get(3, 1)).to.deep.equal([0, 0, 0]);
    expect(r.get(2, 1)).to.deep.equal([255, 255, 255]);
    expect(r.get(1, 7)).to.deep.equal([255, 255, 255]);
    expect(r.get(2, 7)).to.deep.equal([0, 0, 0]); // bottom row 0e: columns 1-3
    expect(textWidth('ab', 2)).to.equal(22);
  });

  it('lines reach both ends and a raster encodes to a PNG of its size', () => {
    const r = new Raster(31, 17);
    r.line(0, 0, 30, 16, [255, 0, 0]);
    const png = decode(r.png());
    expect([png.width, png.height]).to.deep.equal([31, 17]);
    expect(pixel(png, 0, 0)).to.deep.equal([255, 0, 0]);
    expect(pixel(png, 30, 16)).to.deep.equal([255, 0, 0]);
    expect(pixel(png, 30, 0)).to.deep.equal([255, 255, 255]);
  });

  it('niceTicks gives round steps covering the range', () => {
    const t = niceTicks(0.873, 0.991, 5);
    expect(t.step).to.be.closeTo(0.02, 1e-12);
    expect(t.min).to.be.at.most(0.873);
    expect(t.max).to.be.at.least(0.991);
    expect(t.ticks[0]).to.be.closeTo(0.86, 1e-9);
    const flat = niceTicks(2, 2);
    expect(flat.min).to.be.lessThan(2);
    expect(flat.max).to.be.greaterThan(2);
  });

  it('learning curves: decodes, has the size, both series colours and the axes', () => {
    const png = decode(learningCurvesPng(history));
    expect([png.width, png.height]).to.deep.equal([960, 420]);
    const c = colours(png);
    expect(c.has(0xffffff)).to.equal(true);
    expect(c.has((31 << 16) | (119 << 8) | 180), 'train blue').to.equal(true);
    expect(c.has((255 << 16) | (127 << 8) | 14), 'validation orange').to.equal(true);
    expect(c.size).to.be.greaterThan(4);
  });

  it('learning curves with one epoch, and with a NaN loss, still draw', () => {
    const one = decode(learningCurvesPng([{ epoch: 1, trainLoss: 0.5, valLoss: 0.6, valAcc: 0.9 }]));
    expect(colours(one).has((255 << 16) | (127 << 8) | 14)).to.equal(true);
    const blown = decode(learningCurvesPng([{ epoch: 1, trainLoss: 0.5 }, { epoch: 2, trainLoss: NaN }]));
    expect(blown.width).to.equal(960);
  });

  it('misclassified grid: 5x5 cells, the digits drawn dark, titles drawn', () => {
    const rows = 28;
    const cols = 28;
    const n = 30;
    // image k: a filled square whose size depends on k
    const images = new Float32Array(n * rows * cols);
    for (let k = 0; k < n; k++) for (let r = 4; r < 24; r++) for (let c = 4; c < 24; c++) images[k * 784 + r * cols + c] = 1;
    const items = Array.from({ length: 27 }, (_, k) => ({ index: k, label: k % 10, predict: (k + 1) % 10 }));
    const png = decode(misclassifiedPng(images, rows, cols, items));
    const cellW = Math.max(28 * 4, textWidth('label=9, predict=9')) + 16;
    const cellH = 28 * 4 + 30;
    expect(png.width).to.equal(cellW * 5);
    expect(png.height).to.equal(34 + cellH * 5);
    // the centre of every cell's image is black (value 1), its corner white
    for (let k = 0; k < 25; k++) {
      const ix = (k % 5) * cellW + (cellW - 112) / 2;
      const iy = 34 + Math.floor(k / 5) * cellH + 18;
      expect(pixel(png, Math.round(ix + 56), Math.round(iy + 56)), `cell ${k}`).to.deep.equal([0, 0, 0]);
      expect(pixel(png, Math.round(ix + 4), Math.round(iy + 4)), `cell ${k}`).to.deep.equal([255, 255, 255]);
    }
    // the caption row above the first image has ink
    let ink = 0;
    for (let y = 34 + 6; y < 34 + 13; y++) for (let x = 0; x < cellW; x++) if (pixel(png, x, y)[0] === 0) ink++;
    expect(ink).to.be.greaterThan(40);
  });

  it('writePlots writes both files into a new folder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'plots-test-'));
    try {
      const images = new Float32Array(3 * 16).map((_, i) => (i % 5) / 4);
      const files = writePlots(join(dir, 'sub'), history, { images, rows: 4, cols: 4, misclassified: [{ index: 2, label: 3, predict: 8 }] });
      expect(files.map((f) => f.slice(dir.length))).to.deep.equal(['/sub/learning-curves.png', '/sub/misclassified.png']);
      for (const f of files) expect(colours(decode(readFileSync(f))).size).to.be.greaterThan(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
