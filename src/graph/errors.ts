/** Thrown when a graph is built wrong: names the op, its inputs and their shapes. */
export class GraphError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GraphError';
  }
}
