// MNIST over HTTP, for a web page (or Node's fetch): the four IDX files under one base URL, parsed
// by the same code as the Node loader (idx.ts). `npm run demo` serves a subset this way.
import { DataError, checkPair, parseIdxImages, parseIdxLabels, splitOf, type Split } from './idx.js';

/** The file names fetched under the base URL (the raw IDX names of the MNIST distribution). */
export const MNIST_FILE_NAMES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

export interface FetchedMnist {
  train: Split;
  test: Split;
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
 * browser). The whole training file is the train split: hold out validation rows yourself. Throws DataError.
 */
export async function fetchMnist(base: string | URL, fetchFn: typeof fetch = fetch): Promise<FetchedMnist> {
  const root = new URL(base, (globalThis as { location?: { href: string } }).location?.href);
  const url = (name: string) => new URL(name, root);
  const n = MNIST_FILE_NAMES;
  const [ti, tl, si, sl] = await Promise.all([n.trainImages, n.trainLabels, n.testImages, n.testLabels].map((f) => fetchBytes(url(f), fetchFn)));
  const trainImages = parseIdxImages(ti, url(n.trainImages).href);
  const trainLabels = parseIdxLabels(tl, url(n.trainLabels).href);
  checkPair(trainImages, trainLabels);
  const testImages = parseIdxImages(si, url(n.testImages).href);
  const testLabels = parseIdxLabels(sl, url(n.testLabels).href);
  checkPair(testImages, testLabels);
  return { train: splitOf(trainImages, trainLabels, 0, trainImages.count), test: splitOf(testImages, testLabels, 0, testImages.count) };
}
