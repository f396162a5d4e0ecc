// Output paths checked before any work: a run that would fail to save after an hour of training
// (or an alignment that would fail to write its report) fails at once instead, in one line. The
// check creates and removes a probe file (a temporary file by writeFileAtomic's naming, so a kill
// in between leaves nothing that removeStaleTemps does not clean): permission bits alone do not
// say whether a file can be written (root, read-only mounts, ACLs).
import { closeSync, existsSync, mkdirSync, openSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { tempPathFor } from './checkpoint/atomic.js';

const reason = (e: unknown) => {
  const err = e as NodeJS.ErrnoException;
  return err.code ? `${err.code}: ${err.message.replace(/^\w+: /, '').replace(/, \w+ '.*'$/, '')}` : err.message;
};

function probe(folder: string, what: string): void {
  const path = tempPathFor(join(folder, 'write-probe'));
  try {
    closeSync(openSync(path, 'wx'));
    unlinkSync(path);
  } catch (e) {
    throw new Error(`${what}: cannot write in ${folder} (${reason(e)})`);
  }
}

/**
 * mkdir -p one level at a time, from the deepest folder that exists. Node's own
 * mkdirSync(dir, { recursive: true }) never returns on a path under /proc or /sys (where mkdir
 * answers ENOENT with the parent present, and Node retries the parent forever).
 */
export function makeFolders(dir: string): void {
  const full = resolve(dir);
  const missing: string[] = [];
  for (let d = full; !existsSync(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) mkdirSync(d);
}

/** Creates folder `dir` (and its parents) when missing and checks that files can be written in it. */
export function checkWritableFolder(dir: string, flag?: string): void {
  const what = flag ? `${flag} ${dir}` : dir;
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new Error(`${what}: is a file, not a folder`);
  try {
    makeFolders(dir);
  } catch (e) {
    throw new Error(`${what}: cannot create the folder (${reason(e)})`);
  }
  probe(dir, what);
}

/** Checks that file `path` can be written: not a folder, in an existing folder where files can be created. */
export function checkWritableFile(path: string, flag?: string): void {
  const what = flag ? `${flag} ${path}` : path;
  if (existsSync(path) && statSync(path).isDirectory()) throw new Error(`${what}: is a folder, not a file`);
  const folder = dirname(resolve(path));
  if (!existsSync(folder)) throw new Error(`${what}: its folder ${dirname(path)} does not exist`);
  if (!statSync(folder).isDirectory()) throw new Error(`${what}: ${dirname(path)} is not a folder`);
  probe(folder, what);
}
