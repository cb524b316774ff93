// PNG figures for --plots: learning curves and a grid of misclassified test digits.
// Drawn into a plain RGBA raster (lines, rectangles, a 5x7 bitmap font), encoded by pngjs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';

export type Rgb = readonly [number, number, number];

export const WHITE: Rgb = [255, 255, 255];
export const BLACK: Rgb = [0, 0, 0];
const GREY: Rgb = [200, 200, 200];
const DARK: Rgb = [60, 60, 60];
/** matplotlib's first two colours: train blue, validation orange; then green, red. */
const SERIES_COLOURS: Rgb[] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40]];

/**
 * 5x7 glyphs: 7 rows per glyph, each row 5 bits (bit 4 = leftmost column), written as 7 hex pairs.
 * Lower-case letters only; upper case is drawn with the lower-case glyph.
 */
export const GLYPHS: Readonly<Record<string, string>> = {
  ' ': '00000000000000',
  '0': '0e11131519110e', '1': '040c040404040e', '2': '0e11010204081f', '3': '1f02040201110e',
  '4': '02060a121f0202', '5': '1f101e0101110e', '6': '0608101e11110e', '7': '1f010204080808',
  '8': '0e11110e11110e', '9': '0e11110f01020c',
  a: '00000e010f110f', b: '1010161911111e', c: '00000e1010110e', d: '01010d1311110f',
  e: '00000e111f100e', f: '0609081c080808', g: '00000f110f010e', h: '10101619111111',
  i: '04000c0404040e', j: '0200060202120c', k: '10101214181412', l: '0c04040404040e',
  m: '00001a15151111', n: '00001619111111', o: '00000e1111110e', p: '00001e111e1010',
  q: '00000d130f0101', r: '00001619101010', s: '00000e100e011e', t: '08081c08080906',
  u: '0000111111130d', v: '00001111110a04', w: '0000111115150a', x: '0000110a040a11',
  y: '000011110f010e', z: '00001f0204081f',
  '=': '00001f001f0000', ',': '000000000c0408', '.': '00000000000c0c', '-': '0000001f000000',
  ':': '000c0c000c0c00', '(': '02040808080402', ')': '08040202020408', '%': '18190204081303',
  '/': '00010204081000', '+': '0004041f040400', '_': '0000000000001f', '#': '0a0a1f0a1f0a0a',
  '?': '0e110102040004', '[': '0e08080808080e', ']': '0e02020202020e', '<': '02040810080402',
  '>': '08040201020408',
};

/** Width of a glyph cell (5 pixels and 1 of spacing) and height (7 and 2), before scaling. */
const CHAR_W = 6;
const CHAR_H = 9;

function glyphRows(ch: string): number[] {
  const hex = GLYPHS[ch] ?? GLYPHS[ch.toLowerCase()];
  if (!hex) return [0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f]; // a box for characters without a glyph
  const rows: number[] = [];
  for (let i = 0; i < 7; i++) rows.push(parseInt(hex.slice(2 * i, 2 * i + 2), 16));
  return rows;
}

/** An RGBA image you draw on; `png()` encodes it. */
export class Raster {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;

