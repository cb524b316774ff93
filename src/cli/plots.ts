// Figures for --plots: learning curves and a grid of misclassified test digits. Each is a Vega-Lite
// spec, compiled to Vega and rendered to SVG in Node (no canvas), then rasterised to PNG by resvg.
// vega and vega-lite are loaded on first use, so a run without --plots does not pay for them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Resvg, type ResvgRenderOptions } from '@resvg/resvg-js';
import { PNG } from 'pngjs';

/** A Vega-Lite spec, as plain JSON. */
export type VegaLiteSpec = Record<string, unknown>;

/** One read of the training loss and accuracy (the mean over the steps since the previous read). */
export interface ReadPoint {
  /** The last step the read covers, 1-based over the run. */
  step: number;
  /** 1-based epoch. */
  epoch: number;
  loss: number;
  accuracy: number;
}

/** One epoch's figures, at the step the epoch ended; any may be missing or NaN (not drawn). */
export interface EpochStats {
  epoch: number;
  /** The run's step at the end of the epoch (where the validation point is drawn). */
  step: number;
  trainLoss?: number;
  valLoss?: number;
  trainAcc?: number;
  valAcc?: number;
}

/** What the learning curves draw: the training reads, and validation per epoch. */
export interface Curves {
  reads: ReadPoint[];
  epochs: EpochStats[];
}

/** Sans-serif faces in order of preference; resvg takes the first one installed (and any font if none is). */
export const FONT = 'Helvetica Neue, Helvetica, Arial, DejaVu Sans, Liberation Sans, Noto Sans, sans-serif';
/** matplotlib's first two colours: train blue, validation orange. */
export const SERIES_COLOURS = { train: '#1f77b4', validation: '#ff7f0e' } as const;
const SERIES = ['train', 'validation'] as const;

/** The PNG is the SVG at this zoom. */
export const PNG_ZOOM = 2;

const CONFIG = {
  // no ARIA labels: they would repeat every point, and every digit's data URL, in the SVG
  aria: false,
  font: FONT,
  background: 'white',
  padding: 12,
  title: { fontSize: 16, fontWeight: 'bold', anchor: 'middle', offset: 10 },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', gridColor: '#e8e8e8', domainColor: '#888', tickColor: '#888' },
  legend: { labelFontSize: 12, titleFontSize: 12, symbolStrokeWidth: 2 },
  header: { labelFontSize: 12, labelFont: FONT, titleFontSize: 12 },
  view: { stroke: '#bbb' },
};

/**
 * The learning curves: loss (left) and accuracy (right) against the step, the training figures at
 * every read (small dots on a line) and validation at the end of each epoch (large dots).
 */
export function learningCurvesSpec(curves: Curves, title = 'learning curves'): VegaLiteSpec {
  const rows: { step: number; epoch: number; metric: string; series: string; value: number }[] = [];
  const add = (step: number, epoch: number, metric: string, series: string, value: number | undefined): void => {
    if (value !== undefined && Number.isFinite(value)) rows.push({ step, epoch, metric, series, value });
  };
  for (const r of curves.reads) {
    add(r.step, r.epoch, 'loss', 'train', r.loss);
    add(r.step, r.epoch, 'accuracy', 'train', r.accuracy);
  }
  for (const e of curves.epochs) {
    add(e.step, e.epoch, 'loss', 'validation', e.valLoss);
    add(e.step, e.epoch, 'accuracy', 'validation', e.valAcc);
  }
  const color = {
    field: 'series', type: 'nominal',
    scale: { domain: [...SERIES], range: SERIES.map((s) => SERIES_COLOURS[s]) },
    legend: { title: null, orient: 'top', direction: 'horizontal', labelLimit: 0, columnPadding: 24, labelExpr: "datum.label === 'train' ? 'train (every read)' : 'validation (end of each epoch)'" },
  };
  const points = (series: string, size: number): VegaLiteSpec => ({
    transform: [{ filter: { field: 'series', equal: series } }],
    mark: { type: 'point', filled: true, opacity: 1, size },
    encoding: { tooltip: [{ field: 'step' }, { field: 'epoch' }, { field: 'value', format: '.4f' }] },
  });
  const panel = (metric: string, yTitle: string): VegaLiteSpec => ({
    width: 400,
    height: 260,
    transform: [{ filter: { field: 'metric', equal: metric } }],
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step', axis: { format: 'd' }, scale: { zero: true, nice: true } },
      y: { field: 'value', type: 'quantitative', title: yTitle, scale: { zero: false, nice: true } },
      color,
    },
    layer: [{ mark: { type: 'line', strokeWidth: 1.5 } }, points('train', 9), points('validation', 64)],
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    config: CONFIG,
    data: { values: rows },
    hconcat: [panel('loss', 'cross-entropy loss'), panel('accuracy', 'accuracy')],
    spacing: 30,
  };
}

/** A test example the model got wrong. */
export interface Misclassified {
  /** Index in the test set. */
  index: number;
  label: number;
  predict: number;
}

/** A grey-scale image [rows, cols] of values in [0, 1] (0 white, 1 black, as matplotlib's 'binary'), each pixel scale x scale, as a PNG data URL. */
export function digitDataUrl(pixels: ArrayLike<number>, rows: number, cols: number, scale: number): string {
  const png = new PNG({ width: cols * scale, height: rows * scale, colorType: 0, inputColorType: 0, inputHasAlpha: false });
  const out = Buffer.alloc(cols * scale * rows * scale);
  for (let y = 0; y < rows * scale; y++) {
    for (let x = 0; x < cols * scale; x++) {
      const v = Math.min(1, Math.max(0, pixels[Math.floor(y / scale) * cols + Math.floor(x / scale)]));
      out[y * cols * scale + x] = Math.round(255 * (1 - v));
    }
  }
  png.data = out;
  return `data:image/png;base64,${PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false }).toString('base64')}`;
}

