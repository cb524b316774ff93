// Early stopping on a validation loss (Keras EarlyStopping with restore_best_weights, min_delta 0):
// stop after `patience` evaluations in a row without a lower loss than the best so far.

/** The patience rule of early stopping: feed it each validation loss with update(). */
export class EarlyStopping {
  /** The lowest loss seen, and the evaluation (0-based) that gave it; -1 before any. */
  best = Infinity;
  bestAt = -1;
  /** Evaluations since the best one. */
  sinceBest = 0;
  private seen = 0;

  constructor(readonly patience: number) {
    if (!Number.isSafeInteger(patience) || patience < 1) throw new RangeError(`EarlyStopping: patience must be a whole number ≥ 1, got ${patience}`);
  }

  /**
   * Records one evaluation's loss. 'better': a new best (keep these weights); 'stop': `patience`
   * evaluations without one; 'wait' otherwise. A non-finite loss is never better.
   */
  update(loss: number): 'better' | 'wait' | 'stop' {
    const at = this.seen++;
    if (loss < this.best) {
      this.best = loss;
      this.bestAt = at;
      this.sinceBest = 0;
      return 'better';
    }
    this.sinceBest++;
    return this.sinceBest >= this.patience ? 'stop' : 'wait';
  }
}
