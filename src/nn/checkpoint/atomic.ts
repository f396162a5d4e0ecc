// Crash-safe file replacement: write a temporary file in the target's folder, fsync it, rename it
// over the target, fsync the folder. rename() within one file system is atomic, so a reader (or
// a run restarted after a kill at any moment) sees the old file whole or the new file whole. The
// first fsync makes the data durable before the rename can be; the folder fsync makes the rename
// itself durable.
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

export interface AtomicWriteHooks {
  /** Called after the temporary file is written and synced, before the rename (tests inject crashes here). */
  beforeRename?: (tempPath: string) => void | Promise<void>;
}

/** Writes `chunks` to `path` atomically (see above). Leaves no temporary file on an error. */
export async function writeFileAtomic(path: string, chunks: readonly Uint8Array[], hooks: AtomicWriteHooks = {}): Promise<void> {
  const target = resolve(path);
  const dir = dirname(target);
  const temp = join(dir, `.${basename(target)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`);
  const file = await open(temp, 'wx', 0o644);
  try {
    try {
      for (const chunk of chunks) {
        let done = 0;
        while (done < chunk.length) done += (await file.write(chunk, done, chunk.length - done)).bytesWritten;
      }
      await file.sync();
    } finally {
      await file.close();
    }
    await hooks.beforeRename?.(temp);
    await rename(temp, target);
  } catch (e) {
    await unlink(temp).catch(() => {});
    throw e;
  }
  await syncDir(dir);
}

/** fsync of a folder (persists a rename); some file systems refuse it, which costs only durability. */
async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // EISDIR/EINVAL/EPERM on platforms without directory fsync (Windows, some FUSE mounts).
  } finally {
    await handle?.close();
  }
}