/**
 * A grid (default 5x5) of the first misclassified digits, each titled `label=L, predict=P` above
 * its image, as the tutorial's plot_images_labels_prediction. `images` is the whole test set [n, rows*cols].
 */
export function misclassifiedSpec(images: Float32Array, rows: number, cols: number, items: readonly Misclassified[], opts: { grid?: number; scale?: number; title?: string } = {}): VegaLiteSpec {
  const grid = opts.grid ?? 5;
  const scale = opts.scale ?? 4;
  const shown = items.slice(0, grid * grid);
  const title = opts.title ?? `misclassified test digits (first ${shown.length} of ${items.length})`;
  if (shown.length === 0) {
    return {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title, config: { ...CONFIG, view: { stroke: null } }, width: 300, height: 60,
      data: { values: [{ text: 'no misclassified test digits' }] },
      mark: { type: 'text', fontSize: 14 }, encoding: { text: { field: 'text' } },
    };
  }
  const size = rows * cols;
  const w = cols * scale;
  const h = rows * scale;
  // Facet on a unique key (captions repeat) that sorts as the items do; the header shows its caption part.
  const values = shown.map((m, k) => ({
    key: `${String(k).padStart(4, '0')}|label=${m.label}, predict=${m.predict}`,
    // drawn at the PNG's resolution (PNG_ZOOM), so the rasteriser copies pixels instead of blurring them
    url: digitDataUrl(images.subarray(m.index * size, (m.index + 1) * size), rows, cols, scale * PNG_ZOOM),
  }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    config: CONFIG,
    data: { values },
    columns: grid,
    spacing: { row: 8, column: 16 },
    facet: { field: 'key', type: 'ordinal', header: { title: null, labelExpr: "split(datum.value, '|')[1]", labelPadding: 4, labelLimit: 0 } },
    // The cell's 1-pixel frame runs around the image (one pixel wider and higher than it, the image at 1, 1).
    spec: {
      width: w + 1,
      height: h + 1,
      mark: { type: 'image', width: w, height: h, align: 'left', baseline: 'top', smooth: false, aria: false },
      encoding: { url: { field: 'url' }, x: { value: 1 }, y: { value: 1 } },
    },
  };
}

type Vega = typeof import('vega');
type VegaLite = typeof import('vega-lite');
let libraries: Promise<[Vega, VegaLite]> | undefined;

/**
 * Compiles a Vega-Lite spec and renders it to an SVG document. The compiler's and renderer's
 * warnings go to `warnings` (not to the console).
 */
export async function renderSvg(spec: VegaLiteSpec, warnings: string[] = []): Promise<string> {
  libraries ??= Promise.all([import('vega'), import('vega-lite')]);
  const [vega, vegaLite] = await libraries;
  const logger = vega.logger(vega.Warn);
  logger.warn = (...args: readonly unknown[]) => {
    warnings.push(args.map(String).join(' '));
    return logger;
  };
  const compiled = vegaLite.compile(spec as unknown as Parameters<VegaLite['compile']>[0], { logger }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logger });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** resvg options: the machine's fonts (resvg falls back to any installed font when none of FONT's faces is). */
const RESVG: ResvgRenderOptions = { font: { loadSystemFonts: true }, fitTo: { mode: 'zoom', value: PNG_ZOOM }, background: 'white', logLevel: 'off' };

let fontsFound: boolean | undefined;

/**
 * Whether resvg finds any font on this machine: a probe text must leave ink. Without fonts the PNG
 * has no text (the SVG still has it: a browser draws it with its own fonts).
 */
export function hasFonts(): boolean {
  if (fontsFound === undefined) {
    const probe = `<svg xmlns="http://www.w3.org/2000/svg" width="60" height="30"><text x="2" y="22" font-family="${FONT}" font-size="20">Ag</text></svg>`;
    const px = new Resvg(probe, { ...RESVG, background: undefined, fitTo: { mode: 'original' } }).render().pixels;
    let ink = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) ink++;
    fontsFound = ink > 0;
  }
  return fontsFound;
}

/** Rasterises an SVG document to PNG at PNG_ZOOM times its size. */
export function svgToPng(svg: string): Buffer {
  return new Resvg(svg, RESVG).render().asPng();
}

/**
 * Writes `learning-curves.{svg,png}` (and `misclassified.{svg,png}` when `test` is given) into `dir`,
 * creating it; returns the paths. `warn` is told once when the machine has no fonts for the PNGs.
 */
export async function writePlots(dir: string, curves: Curves, test?: { images: Float32Array; rows: number; cols: number; misclassified: readonly Misclassified[] },
  warn: (message: string) => void = (m) => console.error(m)): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  if (!hasFonts()) warn('warning: no fonts found on this machine: the PNG plots have no text (the SVG files do); install a font package, e.g. fonts-dejavu-core');
  const figures: [string, VegaLiteSpec][] = [['learning-curves', learningCurvesSpec(curves)]];
  if (test) figures.push(['misclassified', misclassifiedSpec(test.images, test.rows, test.cols, test.misclassified)]);
  const out: string[] = [];
  for (const [name, spec] of figures) {
    const svg = await renderSvg(spec);
    const svgPath = join(dir, `${name}.svg`);
    const pngPath = join(dir, `${name}.png`);
    writeFileSync(svgPath, svg);
    writeFileSync(pngPath, svgToPng(svg));
    out.push(svgPath, pngPath);
  }
  return out;
}
