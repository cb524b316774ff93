// The package's main in Node: the public API of index.ts plus what only Node has (a context on
// dawn.node, and its gentle way of waiting for the GPU).
export * from './index.js';
export { createNodeContext, softwareAdapterThreads, useSoftwareAdapterThreads, type NodeContextOptions } from './gpu/node.js';
export { gentleWait } from './gpu/gentle-wait.js';
export { fileTuningStore, defaultTuningFile } from './gpu/tuning-store-node.js';
