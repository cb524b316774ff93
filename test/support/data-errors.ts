// The data loaders' error contract, shared by the data tests.
import { expect } from 'chai';
import { DataError } from '../../src/data/idx.js';

/** `fn` throws a DataError whose message is one line and names every part; returns the message. */
export function expectDataError(fn: () => unknown, ...parts: string[]): string {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a DataError').to.be.instanceOf(DataError);
  const msg = (err as Error).message;
  expect(msg, 'one line').not.to.include('\n');
  for (const p of parts) expect(msg, msg).to.include(p);
  return msg;
}
