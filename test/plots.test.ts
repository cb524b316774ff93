import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { runCli } from './support/cli.js';
import { SERIES_COLOURS, hasFonts, learningCurvesSpec, misclassifiedSpec, renderSvg, svgToPng, writePlots, type Curves, type Misclassified } from '../src/cli/plots.js';

function decode(buf: Buffer): PNG {
  return PNG.sync.read(buf);
}

/** The pixel at byte offset i as 0xrrggbb. */
function rgb(png: PNG, i: number): number {
  return (png.data[i] << 16) | (png.data[i + 1] << 8) | png.data[i + 2];
}

/** How many pixels have exactly this colour ('#rrggbb'). */
function count(png: PNG, colour: string): number {
  const c = parseInt(colour.slice(1), 16);
  let n = 0;
  for (let i = 0; i < png.data.length; i += 4) if (rgb(png, i) === c) n++;
  return n;
}

/** The SVG's texts (vega writes each label as one <text> element). */
function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
}

/** Width and height in the SVG's root element. */
function svgSize(svg: string): [number, number] {
  const m = /<svg[^>]*\swidth="([\d.]+)"[^>]*\sheight="([\d.]+)"/.exec(svg)!;
  return [Number(m[1]), Number(m[2])];
}

/** Two epochs of 50 steps read every 10 steps (the last read of an epoch at its last step). */
function twoEpochs(): Curves {
  const curves: Curves = { reads: [], epochs: [] };
  for (let e = 1; e <= 2; e++) {
    for (let s = 10; s <= 50; s += 10) {
      const step = (e - 1) * 50 + s;
      curves.reads.push({ step, epoch: e, loss: 2 / step + 0.1, accuracy: 1 - 1 / step });
    }
    curves.epochs.push({ epoch: e, step: e * 50, trainLoss: 0.5 / e, trainAcc: 0.8 + 0.1 * e, valLoss: 0.6 / e, valAcc: 0.75 + 0.1 * e });
  }
  return curves;
}

/** A test set of `n` 28x28 images, each a black 20x20 square on white. */
function squares(n: number): Float32Array {
  const images = new Float32Array(n * 784);
  for (let k = 0; k < n; k++) for (let r = 4; r < 24; r++) for (let c = 4; c < 24; c++) images[k * 784 + r * 28 + c] = 1;
  return images;
}

