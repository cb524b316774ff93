// dist/train.js is the documented entry point (`node dist/train.js --net rnn`) and the package's bin
// (`npx webgpu-train --net rnn`), so it starts with a shebang and is executable; it forwards to the CLI.
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
if (existsSync('dist/src/cli/train.js')) {
  writeFileSync('dist/train.js', "#!/usr/bin/env node\nimport './src/cli/train.js';\n");
  chmodSync('dist/train.js', 0o755);
}
