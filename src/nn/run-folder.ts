// A run's output folder and the rules that keep it consistent, in one place for `train`
// (train-run.ts), curves and PAM (align/curve-run.ts): whoever writes a run folder opens it here.
//
//   DIR/.neuralign.lock                 who is writing DIR (lock.ts); removed when the run ends
//   DIR/MAIN                            the state after the last finished epoch (checkpoint.safetensors, curve.safetensors)
//   DIR/optimizer-epoch{E}.safetensors  the momentum buffers of the same epoch
//   DIR/log.jsonl                       one EpochLog line per epoch, 1..E
//
// Opening a folder checks that it can be written (before any other work), takes its lock (a
// second writer stops at once), and removes the temporary files of killed runs. After epoch E the
// log line is appended, then the pair is saved (optimizer file, main file, older optimizer files
// deleted: checkpoint/model.ts saveCheckpointPair). A kill at any moment therefore leaves one of:
//   - no MAIN and maybe a log line: a new run starts clean (with a message), --resume starts at 0;
//   - MAIN of epoch E with its optimizer file, maybe an optimizer file and a log line of E + 1:
//     --resume loads epoch E and drops what is past it (resumeFrom).
// So a resumed run writes log lines E + 1, E + 2, ... after exactly 1..E, never a duplicate.
import { existsSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crashPoint, removeStaleTemps, writeFileAtomic } from './checkpoint/atomic.js';
import { loadOptimizerState, removeOptimizerFiles, saveCheckpointPair } from './checkpoint/model.js';
import { acquireLock, thisCommandLine, type Lock } from './lock.js';
import type { SGD } from './optim.js';
import type { EpochLog } from './train.js';
import { checkWritableFolder } from './writable.js';

export const LOCK_FILE = '.neuralign.lock';
export const LOG_FILE = 'log.jsonl';

export interface RunFolderOptions {
  /** The file that marks a saved state: checkpoint.safetensors, curve.safetensors. */
  main: string;
  /** The main file in messages: 'a checkpoint', 'a curve'. */
  what: string;
  /** Continue the saved state (else the folder must hold none). */
  resume: boolean;
  /** The command line recorded in the lock (default: this process's). */
  command?: string;
  /** Hears what opening did on its own: a stale lock taken over, temporary files removed, a log cleared. */
  onMessage?: (line: string) => void;
}

export class RunFolder {
  readonly mainPath: string;
  readonly logPath: string;
  #lock: Lock | null;

  private constructor(
    readonly dir: string,
    readonly main: string,
    lock: Lock,
  ) {
    this.mainPath = join(dir, main);
    this.logPath = join(dir, LOG_FILE);
    this.#lock = lock;
  }

  /** Opens `dir` for writing (see the file comment); throws one-line errors. */
  static async open(dir: string, o: RunFolderOptions): Promise<RunFolder> {
    const say = o.onMessage ?? (() => {});
    checkWritableFolder(dir, '--out');
    const lock = acquireLock(join(dir, LOCK_FILE), dir, o.command ?? thisCommandLine(), say);
    const folder = new RunFolder(dir, o.main, lock);
    try {
      const removed = removeStaleTemps(dir);
      if (removed.length) say(`${dir}: removed ${removed.length} temporary file(s) of killed runs (${removed.join(', ')})`);
      if (!o.resume) {
        if (existsSync(folder.mainPath)) throw new Error(`${dir} already holds ${o.what}; pass --resume to continue it, or choose another --out`);
        if (existsSync(folder.logPath)) {
          say(`${dir}: ${LOG_FILE} without ${o.main} (a run stopped before its first epoch was saved): starting clean`);
          unlinkSync(folder.logPath);
          await removeOptimizerFiles(dir, () => true);
        }
      }
    } catch (e) {
      folder.close();
      throw e;
    }
    return folder;
  }

  /** Whether the folder holds a saved state (the main file). */
  get hasSaved(): boolean {
    return existsSync(this.mainPath);
  }

  /**
   * Makes the folder the state after epoch `epoch` (0: nothing saved yet) and loads that epoch's
   * momentum buffers into `optimizer`: optimizer files and log lines past `epoch` are dropped.
   */
  async resumeFrom(epoch: number, optimizer: SGD | null): Promise<void> {
    if (epoch > 0 && optimizer) await loadOptimizerState(this.dir, epoch, optimizer);
    await removeOptimizerFiles(this.dir, (e) => e > epoch);
    await truncateLog(this.logPath, epoch);
  }

  /** After epoch `log.epoch`: its log line, then the pair (the optimizer file, `writeMain(path)`, older optimizer files deleted). */
  async saveEpoch(log: EpochLog, optimizer: SGD, writeMain: (path: string) => Promise<void>): Promise<void> {
    await appendFile(this.logPath, `${JSON.stringify(log)}\n`);
    crashPoint('log-appended');
    await saveCheckpointPair(this.dir, log.epoch, optimizer, writeMain, this.main);
  }

  /** Releases the lock (idempotent). */
  close(): void {
    this.#lock?.release();
    this.#lock = null;
  }
}

/** Keeps the lines of log.jsonl up to epoch `epoch` (a killed run may have logged one more, or half a line). */
export async function truncateLog(path: string, epoch: number): Promise<void> {
  if (!existsSync(path) || !statSync(path).isFile()) return;
  const lines = readFileSync(path, 'utf8').split('\n').filter((line) => {
    if (!line.trim()) return false;
    try {
      return (JSON.parse(line) as EpochLog).epoch <= epoch;
    } catch {
      return false; // a line cut short by a kill
    }
  });
  await writeFileAtomic(path, [new TextEncoder().encode(lines.map((l) => `${l}\n`).join(''))]);
}
