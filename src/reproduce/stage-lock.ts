// One writer per stage: DIR/stages/NAME.lock, created with O_EXCL while a stage runs, holding who
// runs it ({ pid, host, job, started, command }; job is Slurm's job id when there is one). A second
// job that reaches the same stage (a resubmission while the first still runs, two submissions of
// one folder) stops with one line naming the holder instead of writing the same artifacts.
//
// A lock whose process is gone on this host (a SIGKILL, a node reboot) is stale and taken over. A
// lock from another host cannot be checked from here: the message says to remove it by hand if
// that job is gone (squeue shows whether it is). The lock goes when the stage ends, and on any
// exit that runs JavaScript.
//
// (Helper issue 16 adds a general lock for output folders, src/nn/lock.ts; once it is in, this
// file can become a thin use of it.)
import { closeSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export interface StageLockInfo {
  pid: number;
  host: string;
  /** SLURM_JOB_ID (and the array task) of the holder, or null outside Slurm. */
  job: string | null;
  started: string;
  command: string;
}

export class StageLockedError extends Error {
  override name = 'StageLockedError';
}

export const stageLockPath = (dir: string, stage: string): string => join(dir, 'stages', `${stage}.lock`);

export function readStageLock(path: string): StageLockInfo | null {
  try {
    const info = JSON.parse(readFileSync(path, 'utf8')) as StageLockInfo;
    return Number.isInteger(info.pid) && typeof info.host === 'string' ? info : null;
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the holder still runs: checked on this host, assumed on another. */
export function lockIsLive(info: StageLockInfo): boolean {
  return info.host !== hostname() || pidAlive(info.pid);
}

export function describeStageHolder(info: StageLockInfo): string {
  return `${info.job ? `Slurm job ${info.job}, ` : ''}pid ${info.pid} on ${info.host} since ${info.started}`;
}

/** This process's Slurm job as "ARRAYJOB_TASK (JOBID)", or null. */
export function slurmJobId(env: NodeJS.ProcessEnv = process.env): string | null {
  if (!env.SLURM_JOB_ID) return null;
  return env.SLURM_ARRAY_JOB_ID ? `${env.SLURM_ARRAY_JOB_ID}_${env.SLURM_ARRAY_TASK_ID} (${env.SLURM_JOB_ID})` : env.SLURM_JOB_ID;
}

const held = new Set<string>();
process.once('exit', () => {
  for (const path of held) releaseIfOurs(path);
});

function releaseIfOurs(path: string): void {
  held.delete(path);
  try {
    if (readStageLock(path)?.pid === process.pid) unlinkSync(path);
  } catch {
    // gone already
  }
}

/**
 * Takes the lock of `stage` in the run folder `dir`, or throws StageLockedError naming the holder.
 * Returns the release function. `onMessage` hears about a stale lock taken over.
 */
export function acquireStageLock(dir: string, stage: string, command: string, onMessage: (line: string) => void = () => {}): () => void {
  const path = stageLockPath(dir, stage);
  const info: StageLockInfo = { pid: process.pid, host: hostname(), job: slurmJobId(), started: new Date().toISOString(), command };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      try {
        writeSync(fd, `${JSON.stringify(info)}\n`);
      } finally {
        closeSync(fd);
      }
      held.add(path);
      return () => releaseIfOurs(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = readStageLock(path);
    if (!holder) throw new StageLockedError(`stage ${stage} is locked by ${path}, which neuralign cannot read: remove it if no job runs that stage`);
    if (holder.host !== info.host) throw new StageLockedError(`stage ${stage} is being run by ${describeStageHolder(holder)}; not starting it twice (if that job is gone, remove ${path})`);
    if (pidAlive(holder.pid)) throw new StageLockedError(`stage ${stage} is being run by ${describeStageHolder(holder)}; not starting it twice`);
    // Stale (its process is gone): take it over. The lock is renamed aside first, so of two takers
    // one wins the rename; if what it moved is no longer the stale lock (a third job took it
    // meanwhile), it is linked back.
    const aside = `${path}.${process.pid}.stale`;
    try {
      renameSync(path, aside);
    } catch {
      continue; // another taker moved it
    }
    const moved = readStageLock(aside);
    if (moved && moved.pid === holder.pid && moved.started === holder.started) onMessage(`stage ${stage}: taking over the lock of ${describeStageHolder(holder)}, which is no longer running`);
    else {
      try {
        linkSync(aside, path);
      } catch {
        // taken again meanwhile
      }
    }
    unlinkSync(aside);
  }
  throw new StageLockedError(`stage ${stage}: could not take ${path} (other jobs keep taking it)`);
}