  constructor(width: number, height: number, background: Rgb = WHITE) {
    this.width = Math.max(1, Math.floor(width));
    this.height = Math.max(1, Math.floor(height));
    this.data = new Uint8Array(this.width * this.height * 4);
    this.fillRect(0, 0, this.width, this.height, background);
  }

  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 4;
    this.data[i] = c[0];
    this.data[i + 1] = c[1];
    this.data[i + 2] = c[2];
    this.data[i + 3] = 255;
  }

  get(x: number, y: number): Rgb {
    const i = (y * this.width + x) * 4;
    return [this.data[i], this.data[i + 1], this.data[i + 2]];
  }

  fillRect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let yy = Math.max(0, Math.round(y)); yy < Math.min(this.height, Math.round(y + h)); yy++) {
      for (let xx = Math.max(0, Math.round(x)); xx < Math.min(this.width, Math.round(x + w)); xx++) this.set(xx, yy, c);
    }
  }

  /** A 1-pixel outline. */
  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    this.line(x, y, x + w - 1, y, c);
    this.line(x, y + h - 1, x + w - 1, y + h - 1, c);
    this.line(x, y, x, y + h - 1, c);
    this.line(x + w - 1, y, x + w - 1, y + h - 1, c);
  }

  /** A line (Bresenham), `thickness` pixels wide. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thickness = 1): void {
    x0 = Math.round(x0); y0 = Math.round(y0); x1 = Math.round(x1); y1 = Math.round(y1);
    const dx = Math.abs(x1 - x0);
    const dy = -Math.abs(y1 - y0);
    const sx = x0 < x1 ? 1 : -1;
    const sy = y0 < y1 ? 1 : -1;
    let err = dx + dy;
    const r0 = -Math.floor((thickness - 1) / 2);
    for (;;) {
      for (let a = 0; a < thickness; a++) {
        for (let b = 0; b < thickness; b++) this.set(x0 + r0 + a, y0 + r0 + b, c);
      }
      if (x0 === x1 && y0 === y1) break;
      const e2 = 2 * err;
      if (e2 >= dy) { err += dy; x0 += sx; }
      if (e2 <= dx) { err += dx; y0 += sy; }
    }
  }

  /** Text with its top-left corner at (x, y), glyphs scaled by `scale`. */
  text(x: number, y: number, s: string, c: Rgb = BLACK, scale = 1): void {
    let cx = Math.round(x);
    for (const ch of s) {
      const rows = glyphRows(ch);
      for (let r = 0; r < 7; r++) {
        for (let col = 0; col < 5; col++) {
          if (rows[r] & (0x10 >> col)) this.fillRect(cx + col * scale, y + r * scale, scale, scale, c);
        }
      }
      cx += CHAR_W * scale;
    }
  }

  /** Text turned 90° anticlockwise (reads bottom to top), its left end at the bottom (x, yBottom). */
  textUp(x: number, yBottom: number, s: string, c: Rgb = BLACK, scale = 1): void {
    let cy = Math.round(yBottom);
    for (const ch of s) {
      const rows = glyphRows(ch);
      for (let r = 0; r < 7; r++) {
        for (let col = 0; col < 5; col++) {
          if (rows[r] & (0x10 >> col)) this.fillRect(x + r * scale, cy - (col + 1) * scale, scale, scale, c);
        }
      }
      cy -= CHAR_W * scale;
    }
  }

  /** A grey-scale image [rows, cols] of values in [0, 1] (0 white, 1 black, as matplotlib's 'binary'), each pixel `scale`x`scale`. */
  image(x: number, y: number, pixels: ArrayLike<number>, rows: number, cols: number, scale: number): void {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const v = Math.min(1, Math.max(0, pixels[r * cols + c]));
        const g = Math.round(255 * (1 - v));
        this.fillRect(x + c * scale, y + r * scale, scale, scale, [g, g, g]);
      }
    }
  }

  png(): Buffer {
    const png = new PNG({ width: this.width, height: this.height, colorType: 6, inputColorType: 6 });
    png.data = Buffer.from(this.data.buffer, this.data.byteOffset, this.data.byteLength);
    return PNG.sync.write(png);
  }
}

export function textWidth(s: string, scale = 1): number {
  return s.length > 0 ? (s.length * CHAR_W - 1) * scale : 0;
}

/** Round tick positions (1, 2, 5 x 10^k) covering [lo, hi], about `target` of them. */
export function niceTicks(lo: number, hi: number, target = 5): { min: number; max: number; step: number; ticks: number[] } {
  if (!(hi > lo)) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag; // Heckbert's nice numbers
  const min = Math.floor(lo / step + 1e-9) * step;
  const max = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = min; v <= max + step * 1e-6; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return { min, max, step, ticks };
}

function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  if (Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-4)) return v.toExponential(1);
  return v.toFixed(Math.min(decimals, 6));
}

/** One epoch's figures; any may be missing or NaN (not drawn). */
export interface EpochStats {
  epoch: number;
  trainLoss?: number;
  valLoss?: number;
  trainAcc?: number;
  valAcc?: number;
  testAcc?: number;
}

interface Series {
  name: string;
  colour: Rgb;
  points: [number, number][];
}

