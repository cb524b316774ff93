// Small synthetic MNIST-format (IDX) files for data and CLI tests.

/** An IDX3 image file: magic 0x803, count, rows, cols, then one byte per pixel. */
export function idxImages(count: number, rows: number, cols: number, pixel: (i: number) => number = (i) => (i * 37) % 256): Uint8Array {
  const out = new Uint8Array(16 + count * rows * cols);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x803);
  v.setUint32(4, count);
  v.setUint32(8, rows);
  v.setUint32(12, cols);
  for (let i = 0; i < count * rows * cols; i++) out[16 + i] = pixel(i);
  return out;
}

/** An IDX1 label file: magic 0x801, count, then one byte per label. */
export function idxLabels(labels: number[]): Uint8Array {
  const out = new Uint8Array(8 + labels.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x801);
  v.setUint32(4, labels.length);
  out.set(labels, 8);
  return out;
}
