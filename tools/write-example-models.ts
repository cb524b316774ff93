// Writes examples/models/<net>.json: the five built-in nets as JSON model specs, exactly as
// modelToSpec gives them with the knobs `--net <net>` uses, plus the net's training defaults, so
// `--model examples/models/<net>.json` trains what `--net <net>` trains (test/example-models.test.ts
// checks they have not drifted).
// Usage: node dist/tools/write-example-models.js
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NET_DEFAULTS, NET_KINDS, builtinModel } from '../src/nn/models/builtin.js';
import { modelToSpec } from '../src/nn/spec.js';

/** The text of examples/models/<net>.json: the spec of the net with its default knobs, and its training defaults. */
export function exampleModelText(net: (typeof NET_KINDS)[number]): string {
  const d = NET_DEFAULTS[net];
  const spec = modelToSpec(builtinModel(net, { hidden: d.hidden, layers: d.layers, cell: d.cell, keepProb: d.keepProb }));
  const training = { ...d.budget, batch: d.batch, lr: d.lr, optimizer: d.optimizer };
  return JSON.stringify({ ...spec, training }, null, 1) + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = fileURLToPath(new URL('../../examples/models/', import.meta.url));
  for (const net of NET_KINDS) {
    writeFileSync(join(dir, `${net}.json`), exampleModelText(net));
    console.log(`wrote ${join('examples/models', `${net}.json`)}`);
  }
}