describe('plots (src/cli/plots.ts): Vega-Lite figures rendered to SVG and PNG', function () {
  this.timeout(60_000);

  it('learning curves: a training point per read and a validation point per epoch, on the step axis', () => {
    const curves = twoEpochs();
    curves.reads.push({ step: 101, epoch: 3, loss: NaN, accuracy: NaN }); // a blown-up read is left out, not drawn as 0
    const spec = learningCurvesSpec(curves);
    const rows = (spec.data as { values: { step: number; metric: string; series: string; value: number }[] }).values;
    const pick = (metric: string, series: string): [number, number][] => rows.filter((r) => r.metric === metric && r.series === series).map((r) => [r.step, r.value]);
    expect(pick('loss', 'train').map(([s]) => s)).to.deep.equal([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect(pick('accuracy', 'train')[2]).to.deep.equal([30, 1 - 1 / 30]);
    expect(pick('loss', 'validation')).to.deep.equal([[50, 0.6], [100, 0.3]]);
    expect(pick('accuracy', 'validation').map(([s]) => s)).to.deep.equal([50, 100]);
    for (const r of rows) expect(Number.isFinite(r.value), JSON.stringify(r)).to.equal(true);
  });

  it('learning curves render with a title, axis titles, tick labels and a legend naming both series', async () => {
    const warnings: string[] = [];
    const svg = await renderSvg(learningCurvesSpec(twoEpochs()), warnings);
    expect(warnings, 'Vega-Lite and Vega warnings').to.deep.equal([]);
    const t = texts(svg);
    for (const s of ['learning curves', 'step', 'cross-entropy loss', 'accuracy', 'train (every read)', 'validation (end of each epoch)', '100']) {
      expect(t, s).to.include(s);
    }
    expect(t.filter((s) => s === 'step'), 'one step axis per panel').to.have.length(2);
    // in each panel: a line per series, a dot per read (train blue) and per epoch (validation orange)
    const marks = (kind: string): string[] => [...svg.matchAll(new RegExp(`<g class="mark-${kind} role-mark[^>]*>(.*?)</g>`, 'g'))].flatMap((m) => m[1].match(/<path [^>]*>/g) ?? []);
    expect(marks('line')).to.have.length(2 * 2);
    const dots = marks('symbol');
    expect(dots.filter((d) => d.includes(`fill="${SERIES_COLOURS.train}"`))).to.have.length(2 * 10);
    expect(dots.filter((d) => d.includes(`fill="${SERIES_COLOURS.validation}"`))).to.have.length(2 * 2);
  });

  it('the learning-curves PNG is the SVG at twice its size, with both series colours and text', async () => {
    const svg = await renderSvg(learningCurvesSpec(twoEpochs()));
    const png = decode(svgToPng(svg));
    const [w, h] = svgSize(svg);
    expect([png.width, png.height]).to.deep.equal([Math.round(2 * w), Math.round(2 * h)]);
    expect(count(png, SERIES_COLOURS.train), 'train blue').to.be.greaterThan(200);
    expect(count(png, SERIES_COLOURS.validation), 'validation orange').to.be.greaterThan(200);
    expect(count(png, '#ffffff'), 'white background').to.be.greaterThan(png.width * png.height * 0.5);
    if (hasFonts()) expect(count(png, '#000000'), 'black text').to.be.greaterThan(300);
  });

  it('hasFonts tells whether text leaves ink in the PNG', async () => {
    const svg = await renderSvg({ width: 200, height: 40, data: { values: [{ t: 'label=7, predict=1' }] }, mark: { type: 'text', fontSize: 20 }, encoding: { text: { field: 't' } } });
    const ink = decode(svgToPng(svg)).data.some((v, i) => i % 4 === 0 && v < 128);
    expect(ink).to.equal(hasFonts());
  });

  it('misclassified grid: 5x5 digits, each under its caption, in item order', async () => {
    const items: Misclassified[] = Array.from({ length: 27 }, (_, k) => ({ index: k, label: k % 10, predict: (k + 3) % 10 }));
    const warnings: string[] = [];
    const svg = await renderSvg(misclassifiedSpec(squares(30), 28, 28, items), warnings);
    expect(warnings).to.deep.equal([]);
    const t = texts(svg);
    expect(t).to.include('misclassified test digits (first 25 of 27)');
    const captions = t.filter((s) => s.startsWith('label='));
    expect(captions).to.deep.equal(items.slice(0, 25).map((m) => `label=${m.label}, predict=${m.predict}`));
    expect((svg.match(/<image /g) ?? []).length).to.equal(25);

    // In the PNG (2x), each digit's 20x20 black square is 160x160: find 5 bands of rows, each
    // crossing 5 black runs of that width, in a grid.
    const png = decode(svgToPng(svg));
    const runsAt = (y: number): [number, number][] => {
      const runs: [number, number][] = [];
      let start = -1;
      for (let x = 0; x <= png.width; x++) {
        const black = x < png.width && rgb(png, (y * png.width + x) * 4) === 0;
        if (black && start < 0) start = x;
        if (!black && start >= 0) {
          if (x - start >= 150) runs.push([start, x]);
          start = -1;
        }
      }
      return runs;
    };
    const bands: { top: number; bottom: number; runs: [number, number][] }[] = [];
    for (let y = 0; y < png.height; y++) {
      const runs = runsAt(y);
      if (runs.length === 0) continue;
      const last = bands.at(-1);
      if (last && last.bottom === y - 1) last.bottom = y;
      else bands.push({ top: y, bottom: y, runs });
    }
    expect(bands.map((b) => b.bottom - b.top + 1)).to.deep.equal([160, 160, 160, 160, 160]);
    for (const b of bands) {
      expect(b.runs.map(([a, z]) => z - a)).to.deep.equal([160, 160, 160, 160, 160]);
      expect(b.runs.map(([a]) => a)).to.deep.equal(bands[0].runs.map(([a]) => a)); // columns line up
    }
    // Above each square: the rest of its digit (4 white rows, 32 pixels), the image's grey frame, then
    // the caption's ink, and no ink between the frame and the square.
    const inkIn = (y0: number, y1: number): number => {
      let ink = 0;
      for (let y = y0; y < y1; y++) for (let x = 0; x < png.width; x++) if (png.data[(y * png.width + x) * 4] < 100) ink++;
      return ink;
    };
    for (const b of bands) {
      expect(inkIn(b.top - 32, b.top), `white above the square at y=${b.top}`).to.equal(0);
      const frame = png.data[((b.top - 33) * png.width + b.runs[0][0]) * 4];
      expect(frame, `frame above the image at y=${b.top}`).to.be.within(100, 230);
      if (hasFonts()) expect(inkIn(b.top - 34 - 40, b.top - 34), `captions above the row at y=${b.top}`).to.be.greaterThan(500);
    }
  });

  it('misclassified grid with nothing wrong says so', async () => {
    const t = texts(await renderSvg(misclassifiedSpec(squares(1), 28, 28, [])));
    expect(t).to.include('no misclassified test digits');
  });

  it('the CLI plots every read (every 10 steps and the last step) and validation where the epoch ended', () => {
    const dir = mkdtempSync(join(tmpdir(), 'plots-cli-'));
    try {
      // 25 steps: reads at steps 10, 20 and 25 (the last is drained at the end, after the last progress call)
      const r = runCli(['--net', 'softmax', '--steps', '25', '--val', '500', '--plots', dir], {}, 120_000);
      expect(r.code, r.stderr).to.equal(0);
      const svg = readFileSync(join(dir, 'learning-curves.svg'), 'utf8');
      const dots = [...svg.matchAll(/<g class="mark-symbol role-mark[^>]*>(.*?)<\/g>/g)].flatMap((m) => m[1].match(/<path [^>]*>/g) ?? []);
      const xs = (colour: string): number[] => dots.filter((d) => d.includes(`fill="${colour}"`)).map((d) => Number(/translate\(([\d.]+),/.exec(d)![1]));
      const train = xs(SERIES_COLOURS.train);
      const validation = xs(SERIES_COLOURS.validation);
      expect(train, 'train dots: 3 reads in each of the 2 panels').to.have.length(6);
      expect(validation, 'validation dots: 1 epoch in each panel').to.have.length(2);
      // the validation dot sits on the last read's step (25), the rightmost train dot of its panel
      expect(validation[0]).to.be.closeTo(Math.max(...train.slice(0, 3)), 1e-6);
      expect(readFileSync(join(dir, 'learning-curves.png')).subarray(1, 4).toString()).to.equal('PNG');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writePlots writes an SVG and a PNG of each figure into a new folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plots-test-'));
    try {
      const files = await writePlots(join(dir, 'sub'), twoEpochs(), { images: squares(3), rows: 28, cols: 28, misclassified: [{ index: 2, label: 3, predict: 8 }] }, () => {});
      expect(files.map((f) => f.slice(dir.length))).to.deep.equal(['/sub/learning-curves.svg', '/sub/learning-curves.png', '/sub/misclassified.svg', '/sub/misclassified.png']);
      for (const f of files.filter((f) => f.endsWith('.svg'))) expect(readFileSync(f, 'utf8')).to.match(/^<svg /);
      for (const f of files.filter((f) => f.endsWith('.png'))) expect(decode(readFileSync(f)).width).to.be.greaterThan(100);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