/** A panel: axes, ticks with labels, grid, the series as lines with dots, a legend. */
function drawPanel(img: Raster, x: number, y: number, w: number, h: number, title: string, yLabel: string, series: Series[], xTicks: ReturnType<typeof niceTicks>, yRange?: [number, number]): void {
  const all = series.flatMap((s) => s.points.map((p) => p[1]));
  let lo = all.length ? Math.min(...all) : 0;
  let hi = all.length ? Math.max(...all) : 1;
  if (yRange) {
    lo = Math.max(yRange[0], lo);
    hi = Math.min(yRange[1], hi);
  }
  const pad = (hi - lo) * 0.05;
  const yt = niceTicks(lo - pad, hi + pad, 5);
  if (yRange) {
    yt.min = Math.max(yt.min, yRange[0]);
    yt.max = Math.min(yt.max, yRange[1]);
    yt.ticks = yt.ticks.filter((t) => t >= yt.min - 1e-12 && t <= yt.max + 1e-12);
  }
  const labels = yt.ticks.map((t) => tickLabel(t, yt.step));
  const left = x + 14 + Math.max(...labels.map((l) => textWidth(l))) + 8;
  const top = y + 22;
  const right = x + w - 10;
  const bottom = y + h - 34;
  const px = (v: number): number => left + ((v - xTicks.min) / (xTicks.max - xTicks.min)) * (right - left);
  const py = (v: number): number => bottom - ((v - yt.min) / (yt.max - yt.min)) * (bottom - top);

  img.text(x + (w - textWidth(title, 2)) / 2, y + 2, title, BLACK, 2);
  // grid and ticks
  yt.ticks.forEach((t, i) => {
    const yy = Math.round(py(t));
    img.line(left, yy, right, yy, [235, 235, 235]);
    img.line(left - 4, yy, left, yy, DARK);
    img.text(left - 7 - textWidth(labels[i]), yy - 3, labels[i], DARK);
  });
  for (const t of xTicks.ticks) {
    const xx = Math.round(px(t));
    img.line(xx, top, xx, bottom, [235, 235, 235]);
    img.line(xx, bottom, xx, bottom + 4, DARK);
    const l = tickLabel(t, xTicks.step);
    img.text(xx - textWidth(l) / 2, bottom + 7, l, DARK);
  }
  img.rect(left, top, right - left + 1, bottom - top + 1, DARK);
  img.text((left + right - textWidth('epoch')) / 2, bottom + 20, 'epoch', BLACK);
  img.textUp(x + 2, (top + bottom + textWidth(yLabel)) / 2, yLabel, BLACK);

  for (const s of series) {
    const pts = s.points.filter(([, v]) => v >= yt.min - 1e-12 && v <= yt.max + 1e-12);
    for (let i = 1; i < pts.length; i++) img.line(px(pts[i - 1][0]), py(pts[i - 1][1]), px(pts[i][0]), py(pts[i][1]), s.colour, 2);
    for (const [e, v] of pts) img.fillRect(px(e) - 2, py(v) - 2, 5, 5, s.colour);
  }
  // legend, top right inside the plot
  const shown = series.filter((s) => s.points.length > 0);
  if (shown.length) {
    const lw = Math.max(...shown.map((s) => textWidth(s.name))) + 30;
    const lh = shown.length * 12 + 6;
    // the corner whose box covers the fewest data points (sampled along the lines too)
    const samples: [number, number][] = [];
    for (const s of shown) {
      const p = s.points.map(([e, v]) => [px(e), py(v)] as [number, number]);
      for (let i = 0; i < p.length; i++) {
        samples.push(p[i]);
        if (i > 0) for (let t = 1; t < 8; t++) samples.push([p[i - 1][0] + ((p[i][0] - p[i - 1][0]) * t) / 8, p[i - 1][1] + ((p[i][1] - p[i - 1][1]) * t) / 8]);
      }
    }
    const corners: [number, number][] = [[right - lw - 6, top + 6], [right - lw - 6, bottom - lh - 6], [left + 6, top + 6], [left + 6, bottom - lh - 6]];
    const covered = ([cx, cy]: [number, number]): number =>
      samples.filter(([sx, sy]) => sx >= cx - 4 && sx <= cx + lw + 4 && sy >= cy - 4 && sy <= cy + lh + 4).length;
    let [lx, ly] = corners[0];
    let least = covered(corners[0]);
    for (const c of corners.slice(1)) {
      const n = covered(c);
      if (n < least) {
        least = n;
        [lx, ly] = c;
      }
    }
    img.fillRect(lx, ly, lw, lh, WHITE);
    img.rect(lx, ly, lw, lh, GREY);
    shown.forEach((s, i) => {
      const yy = ly + 9 + i * 12;
      img.line(lx + 5, yy, lx + 20, yy, s.colour, 2);
      img.text(lx + 25, yy - 3, s.name, BLACK);
    });
  }
}

