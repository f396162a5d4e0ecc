// Running the stage graph (stages.ts) so that an interrupted reproduction continues where it
// stopped and a changed input redoes exactly what depends on it.
//
// Each stage leaves a record, DIR/stages/NAME.json: its command line, the SHA-256 of every input
// and output file, and its wall time. A stage is done when its record exists, the command line
// is the same, and every input and output file still has the recorded hash; it is then skipped.
// Before it runs, a stage writes NAME.started.json with its command line and input hashes: a
// train or curve stage killed in the middle finds that record matching and continues from its
// last checkpoint (`--resume`); when its inputs changed meanwhile, its folder is cleared first.
// The command's own output goes to DIR/logs/NAME.log; the terminal shows one progress line.
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileSha256 } from '../align/curve-file.js';
import { writeFileAtomic } from '../nn/checkpoint/atomic.js';
import { acquireStageLock } from './stage-lock.js';
import type { Stage } from './stages.js';

export interface StageRecord {
  stage: string;
  argv: string[];
  inputs: Record<string, string>;
  outputs: Record<string, string>;
  seconds: number;
  finished: string;
}

export type StageStatus = 'done' | 'resumable' | 'pending' | 'stale';

/** The file's SHA-256 (curve files record their endpoints' the same way), or null when it cannot be read. */
async function sha256(path: string): Promise<string | null> {
  try {
    return await fileSha256(path);
  } catch {
    return null;
  }
}

async function hashes(paths: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const p of paths) out[p] = (await sha256(p)) ?? 'missing';
  return out;
}

const recordPath = (dir: string, stage: Stage) => join(dir, 'stages', `${stage.name}.json`);
const startedPath = (dir: string, stage: Stage) => join(dir, 'stages', `${stage.name}.started.json`);

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

const sameArgv = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const sameHashes = (a: Record<string, string>, b: Record<string, string>) => Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

/** Where a stage stands (see the file comment). */
export async function stageStatus(dir: string, stage: Stage): Promise<StageStatus> {
  const inputs = await hashes(stage.inputs);
  const record = readJson<StageRecord>(recordPath(dir, stage));
  if (record && sameArgv(record.argv, stage.argv) && sameHashes(record.inputs, inputs) && sameHashes(record.outputs, await hashes(stage.outputs))) return 'done';
  const started = readJson<{ argv: string[]; inputs: Record<string, string> }>(startedPath(dir, stage));
  if (started && sameArgv(started.argv, stage.argv) && sameHashes(started.inputs, inputs)) return 'resumable';
  return record || started ? 'stale' : 'pending';
}

export interface StageProgress {
  stage: Stage;
  /** 1-based position among the stages this run executes, and their count. */
  index: number;
  count: number;
  /** Fraction of the stage done (from its output), 0..1. */
  fraction: number;
  /** What the stage is doing, e.g. "epoch 2/3" or "point 5/18". */
  detail: string;
  /** Seconds the stage has run, and estimates of what is left of it and of the whole run. */
  seconds: number;
  stageLeft: number;
  totalLeft: number;
}

export interface RunOptions {
  /** Runs one command (argv[0] is its name) and returns its exit code; output goes to console. */
  runCommand: (argv: string[]) => Promise<number>;
  /** Builds the report (the `report` stage). */
  runReport: () => Promise<void>;
  onProgress?: (p: StageProgress) => void;
  /** A stage is skipped (done) or starts. */
  onStage?: (stage: Stage, what: 'skipped' | 'started' | 'resumed' | 'finished', seconds?: number) => void;
  /** Hears what the runner did on its own (a stale stage lock taken over). */
  onMessage?: (line: string) => void;
}

/** The fraction of a stage that its command's output lines say is done. */
export function parseProgress(stage: Stage, line: string, state: { points: number }): { fraction: number; detail: string } | null {
  if (stage.kind === 'train' || stage.kind === 'curve') {
    const m = /epoch (\d+)\/(\d+)\s+(?:batch\s+(\d+)\/(\d+))?/.exec(line);
    if (!m) return null;
    const [e, E] = [Number(m[1]), Number(m[2])];
    const within = m[3] ? Number(m[3]) / Number(m[4]) : 1;
    return { fraction: (e - 1 + within) / E, detail: `epoch ${e}/${E}` };
  }
  if (stage.kind === 'eval') {
    if (!/^(curve|line)\s+\d\.\d{4}\s/.test(line)) return null;
    state.points++;
    const per = Number(stage.argv[stage.argv.indexOf('--points') + 1]) * 2;
    return { fraction: state.points / per, detail: `point ${state.points}/${per}` };
  }
  if (stage.kind === 'plane') {
    const m = /^\[\s*(\d+)\/(\d+)\]/.exec(line);
    return m ? { fraction: Number(m[1]) / Number(m[2]), detail: `point ${m[1]}/${m[2]}` } : null;
  }
  return null;
}

/**
 * Runs `stages` in order (the graph is listed so that every input comes first), skipping the done
 * ones. A stage that fails stops the run with its log file's path in the error.
 */
