// Float64 CPU twins of shaders/copy.wgsl: the elementwise add, concatenation along the last axis,
// and their backward passes.

/** y = a + b. */
export function addRef(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i] + b[i];
  return y;
}

/** Gradients of y = a + b: da = db = dy (each + its initial value when accumulating). */
export function addBackwardRef(dy: ArrayLike<number>, da0?: ArrayLike<number>, db0?: ArrayLike<number>): { da: Float64Array; db: Float64Array } {
  const da = Float64Array.from(dy, (v, i) => v + (da0 ? da0[i] : 0));
  const db = Float64Array.from(dy, (v, i) => v + (db0 ? db0[i] : 0));
  return { da, db };
}

/** xs[i] [R, C_i] → y [R, ΣC_i]. */
export function concatRef(xs: readonly ArrayLike<number>[], rows: number, cols: readonly number[]): Float64Array {
  const total = cols.reduce((s, c) => s + c, 0);
  const y = new Float64Array(rows * total);
  let off = 0;
  xs.forEach((x, i) => {
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols[i]; c++) y[r * total + off + c] = x[r * cols[i] + c];
    off += cols[i];
  });
  return y;
}

/** dx_i = dy[:, columns of input i] (+ dx0[i] when given). */
export function concatBackwardRef(dy: ArrayLike<number>, rows: number, cols: readonly number[], dx0?: readonly (ArrayLike<number> | undefined)[]): Float64Array[] {
  const total = cols.reduce((s, c) => s + c, 0);
  let off = 0;
  return cols.map((C, i) => {
    const dx = new Float64Array(rows * C);
    for (let r = 0; r < rows; r++) for (let c = 0; c < C; c++) dx[r * C + c] = dy[r * total + off + c] + (dx0?.[i] ? dx0[i]![r * C + c] : 0);
    off += C;
    return dx;
  });
}
