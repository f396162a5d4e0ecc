// The stage graph (stages.ts) as Slurm jobs: one sbatch script per kind of stage, each a job array
// whose task i runs the kind's i-th stage, and a submit.sh that submits the arrays in dependency
// order (`--dependency=afterok:...`, job ids from `sbatch --parsable`), so the independent stages
// (the seeds, the pairs x variants) run side by side as far as the cluster allows.
//
//   DIR/slurm/train.sbatch ... report.sbatch   task i -> `neuralign reproduce --preset P --out DIR --stage NAME`
//   DIR/slurm/submit.sh                        sbatch each array, afterok on its producers' tasks
//   DIR/slurm/run.json                         the preset, pairs and data folder (for --status)
//   DIR/slurm/logs/KIND-I.log                  each task's output, appended across submissions
//   DIR/slurm/jobs.txt                         written by submit.sh: "KIND JOBID TASKS" per array
//
// Every job finds its inputs as files in DIR, with their hashes in DIR/stages/ (runner.ts), so no
// job depends on the node that ran its producer: DIR must be on a filesystem every node mounts.
//
// What is submitted: the stages that are not done when the scripts are written (stageStatus), and
// every stage downstream of one of them (a rerun producer may rewrite its output, and the
// consumer then checks its own record again: `--stage` skips a stage that is still done). So after
// a failure, writing the scripts again and submitting resubmits only what is missing or invalid.
// A task's array index is its stage's position among the kind's stages (1-based: train task 3 is
// train-s3), the same in every submission.
//
// Dependencies are per task: an array waits for exactly the producer tasks of its own stages
// (`afterok:J_1:J_2`), or for a whole producer array when it needs every task of it (`afterok:J`).
// One array has one dependency list for all its tasks, so pair 1's curves also wait for pair 3's
// endpoints; the price of one script per kind. `--kill-on-invalid-dep=yes` cancels the dependents
// of a failed task instead of leaving them pending forever.
import { join } from 'node:path';
import type { Stage, StageKind } from './stages.js';

export interface SlurmOptions {
  preset: string;
  /** The run folder, absolute. */
  out: string;
  pairs?: number;
  dataDir?: string;
  /** The run includes the adversarial stages (reproduce --robust). */
  robust?: boolean;
  /** The node binary and the neuralign script (dist/cli.js), absolute. */
  node: string;
  cli: string;
  partition?: string;
  account?: string;
  /** GPUs per job (`--gres=gpu:N`) for every kind but the report; none when 0 or absent. */
  gpusPerJob?: number;
  /** Each task's time limit, Slurm's [D-]HH:MM:SS. */
  timePerStage?: string;
}

export interface SlurmArray {
  kind: StageKind;
  /** Every stage of this kind, in graph order: task i runs stages[i - 1]. */
  stages: Stage[];
  /** The task ids submitted (1-based), ascending. */
  tasks: number[];
  /** Per producer kind, the producer's task ids this array waits for (all of its submitted tasks, or some). */
  after: { kind: StageKind; tasks: number[]; whole: boolean }[];
}

export interface SlurmPlan {
  arrays: SlurmArray[];
  /** File name (under DIR/slurm) -> contents; the scripts executable. */
  files: Map<string, string>;
}

const KIND_ORDER: StageKind[] = ['train', 'curve', 'eval', 'plane', 'report'];

/** A single-quoted shell word. */
export const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);

/** Slurm's time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS. */
export function validSlurmTime(t: string): boolean {
  return /^(\d+-)?\d+(:\d{1,2}){0,2}$/.test(t);
}

/**
 * Which stages to submit and their job-array layout. `status` is each stage's state now
 * (runner.ts stageStatus); a stage is submitted when it is not done or something upstream is.
 */
export function planSlurm(stages: readonly Stage[], status: ReadonlyMap<string, string>): Omit<SlurmPlan, 'files'> {
  const producerOf = new Map<string, Stage>();
  for (const s of stages) for (const o of s.outputs) producerOf.set(o, s);
  const producers = (s: Stage) => [...new Set(s.inputs.map((i) => producerOf.get(i)).filter((p): p is Stage => p !== undefined))];
  // The graph is listed producers first, so one pass propagates "submitted" downstream.
  const submitted = new Set<Stage>();
  for (const s of stages) if (status.get(s.name) !== 'done' || producers(s).some((p) => submitted.has(p))) submitted.add(s);

  const byKind = new Map<StageKind, Stage[]>();
  for (const s of stages) byKind.set(s.kind, [...(byKind.get(s.kind) ?? []), s]);
  const taskOf = (s: Stage) => byKind.get(s.kind)!.indexOf(s) + 1;
  const arrays: SlurmArray[] = [];
  for (const kind of KIND_ORDER) {
    const all = byKind.get(kind) ?? [];
    const mine = all.filter((s) => submitted.has(s));
    if (mine.length === 0) continue;
    const wait = new Map<StageKind, Set<number>>();
    for (const s of mine) for (const p of producers(s)) if (submitted.has(p)) wait.set(p.kind, (wait.get(p.kind) ?? new Set()).add(taskOf(p)));
    const after = KIND_ORDER.filter((k) => wait.has(k)).map((k) => {
      const tasks = [...wait.get(k)!].sort((a, b) => a - b);
      const ofProducer = (byKind.get(k) ?? []).filter((s) => submitted.has(s)).length;
      return { kind: k, tasks, whole: tasks.length === ofProducer };
    });
    arrays.push({ kind, stages: all, tasks: mine.map(taskOf), after });
  }
  return { arrays };
}

