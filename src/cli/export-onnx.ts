// --export FILE.onnx: the trained (or --load'ed) model as an ONNX file, written atomically (temp
// file, then rename) so an interrupted run never leaves half a model under the name.
import { existsSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Model } from '../nn/model.js';
import type { Trainer } from '../nn/trainer.js';
import { checkOnnxExportable, OnnxExportError } from '../onnx/export.js';

export { OnnxExportError };

/** Throws OnnxExportError unless `model` can be exported to `file`: every layer has an export rule, the folder exists, FILE is not a folder. */
export function checkExportTarget(file: string, model: Model): void {
  const dir = dirname(file);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new OnnxExportError(`cannot export ${file}: folder ${dir} does not exist; create it or give --export another path`);
  if (existsSync(file) && statSync(file).isDirectory()) throw new OnnxExportError(`cannot export ${file}: it is a folder; give --export a file name, e.g. --export ${file}/model.onnx`);
  checkOnnxExportable(model);
}

/** Writes the trainer's model with its current parameters to `file` (ONNX); returns the bytes written. */
export async function writeOnnxFile(file: string, trainer: Trainer, classes: number): Promise<number> {
  const bytes = await trainer.exportOnnx({ classNames: Array.from({ length: classes }, (_, i) => String(i)), inputScaling: 'u8/255' });
  const tmp = `${file}.tmp`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
  } catch (e) {
    if (existsSync(tmp)) unlinkSync(tmp);
    throw new OnnxExportError(`cannot write ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  return bytes.length;
}