function series(history: readonly EpochStats[], key: keyof EpochStats, name: string, colour: Rgb): Series {
  const points: [number, number][] = [];
  for (const h of history) {
    const v = h[key];
    if (typeof v === 'number' && Number.isFinite(v)) points.push([h.epoch, v]);
  }
  return { name, colour, points };
}

/** Learning curves: loss (left) and accuracy (right) per epoch, train vs validation (and test if given). */
export function learningCurvesPng(history: readonly EpochStats[], title = 'learning curves'): Buffer {
  const W = 960;
  const H = 420;
  const img = new Raster(W, H);
  img.text((W - textWidth(title, 2)) / 2, 6, title, BLACK, 2);
  const epochs = history.map((h) => h.epoch);
  const eMin = epochs.length ? Math.min(...epochs) : 1;
  const eMax = epochs.length ? Math.max(...epochs) : 1;
  const xt = eMax > eMin ? niceTicks(eMin, eMax, Math.min(10, eMax - eMin)) : { min: eMin - 1, max: eMax + 1, step: 1, ticks: [eMin - 1, eMin, eMin + 1] };
  if (eMax > eMin && xt.step < 1) {
    xt.step = 1;
    xt.ticks = [];
    for (let e = Math.floor(eMin); e <= eMax; e++) xt.ticks.push(e);
    xt.min = Math.floor(eMin);
    xt.max = Math.ceil(eMax);
  }
  const [c0, c1, c2] = SERIES_COLOURS;
  drawPanel(img, 0, 30, W / 2, H - 30, 'loss', 'cross-entropy', [
    series(history, 'trainLoss', 'train', c0),
    series(history, 'valLoss', 'validation', c1),
  ], xt);
  drawPanel(img, W / 2, 30, W / 2, H - 30, 'accuracy', 'accuracy', [
    series(history, 'trainAcc', 'train', c0),
    series(history, 'valAcc', 'validation', c1),
    series(history, 'testAcc', 'test', c2),
  ], xt, [0, 1]);
  return img.png();
}

export interface Misclassified {
  /** Index in the test set. */
  index: number;
  label: number;
  predict: number;
}

/**
 * A grid (default 5x5) of the first misclassified digits, each titled `label=L, predict=P`,
 * as the tutorial's plot_images_labels_prediction. `images` is the whole test set [n, rows*cols].
 */
export function misclassifiedPng(images: Float32Array, rows: number, cols: number, items: readonly Misclassified[], opts: { grid?: number; scale?: number; title?: string } = {}): Buffer {
  const grid = opts.grid ?? 5;
  const scale = opts.scale ?? 4;
  const title = opts.title ?? `misclassified test digits (first ${Math.min(items.length, grid * grid)} of ${items.length})`;
  const longest = textWidth('label=9, predict=9');
  const cellW = Math.max(cols * scale, longest) + 16;
  const cellH = rows * scale + 30;
  const top = 34;
  const img = new Raster(cellW * grid, top + cellH * grid);
  img.text((img.width - textWidth(title, 2)) / 2, 8, title, BLACK, 2);
  const size = rows * cols;
  items.slice(0, grid * grid).forEach((m, k) => {
    const gx = (k % grid) * cellW;
    const gy = top + Math.floor(k / grid) * cellH;
    const caption = `label=${m.label}, predict=${m.predict}`;
    img.text(gx + (cellW - textWidth(caption)) / 2, gy + 6, caption, BLACK);
    const ix = gx + (cellW - cols * scale) / 2;
    const iy = gy + 18;
    img.image(ix, iy, images.subarray(m.index * size, (m.index + 1) * size), rows, cols, scale);
    img.rect(ix - 1, iy - 1, cols * scale + 2, rows * scale + 2, GREY);
  });
  if (items.length === 0) img.text(20, top + 20, 'no misclassified test digits', BLACK, 2);
  return img.png();
}

/** The files `--plots DIR` writes, with their paths returned. */
export function writePlots(dir: string, history: readonly EpochStats[], test?: { images: Float32Array; rows: number; cols: number; misclassified: readonly Misclassified[] }): string[] {
  mkdirSync(dir, { recursive: true });
  const out: string[] = [];
  const curves = join(dir, 'learning-curves.png');
  writeFileSync(curves, learningCurvesPng(history));
  out.push(curves);
  if (test) {
    const grid = join(dir, 'misclassified.png');
    writeFileSync(grid, misclassifiedPng(test.images, test.rows, test.cols, test.misclassified));
    out.push(grid);
  }
  return out;
}
