// Where every stage of a run folder stands, from the files alone (no Slurm needed, so it works on
// a login node, a laptop with the folder mounted, or after the cluster forgot the jobs):
//
//   done     its record matches its inputs and outputs (runner.ts stageStatus)
//   running  its lock (stage-lock.ts) is held: by a live process on this host, or by any process
//            on another host (which cannot be checked from here; the lock names the job)
//   failed   its latest attempt ended with a nonzero exit, or stopped without finishing (killed,
//            cancelled, out of time): the Slurm task log's latest section (slurm.ts writes a header
//            and a footer around each attempt) or, for a local run, the started record left
//            behind; with the last error line of that log
//   waiting  none of these: not started yet (queued, or its producers are not done)
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stageStatus, type StageStatus } from './runner.js';
import { slurmLogPath } from './slurm.js';
import { describeStageHolder, lockIsLive, readStageLock, stageLockPath } from './stage-lock.js';
import type { Stage } from './stages.js';

export type StageState = 'done' | 'running' | 'failed' | 'waiting';

export interface StageReport {
  stage: Stage;
  state: StageState;
  /** The runner's own status (done, resumable, pending, stale). */
  status: StageStatus;
  /** One line: who runs it, the error, or what it waits for. */
  detail: string;
  /** The log the detail comes from, if any. */
  log?: string;
}

const ERROR_LINE = /error|failed|cancel|killed|exception|due to time limit|out of memory|oom|not |cannot|refus/i;

/** The last line of `lines` that reads like an error, else the last non-empty one. */
export function lastErrorLine(lines: readonly string[]): string {
  const text = lines.map((l) => l.trim()).filter((l) => l && !l.startsWith('== neuralign stage'));
  return [...text].reverse().find((l) => ERROR_LINE.test(l)) ?? text.at(-1) ?? '';
}

/** The latest attempt of `stage` in a Slurm task log: its lines, and its exit code (null: no footer). */
export function latestAttempt(log: string, stage: string): { lines: string[]; exit: number | null } | null {
  if (!existsSync(log)) return null;
  const lines = readFileSync(log, 'utf8').split('\n');
  const header = `== neuralign stage ${stage}: job `;
  let start = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.startsWith(header)) {
      start = i;
      break;
    }
  }
  if (start < 0) return null;
  const section = lines.slice(start + 1);
  const footer = new RegExp(`^== neuralign stage ${stage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: exit (\\d+) `);
  for (let i = 0; i < section.length; i++) {
    const m = footer.exec(section[i]!);
    // What Slurm appends after the footer (a CANCELLED line) still belongs to this attempt.
    if (m) return { lines: section, exit: Number(m[1]) };
  }
  return { lines: section, exit: null };
}

export async function runStatus(dir: string, stages: readonly Stage[]): Promise<StageReport[]> {
  const statuses = new Map<Stage, StageStatus>();
  for (const s of stages) statuses.set(s, await stageStatus(dir, s));
  const byKind = new Map<string, Stage[]>();
  for (const s of stages) byKind.set(s.kind, [...(byKind.get(s.kind) ?? []), s]);
  const producerOf = new Map<string, Stage>();
  for (const s of stages) for (const o of s.outputs) producerOf.set(o, s);

  return stages.map((stage): StageReport => {
    const status = statuses.get(stage)!;
    if (status === 'done') return { stage, state: 'done', status, detail: '' };
    const lock = readStageLock(stageLockPath(dir, stage.name));
    if (lock && lockIsLive(lock)) return { stage, state: 'running', status, detail: describeStageHolder(lock) };
    const slurmLog = slurmLogPath(dir, stage.kind, byKind.get(stage.kind)!.indexOf(stage) + 1);
    const attempt = latestAttempt(slurmLog, stage.name);
    if (attempt && attempt.exit !== 0) {
      const how = attempt.exit === null ? 'stopped without finishing' : `exit ${attempt.exit}`;
      return { stage, state: 'failed', status, detail: `${how}: ${lastErrorLine(attempt.lines) || '(no output)'}`, log: slurmLog };
    }
    // A local run (or a job whose log is gone) that started and neither finished nor holds the lock.
    const localLog = join(dir, 'logs', `${stage.name}.log`);
    if (status === 'resumable' || (lock && !lockIsLive(lock))) {
      const lines = existsSync(localLog) ? readFileSync(localLog, 'utf8').split('\n') : [];
      return { stage, state: 'failed', status, detail: `stopped without finishing${status === 'resumable' ? ' (resumes from its last checkpoint)' : ''}: ${lastErrorLine(lines) || '(no output)'}`, log: existsSync(localLog) ? localLog : undefined };
    }
    const blocking = [...new Set(stage.inputs.map((i) => producerOf.get(i)).filter((p): p is Stage => p !== undefined && statuses.get(p) !== 'done'))];
    // Slurm cancels the dependents of a failed job (--kill-on-invalid-dep): from the files, a
    // queued task and a cancelled one look the same.
    const notStarted = existsSync(join(dir, 'slurm', 'jobs.txt')) ? 'to start (queued, or cancelled after a failed dependency: squeue tells which)' : 'to start';
    const detail = blocking.length ? `for ${blocking.map((p) => p.name).join(', ')}` : status === 'stale' ? 'to run again (its inputs or command changed)' : notStarted;
    return { stage, state: 'waiting', status, detail };
  });
}
