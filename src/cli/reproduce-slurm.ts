// `neuralign reproduce --slurm` and `--status`: the printing around src/reproduce/slurm.ts and
// status.ts (reproduce.ts calls these).
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stageStatus } from '../reproduce/runner.js';
import { slurmFiles, validSlurmTime, type SlurmOptions } from '../reproduce/slurm.js';
import { runStatus } from '../reproduce/status.js';
import type { Stage } from '../reproduce/stages.js';
import { UsageError } from './args.js';

export interface SlurmFlags {
  partition?: string;
  account?: string;
  gpusPerJob?: number;
  timePerStage?: string;
  submit?: boolean;
}

const SHARED = 'must be on a filesystem that every node of the cluster mounts at the same path (the jobs read and write it; nothing is copied between nodes)';

/** Writes DIR/slurm/ and, with `submit`, runs submit.sh; returns the exit code. */
export async function writeSlurm(out: string, stages: readonly Stage[], base: { preset: string; pairs?: number; dataDir?: string; robust?: boolean }, f: SlurmFlags): Promise<number> {
  if (f.timePerStage !== undefined && !validSlurmTime(f.timePerStage)) throw new UsageError(`--time-per-stage '${f.timePerStage}' is not a Slurm time (HH:MM:SS or D-HH:MM:SS)`);
  if (f.gpusPerJob !== undefined && !(Number.isInteger(f.gpusPerJob) && f.gpusPerJob >= 0)) throw new UsageError('--gpus-per-job must be a whole number >= 0');
  const script = process.argv[1];
  if (!script) throw new Error('cannot tell the path of the neuralign script (process.argv[1])');
  const o: SlurmOptions = {
    ...base,
    out,
    dataDir: base.dataDir === undefined ? undefined : resolve(base.dataDir),
    node: process.execPath,
    cli: resolve(script),
    partition: f.partition,
    account: f.account,
    gpusPerJob: f.gpusPerJob,
    timePerStage: f.timePerStage,
  };
  const status = new Map<string, string>();
  for (const s of stages) status.set(s.name, await stageStatus(out, s));
  const plan = slurmFiles(stages, status, o);
  const dir = join(out, 'slurm');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  for (const [name, text] of plan.files) {
    writeFileSync(join(dir, name), text);
    if (name.endsWith('.sh') || name.endsWith('.sbatch')) chmodSync(join(dir, name), 0o755);
  }
  const count = plan.arrays.reduce((n, a) => n + a.tasks.length, 0);
  console.log(`wrote ${dir}: ${[...plan.files.keys()].join(', ')}`);
  for (const a of plan.arrays) {
    const names = a.tasks.map((t) => a.stages[t - 1]!.name);
    const after = a.after.map((d) => (d.whole ? d.kind : `${d.kind}[${d.tasks.join(',')}]`));
    console.log(`  ${a.kind.padEnd(7)} ${names.length} task(s) ${names.join(' ')}${after.length ? `  after ${after.join(', ')}` : ''}`);
  }
  console.log(`${count} of ${stages.length} stage(s) to submit (the rest are done); logs in ${join(dir, 'logs')}`);
  console.log(`${out} ${SHARED}.`);
  if (!f.submit) {
    console.log(`submit with: ${join(dir, 'submit.sh')}    then follow with: neuralign reproduce --status --out ${out}`);
    return 0;
  }
  const r = spawnSync('bash', [join(dir, 'submit.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw new Error(`could not run submit.sh: ${r.error.message}`);
  process.stdout.write(r.stdout);
  if (r.status !== 0) {
    console.error(`submit.sh failed (exit ${r.status}): ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
    return 1;
  }
  console.log(`submitted; follow with: neuralign reproduce --status --out ${out}   (or squeue)`);
  return 0;
}

/** Prints every stage's state; exit 0 when all are done, 3 when one failed, else 0 too (still going). */
export async function printStatus(out: string, stages: readonly Stage[]): Promise<number> {
  const reports = await runStatus(out, stages);
  const width = Math.max(...stages.map((s) => s.name.length));
  for (const r of reports) console.log(`${r.stage.name.padEnd(width)}  ${r.state.padEnd(7)}  ${r.detail}${r.log ? `  (${r.log})` : ''}`.trimEnd());
  const count = (s: string) => reports.filter((r) => r.state === s).length;
  console.log(`${count('done')} done, ${count('running')} running, ${count('failed')} failed, ${count('waiting')} waiting`);
  return count('failed') > 0 ? 3 : 0;
}

/** The preset, pairs and data folder that `--slurm` recorded in DIR/slurm/run.json (for `--status --out DIR` alone). */
export function recordedRun(out: string): { preset?: string; pairs?: number; 'data-dir'?: string; robust?: boolean } {
  try {
    const r = JSON.parse(readFileSync(join(resolve(out), 'slurm', 'run.json'), 'utf8')) as { preset?: string; pairs?: number; dataDir?: string; robust?: boolean };
    return { preset: r.preset, pairs: r.pairs, 'data-dir': r.dataDir, robust: r.robust };
  } catch {
    return {};
  }
}