export async function runStages(dir: string, stages: readonly Stage[], opts: RunOptions): Promise<void> {
  mkdirSync(join(dir, 'stages'), { recursive: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const statuses = new Map<Stage, StageStatus>();
  for (const s of stages) statuses.set(s, await stageStatus(dir, s));
  const todo = stages.filter((s) => statuses.get(s) !== 'done');
  const totalCost = todo.reduce((c, s) => c + s.cost, 0);
  let doneCost = 0;
  const runStart = performance.now();
  for (const stage of stages) {
    // The status may have changed: an earlier stage of this run rewrote an input.
    const status = statuses.get(stage) === 'done' ? await stageStatus(dir, stage) : statuses.get(stage)!;
    if (status === 'done') {
      opts.onStage?.(stage, 'skipped');
      continue;
    }
    // One job per stage: a second one (a resubmission while this runs) stops here (stage-lock.ts).
    const release = acquireStageLock(dir, stage.name, `neuralign ${stage.argv.join(' ')}`, opts.onMessage);
    try {
      // Read again under the lock: another job may have finished the stage meanwhile.
      const current = await stageStatus(dir, stage);
      if (current === 'done') {
        opts.onStage?.(stage, 'skipped');
        continue;
      }
      const index = todo.indexOf(stage) + 1;
      const inputs = await hashes(stage.inputs);
      for (const [path, hash] of Object.entries(inputs)) if (hash === 'missing') throw new Error(`stage ${stage.name}: input ${path} is missing`);
      let argv = stage.argv;
      const resume = current === 'resumable' && stage.folder !== undefined && stage.outputs.some((o) => existsSync(o));
      if (!resume) {
        if (stage.folder) rmSync(stage.folder, { recursive: true, force: true });
        for (const o of stage.outputs) rmSync(o, { force: true });
      } else argv = [...argv, '--resume'];
      for (const o of stage.outputs) mkdirSync(dirname(o), { recursive: true });
      await writeFileAtomic(startedPath(dir, stage), [new TextEncoder().encode(JSON.stringify({ argv: stage.argv, inputs }, null, 1))]);
      await unlink(recordPath(dir, stage)).catch(() => undefined);
      opts.onStage?.(stage, resume ? 'resumed' : 'started');
      const start = performance.now();
      const log = join(dir, 'logs', `${stage.name}.log`);
      appendFileSync(log, `\n$ neuralign ${argv.join(' ')}\n`);
      const state = { points: 0 };
      const report = (fraction: number, detail: string) => {
        const seconds = (performance.now() - start) / 1000;
        const ranCost = doneCost + stage.cost * fraction;
        const rate = ranCost / Math.max(1e-3, (performance.now() - runStart) / 1000); // cost units per second
        const stageLeft = fraction > 0 ? (seconds / fraction) * (1 - fraction) : NaN;
        const totalLeft = rate > 0 ? (totalCost - ranCost) / rate : NaN;
        opts.onProgress?.({ stage, index, count: todo.length, fraction, detail, seconds, stageLeft, totalLeft });
      };
      report(0, 'starting');
      let code: number;
      if (stage.kind === 'report') {
        await opts.runReport();
        code = 0;
      } else {
        code = await captured(log, (line) => {
          const p = parseProgress(stage, line, state);
          if (p) report(Math.min(1, p.fraction), p.detail);
        }, () => opts.runCommand(argv));
      }
      if (code !== 0) throw new Error(`stage ${stage.name} failed (exit ${code}); its output is in ${log}`);
      const seconds = (performance.now() - start) / 1000;
      const record: StageRecord = { stage: stage.name, argv: stage.argv, inputs, outputs: await hashes(stage.outputs), seconds, finished: new Date().toISOString() };
      const missing = Object.entries(record.outputs).find(([, h]) => h === 'missing');
      if (missing) throw new Error(`stage ${stage.name} did not write ${missing[0]}; its output is in ${log}`);
      await writeFileAtomic(recordPath(dir, stage), [new TextEncoder().encode(`${JSON.stringify(record, null, 1)}\n`)]);
      await unlink(startedPath(dir, stage)).catch(() => undefined);
      doneCost += stage.cost;
      opts.onStage?.(stage, 'finished', seconds);
    } finally {
      release();
    }
  }
}

/**
 * Runs `fn` with console.log, console.error and process.stderr going to the file `log` (line by
 * line also to `onLine`), and stderr reporting no terminal, so commands print plain progress lines.
 */
async function captured<T>(log: string, onLine: (line: string) => void, fn: () => Promise<T>): Promise<T> {
  const saved = { log: console.log, error: console.error, write: process.stderr.write, tty: process.stderr.isTTY };
  let partial = '';
  const restore = () => {
    console.log = saved.log;
    console.error = saved.error;
    process.stderr.write = saved.write;
    (process.stderr as { isTTY?: boolean }).isTTY = saved.tty;
  };
  const take = (text: string) => {
    appendFileSync(log, text);
    const lines = (partial + text).split('\n');
    partial = lines.pop()!;
    // onLine may print progress itself: to the real terminal, not back into the log.
    restore();
    try {
      for (const line of lines) onLine(line);
    } finally {
      install();
    }
  };
  const install = () => {
    console.log = (...a: unknown[]) => take(`${a.join(' ')}\n`);
    console.error = (...a: unknown[]) => take(`${a.join(' ')}\n`);
    process.stderr.write = ((chunk: string | Uint8Array) => {
      take(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    (process.stderr as { isTTY?: boolean }).isTTY = false;
  };
  install();
  try {
    return await fn();
  } finally {
    restore();
  }
}

/** Every stage's record (for the report's wall times), by name. */
export function stageRecords(dir: string, stages: readonly Stage[]): Map<string, StageRecord> {
  const out = new Map<string, StageRecord>();
  for (const s of stages) {
    const r = readJson<StageRecord>(recordPath(dir, s));
    if (r) out.set(s.name, r);
  }
  return out;
}
