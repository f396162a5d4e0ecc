// DataError: bad dataset input (a missing folder or file, a truncated file, a wrong magic number,
// a label out of range). Its message is one line naming the path and what was expected, so the
// CLI prints err.message and nothing else.
export class DataError extends Error {
  override name = 'DataError';
}
