// One writer per output: a lock file beside (or inside) what a command writes, holding who took
// it: { pid, host, started, command }. It is created with O_EXCL ('wx'), so of two processes
// starting at once exactly one gets it; the other stops at once with one line naming the holder.
// A lock whose process is gone (same host, pid not running: a kill, a crash, a power cut) is
// stale and taken over, with a message. A lock from another host cannot be checked and is never
// taken over: the message says to remove it by hand if that run is gone.
//
// Locks are released (the file removed) by release(), and by the exit hook on any exit that
// runs JavaScript (process.exit after a second Ctrl-C included); a SIGKILL leaves a stale lock
// that the next run takes over.
import { hostname } from 'node:os';
import { closeSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { pidAlive } from './checkpoint/atomic.js';

export interface LockInfo {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  started: string;
  /** The command line of the holder. */
  command: string;
}

/** Another process holds the lock (or it cannot be read); the message names the holder. */
export class LockHeldError extends Error {
  override name = 'LockHeldError';
}

const held = new Set<Lock>();
process.once('exit', () => {
  for (const lock of held) lock.release();
});

export class Lock {
  #released = false;
  constructor(
    readonly path: string,
    readonly info: LockInfo,
  ) {
    held.add(this);
  }

  /** Removes the lock file if it is still this process's (idempotent, synchronous: safe in an exit hook). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    held.delete(this);
    try {
      if (readLock(this.path)?.pid === this.info.pid) unlinkSync(this.path);
    } catch {
      // gone already
    }
  }
}

function readLock(path: string): LockInfo | null {
  try {
    const info = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
    return Number.isInteger(info.pid) && typeof info.host === 'string' ? info : null;
  } catch {
    return null;
  }
}

/** This process's command line as a user would type it (what a lock records). */
export function thisCommandLine(): string {
  const [, script, ...args] = process.argv;
  return [script?.endsWith('cli.js') ? 'neuralign' : (script ?? 'node'), ...args].join(' ');
}

/** "pid 123 on host since 2024-...: neuralign train ..." */
export function describeHolder(info: LockInfo): string {
  return `pid ${info.pid} on ${info.host} since ${info.started} (${info.command})`;
}

/**
 * Takes the lock at `path` for `command`, or throws LockHeldError naming the holder. `what` names
 * the locked output in messages (a folder, a file); `onMessage` hears about a stale lock taken over.
 */
export function acquireLock(path: string, what: string, command: string, onMessage: (line: string) => void = () => {}): Lock {
  const info: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString(), command };
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let text = '';
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        continue; // released meanwhile: try again
      }
      const holder = readLock(path);
      if (!holder) throw new LockHeldError(`${what} is locked by ${path}, which is not a lock neuralign can read: remove it if no run is using ${what}`);
      if (holder.host !== info.host) throw new LockHeldError(`${what} is in use by ${describeHolder(holder)}; if that run is gone, remove ${path}`);
      if (pidAlive(holder.pid)) throw new LockHeldError(`${what} is in use by ${describeHolder(holder)}; wait for it to finish or choose another output`);
      if (takeOver(path, text)) onMessage(`${what}: taking over the lock of ${describeHolder(holder)}, which is no longer running`);
      continue;
    }
    try {
      writeSync(fd, `${JSON.stringify(info)}\n`);
    } finally {
      closeSync(fd);
    }
    return new Lock(path, info);
  }
  throw new LockHeldError(`${what}: could not take ${path} (other processes keep taking it)`);
}

/**
 * Removes the stale lock whose text is `stale`, unless another process replaced it meanwhile: the
 * lock is renamed aside first (atomic: of two processes taking it over, one wins the rename), and
 * if what was moved is not the stale lock, it is linked back.
 */
function takeOver(path: string, stale: string): boolean {
  const aside = `${path}.${process.pid}.stale`;
  try {
    renameSync(path, aside);
  } catch {
    return false;
  }
  let moved = '';
  try {
    moved = readFileSync(aside, 'utf8');
  } catch {
    // unreadable: treat as not ours to remove
  }
  if (moved !== stale) {
    try {
      linkSync(aside, path);
    } catch {
      // someone took the lock meanwhile; the one we moved was theirs before, and they will see it gone
    }
  }
  unlinkSync(aside);
  return moved === stale;
}
