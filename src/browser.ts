// The browser entry (dist/browser/webgpu-train.js, built by tools/build-browser.mjs): the public API
// of index.ts plus the file-system-free data path. Nothing here may import Node modules.
export * from './index.js';
export { fetchMnist, MNIST_FILE_NAMES, type FetchedMnist, type FetchMnistOptions } from './data/fetch-mnist.js';
export { DataError, makeShuffler, parseIdxImages, parseIdxLabels, type IdxImages, type IdxLabels, type Shuffler, type Split } from './data/idx.js';
export { NET_DEFAULTS, NETS, type NetDefaults, type NetName } from './cli/args.js';
