// Reading dataset files with one-line errors: a missing folder or file names the path and what
// was expected there; gzip (magic bytes 1f 8b) is undone transparently.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { DataError } from './errors.js';

/** The folder `dir`, or a DataError saying it is missing and what it should hold. */
export function requireDir(dir: string, expected: string): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new DataError(`${dir}: folder not found (expected ${expected})`);
  }
  if (!isDir) throw new DataError(`${dir}: not a folder (expected ${expected})`);
}

export function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function isFile(path: string): boolean {
  return existsSync(path) && !isDir(path);
}

/** A file's bytes, gunzipped when it starts with the gzip magic 1f 8b. */
export function readDataFile(path: string, expected: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a folder, not a file' : `cannot read (${code ?? String(e)})`;
    throw new DataError(`${path}: ${why} (expected ${expected})`);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new DataError(`${path}: corrupt or truncated gzip data (${(e as Error).message})`);
    }
  }
  return bytes;
}
