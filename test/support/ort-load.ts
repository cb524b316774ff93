// Loads each ONNX file named on the command line in ONNX Runtime with every graph optimization on and
// warnings logged. ORT's native logger writes to this process's stderr, which a test cannot capture in
// its own process: the test runs this script as a child and reads its stderr. Before each file it
// writes a marker line ("=== FILE") to stderr (synchronous for pipes on Linux, so ORT's lines follow
// the marker of the file they belong to); a file that fails to load prints "!!! FILE: message".
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';

ort.env.logLevel = 'warning';
for (const file of process.argv.slice(2)) {
  process.stderr.write(`=== ${file}\n`);
  try {
    const session = await ort.InferenceSession.create(readFileSync(file), { graphOptimizationLevel: 'all', logSeverityLevel: 1 });
    await session.release();
  } catch (e) {
    process.stderr.write(`!!! ${file}: ${(e as Error).message.split('\n')[0]}\n`);
  }
}
