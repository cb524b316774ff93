// dist/train.js is the documented entry point (`node dist/train.js --net rnn`); it forwards to the CLI.
import { writeFileSync, existsSync } from 'node:fs';
if (existsSync('dist/src/cli/train.js')) {
  writeFileSync('dist/train.js', "import './src/cli/train.js';\n");
}
