// Float64 twins of the embedding lookup and its table gradient.

export function embeddingRef(ids: ArrayLike<number>, table: ArrayLike<number>, dim: number): Float64Array {
  const y = new Float64Array(ids.length * dim);
  for (let i = 0; i < ids.length; i++) for (let d = 0; d < dim; d++) y[i * dim + d] = table[ids[i] * dim + d];
  return y;
}

/** dtable (+ dtable0) = Σ over positions i of dy[i] added to row ids[i]. */
export function embeddingBackwardRef(ids: ArrayLike<number>, dy: ArrayLike<number>, vocab: number, dim: number, dtable0?: ArrayLike<number>): Float64Array {
  const out = dtable0 ? Float64Array.from(dtable0) : new Float64Array(vocab * dim);
  for (let i = 0; i < ids.length; i++) for (let d = 0; d < dim; d++) out[ids[i] * dim + d] += dy[i * dim + d];
  return out;
}
