// Crash-safe file replacement: write a temporary file in the target's folder, fsync it, rename it
// over the target, fsync the folder. rename() within one file system is atomic, so a reader (or
// a run restarted after a kill at any moment) sees the old file whole or the new file whole. The
// first fsync makes the data durable before the rename can be; the folder fsync makes the rename
// itself durable.
//
// The temporary file is `.NAME.PID.RANDOM.tmp`. This process removes its own on every exit path
// it sees (an error, process.exit after a second Ctrl-C: the 'exit' hook below); a kill leaves
// one behind, and the next command that takes the folder's lock removes those of dead processes
// (removeStaleTemps, called by RunFolder).
import { readdirSync, unlinkSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

export interface AtomicWriteHooks {
  /** Called after the temporary file is written and synced, before the rename (tests inject crashes here). */
  beforeRename?: (tempPath: string) => void | Promise<void>;
}

/** The temporary files this process is writing now (removed by the exit hook). */
const live = new Set<string>();
process.once('exit', () => {
  for (const p of live) {
    try {
      unlinkSync(p);
    } catch {
      // already renamed or removed
    }
  }
});

/** `.NAME.PID.RANDOM.tmp`: the name of the temporary file for `target` (a path). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`);
}
const TEMP_FILE = /^\..+\.(\d+)\.[a-z0-9]+\.tmp$/;

/** Writes `chunks` to `path` atomically (see above). Leaves no temporary file on an error. */
export async function writeFileAtomic(path: string, chunks: readonly Uint8Array[], hooks: AtomicWriteHooks = {}): Promise<void> {
  const target = resolve(path);
  const dir = dirname(target);
  const temp = tempPathFor(target);
  const file = await open(temp, 'wx', 0o644);
  live.add(temp);
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
    crashPoint(`rename:${basename(target)}`);
    await rename(temp, target);
  } catch (e) {
    await unlink(temp).catch(() => {});
    throw e;
  } finally {
    live.delete(temp);
  }
  await syncDir(dir);
}

/** Whether process `pid` exists on this host (EPERM: it exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the temporary files in `dir` left by processes that no longer run; returns their names. */
export function removeStaleTemps(dir: string, alive: (pid: number) => boolean = pidAlive): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const m = TEMP_FILE.exec(name);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(name);
    } catch {
      // removed meanwhile
    }
  }
  return removed;
}

// Crash tests: NEURALIGN_KILL_AT=NAME#K makes the process SIGKILL itself the K-th time (default
// the first) it reaches point NAME ('rename:FILE' before a temporary file replaces FILE; RunFolder
// names its own points), so a test can stop a real run at an exact moment of its writes.
const killAt = /^(.+?)(?:#(\d+))?$/.exec(process.env.NEURALIGN_KILL_AT ?? '');
let killCount = 0;

/** A place where a crash test may kill the process (see above); nothing otherwise. */
export function crashPoint(name: string): void {
  if (!killAt || killAt[1] !== name) return;
  if (++killCount === Number(killAt[2] ?? 1)) process.kill(process.pid, 'SIGKILL');
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
