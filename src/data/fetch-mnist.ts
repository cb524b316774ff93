// MNIST (or any set in its four-file IDX layout) over HTTP, for a web page (or Node's fetch): the four
// IDX files under one base URL, parsed by the same code as the Node loader (idx.ts). `npm run demo`
// serves a subset this way.
import type { Dataset } from './dataset.js';
import { DataError, pairSets, parseIdxImages, parseIdxLabels, splitOf } from './idx.js';

/** The file names fetched under the base URL (the raw IDX names of the MNIST distribution). */
export const MNIST_FILE_NAMES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

export interface FetchedMnist {
  train: Dataset;
  test: Dataset;
  /** Per-example shape and class count, as in each split. */
  shape: number[];
  classes: number;
}

export interface FetchMnistOptions {
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** File names under the base URL (default: MNIST's, MNIST_FILE_NAMES). */
  names?: Partial<Record<keyof typeof MNIST_FILE_NAMES, string>>;
  /** The number of classes; every label must be below it. Default: the largest label + 1. */
  classes?: number;
}

async function fetchBytes(url: URL, fetchFn: typeof fetch): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetchFn(url);
  } catch (e) {
    throw new DataError(`${url}: could not be fetched (${(e as Error).message}): is the server that serves the MNIST files running?`);
  }
  if (!res.ok) throw new DataError(`${url}: HTTP ${res.status} ${res.statusText}: serve the four MNIST IDX files under that folder (npm run demo does)`);
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * Fetches and parses the four IDX files under `base` (a folder URL; relative to the page in a
 * browser), of any example shape and class count. The whole training file is the train split: hold
 * out validation rows yourself. Throws DataError. (A function as the second argument is the fetch to use.)
 */
export async function fetchMnist(base: string | URL, opts: FetchMnistOptions | typeof fetch = {}): Promise<FetchedMnist> {
  const o: FetchMnistOptions = typeof opts === 'function' ? { fetch: opts } : opts;
  const fetchFn = o.fetch ?? fetch;
  const root = new URL(base, (globalThis as { location?: { href: string } }).location?.href);
  const n = { ...MNIST_FILE_NAMES, ...o.names };
  const url = (name: string) => new URL(name, root);
  const [ti, tl, si, sl] = await Promise.all([n.trainImages, n.trainLabels, n.testImages, n.testLabels].map((f) => fetchBytes(url(f), fetchFn)));
  const train = { images: parseIdxImages(ti, url(n.trainImages).href), labels: parseIdxLabels(tl, url(n.trainLabels).href, o.classes) };
  const test = { images: parseIdxImages(si, url(n.testImages).href), labels: parseIdxLabels(sl, url(n.testLabels).href, o.classes) };
  const classes = pairSets(train, test, o.classes);
  return {
    train: splitOf(train.images, train.labels, 0, train.images.count, classes),
    test: splitOf(test.images, test.labels, 0, test.images.count, classes),
    shape: [...train.images.shape],
    classes,
  };
}
