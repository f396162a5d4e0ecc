// What commands write besides their console output, and the checks before they start: every
// output path can be written (nn/writable.ts), and a file another command is writing is locked.
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../nn/checkpoint/atomic.js';
import { acquireLock, thisCommandLine, type Lock } from '../nn/lock.js';
import { checkWritableFile } from '../nn/writable.js';

/** Writes `value` as indented JSON with a final newline, atomically (a reader never sees half a report). */
export async function writeJson(path: string, value: unknown): Promise<void> {
  try {
    await writeFileAtomic(path, [new TextEncoder().encode(`${JSON.stringify(value, null, 1)}\n`)]);
  } catch (e) {
    // The error names the temporary file; the user knows the path they gave.
    throw new Error(`${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/**
 * Before any work: checks that each output file (flag -> path; absent flags skipped) can be
 * written, and locks the `locked` ones against a second writer (`.NAME.neuralign.lock` beside
 * each). Returns the release of the locks (the exit hook releases them too).
 */
export function claimOutputs(files: Record<string, string | undefined>, locked: string[] = []): () => void {
  for (const [flag, path] of Object.entries(files)) if (path) checkWritableFile(path, flag);
  const locks: Lock[] = [];
  try {
    for (const flag of locked) {
      const path = files[flag];
      if (path) locks.push(acquireLock(join(dirname(path), `.${basename(path)}.neuralign.lock`), path, thisCommandLine(), (line) => console.error(line)));
    }
  } catch (e) {
    for (const l of locks) l.release();
    throw e;
  }
  return () => locks.forEach((l) => l.release());
}
