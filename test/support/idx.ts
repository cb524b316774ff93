// Small synthetic IDX files (MNIST's format, of any rank and type) for data and CLI tests.

/** IDX type bytes. */
export const IDX_TYPE = { u8: 0x08, i8: 0x09, i16: 0x0b, i32: 0x0c, f32: 0x0d, f64: 0x0e } as const;
const BYTES = { u8: 1, i8: 1, i16: 2, i32: 4, f32: 4, f64: 8 } as const;

/**
 * An IDX file: two zero bytes, the type byte, the rank, a big-endian u32 per dimension, then the
 * values big-endian (`values[i]` is the i-th value in row-major order).
 */
export function idxFile(type: keyof typeof IDX_TYPE, dims: readonly number[], values: (i: number) => number): Uint8Array {
  const n = dims.reduce((a, b) => a * b, 1);
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + n * BYTES[type]);
  const v = new DataView(out.buffer);
  v.setUint8(2, IDX_TYPE[type]);
  v.setUint8(3, dims.length);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d));
  for (let i = 0; i < n; i++) {
    const x = values(i);
    const at = header + i * BYTES[type];
    switch (type) {
      case 'u8': v.setUint8(at, x); break;
      case 'i8': v.setInt8(at, x); break;
      case 'i16': v.setInt16(at, x); break;
      case 'i32': v.setInt32(at, x); break;
      case 'f32': v.setFloat32(at, x); break;
      case 'f64': v.setFloat64(at, x); break;
    }
  }
  return out;
}

/** An IDX3 image file: magic 0x803, count, rows, cols, then one byte per pixel. */
export function idxImages(count: number, rows: number, cols: number, pixel: (i: number) => number = (i) => (i * 37) % 256): Uint8Array {
  return idxFile('u8', [count, rows, cols], pixel);
}

/** An IDX1 label file: magic 0x801, count, then one byte per label. */
export function idxLabels(labels: number[]): Uint8Array {
  return idxFile('u8', [labels.length], (i) => labels[i]);
}