/** "1-3,5": Slurm's --array list for ascending task ids. */
export function arraySpec(tasks: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < tasks.length; ) {
    let j = i;
    while (j + 1 < tasks.length && tasks[j + 1] === tasks[j]! + 1) j++;
    parts.push(i === j ? `${tasks[i]}` : `${tasks[i]}-${tasks[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** The `neuralign reproduce` command line a job runs, with the stage name last (filled in by the script). */
export function stageCommand(o: SlurmOptions): string[] {
  return [o.node, o.cli, 'reproduce', '--preset', o.preset, '--out', o.out, ...(o.pairs !== undefined ? ['--pairs', String(o.pairs)] : []), ...(o.dataDir !== undefined ? ['--data-dir', o.dataDir] : []), ...(o.robust ? ['--robust'] : []), '--stage'];
}

/** The log file of task `task` of `kind` (Slurm appends to it; --status reads it). */
export const slurmLogPath = (out: string, kind: StageKind, task: number): string => join(out, 'slurm', 'logs', `${kind}-${task}.log`);

function sbatchScript(a: SlurmArray, o: SlurmOptions): string {
  const dir = join(o.out, 'slurm');
  const lines = [
    '#!/bin/bash',
    `# neuralign reproduce --preset ${o.preset}: the ${a.kind} stages as a job array; task i runs the i-th stage below.`,
    `# Written by \`neuralign reproduce --slurm\`; submitted by submit.sh. ${o.out} must be on a shared filesystem.`,
    `#SBATCH --job-name=neuralign-${o.preset}-${a.kind}`,
    `#SBATCH --output=${join(dir, 'logs', `${a.kind}-%a.log`)}`,
    '#SBATCH --open-mode=append',
    `#SBATCH --chdir=${o.out}`,
    '#SBATCH --ntasks=1',
  ];
  if (o.partition) lines.push(`#SBATCH --partition=${o.partition}`);
  if (o.account) lines.push(`#SBATCH --account=${o.account}`);
  if (o.timePerStage) lines.push(`#SBATCH --time=${o.timePerStage}`);
  // The report renders tables and plots: no GPU.
  if (o.gpusPerJob && a.kind !== 'report') lines.push(`#SBATCH --gres=gpu:${o.gpusPerJob}`);
  lines.push(
    'set -uo pipefail',
    `stages=(${a.stages.map((s) => shellQuote(s.name)).join(' ')})`,
    'stage=${stages[$((${SLURM_ARRAY_TASK_ID:-1} - 1))]}',
    // The header and footer let --status find this task's latest attempt and how it ended.
    'echo "== neuralign stage $stage: job ${SLURM_ARRAY_JOB_ID:-?}_${SLURM_ARRAY_TASK_ID:-?} (${SLURM_JOB_ID:-?}) on $(hostname) at $(date -Iseconds) =="',
    `${stageCommand(o).map(shellQuote).join(' ')} "$stage"`,
    'rc=$?',
    'echo "== neuralign stage $stage: exit $rc at $(date -Iseconds) =="',
    'exit $rc',
    '',
  );
  return lines.join('\n');
}

function submitScript(arrays: readonly SlurmArray[], o: SlurmOptions): string {
  const dir = join(o.out, 'slurm');
  const v = (k: StageKind) => `job_${k}`;
  const lines = [
    '#!/bin/bash',
    `# Submits the stages of neuralign reproduce --preset ${o.preset} that were not done when this was written,`,
    '# each kind as one job array after its producers (afterok). Prints "KIND JOBID TASKS" per array, also into jobs.txt.',
    `# ${o.out} must be on a filesystem every node mounts. SBATCH=... overrides the sbatch command.`,
    'set -euo pipefail',
    `cd ${shellQuote(dir)}`,
    'SBATCH=${SBATCH:-sbatch}',
    `mkdir -p ${shellQuote(join(dir, 'logs'))}`,
    ': > jobs.txt',
  ];
  if (arrays.length === 0) lines.push('echo "nothing to submit: every stage is done"');
  for (const a of arrays) {
    const deps = a.after.flatMap((d) => (d.whole ? [`\${${v(d.kind)}}`] : d.tasks.map((t) => `\${${v(d.kind)}}_${t}`)));
    const dep = deps.length ? ` --dependency=afterok:${deps.join(':')} --kill-on-invalid-dep=yes` : '';
    lines.push(
      `${v(a.kind)}=$($SBATCH --parsable --array=${arraySpec(a.tasks)}${dep} ${a.kind}.sbatch | cut -d';' -f1)`,
      `echo "${a.kind} \${${v(a.kind)}} ${arraySpec(a.tasks)}" | tee -a jobs.txt`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

/** The plan and the files of DIR/slurm (see the file comment). */
export function slurmFiles(stages: readonly Stage[], status: ReadonlyMap<string, string>, o: SlurmOptions): SlurmPlan {
  const { arrays } = planSlurm(stages, status);
  const files = new Map<string, string>();
  // Every kind gets its script, submitted or not, so the folder always shows the whole graph.
  const kinds = KIND_ORDER.filter((k) => stages.some((s) => s.kind === k));
  for (const kind of kinds) {
    const a = arrays.find((x) => x.kind === kind) ?? { kind, stages: stages.filter((s) => s.kind === kind), tasks: [], after: [] };
    files.set(`${kind}.sbatch`, sbatchScript(a, o));
  }
  files.set('submit.sh', submitScript(arrays, o));
  files.set('run.json', `${JSON.stringify({ preset: o.preset, out: o.out, pairs: o.pairs, dataDir: o.dataDir, robust: o.robust }, null, 1)}\n`);
  return { arrays, files };
}
