// `neuralign reproduce`: the paper's experiments end to end for one preset (src/reproduce): the
// stage graph run in order, finished stages skipped, a killed stage resumed, one progress line;
// then the report (src/report). `--list-stages` prints the graph and `--stage NAME` runs one stage,
// so an external scheduler can run the stages as jobs.
import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { runtime } from '../engine/index.js';
import { RunStoppedError } from '../nn/train.js';
import { checkWritableFolder } from '../nn/writable.js';
import { buildReport, formatPercent, effectSentences, type Results } from '../report/index.js';
import { PRESETS, PRESET_NAMES } from '../reproduce/presets.js';
import { runStages, stageRecords, stageStatus, type StageProgress } from '../reproduce/runner.js';
import { buildStages, variantsOf, type Stage } from '../reproduce/stages.js';
import { UsageError, positiveInteger, type FlagSpec, type Flags } from './args.js';
import type { Command } from './command.js';
import { defineCommand } from './command.js';
import { formatDuration } from './progress.js';
import { printStatus, recordedRun, writeSlurm } from './reproduce-slurm.js';

const spec = {
  preset: { type: 'string', help: `what to reproduce: ${PRESET_NAMES.join(', ')}` },
  out: { type: 'string', help: 'the run folder: endpoints/, curves/, eval/, planes/, stages/, logs/, report.md, results.json, plots/ (required)' },
  pairs: { type: 'number', help: "pairs of endpoints, seeds (1, 2), (3, 4), ... (default: the preset's)" },
  'data-dir': { type: 'string', help: 'data folder (CIFAR presets: the folder holding cifar-10-batches-bin/ or cifar-100-binary/)' },
  robust: { type: 'boolean', help: 'also adversarially trained endpoints and curves between them, evaluated under PGD (section 4; about 5x the cost of each training stage)' },
  fresh: { type: 'boolean', help: 'delete the run folder and start over' },
  'list-stages': { type: 'boolean', help: 'print the stage graph (name, status, inputs, outputs, command) and exit' },
  stage: { type: 'string', help: 'run this stage alone (its inputs must be done), e.g. for a job scheduler' },
  slurm: { type: 'boolean', help: 'write DIR/slurm/: one sbatch job array per kind of stage and submit.sh (DIR must be on a shared filesystem)' },
  submit: { type: 'boolean', help: 'with --slurm: run submit.sh at once and print the job ids' },
  partition: { type: 'string', help: 'with --slurm: #SBATCH --partition' },
  account: { type: 'string', help: 'with --slurm: #SBATCH --account' },
  'gpus-per-job': { type: 'number', help: 'with --slurm: GPUs per job, #SBATCH --gres=gpu:N (default: none)' },
  'time-per-stage': { type: 'string', help: 'with --slurm: each job\'s time limit, HH:MM:SS or D-HH:MM:SS' },
  status: { type: 'boolean', help: 'print every stage\'s state (done, running, failed with its last error line, waiting) from the files in DIR and exit' },
} satisfies FlagSpec;

function versions(): Record<string, string> {
  const require = createRequire(import.meta.url);
  const own = (() => {
    try {
      return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  })();
  const webgpu = (() => {
    try {
      return (require('webgpu/package.json') as { version: string }).version;
    } catch {
      return 'unknown';
    }
  })();
  const info = runtime().info;
  return { neuralign: own, node: process.version, 'webgpu (Dawn)': webgpu, adapter: `${info.description} via ${info.backend}` };
}

function progressLine(p: StageProgress): string {
  const pct = `${Math.round(100 * p.fraction)}%`.padStart(4);
  return `[${p.index}/${p.count}] ${p.stage.name}  ${p.detail}  ${pct}  stage ${formatDuration(p.seconds)} (${formatDuration(p.stageLeft)} left)  run ${formatDuration(p.totalLeft)} left`;
}

function summaryTable(r: Results): string[] {
  const rows = [`${'curve'.padEnd(16)} ${'endpoints'.padStart(12)} ${'Avg'.padStart(12)} ${'Min'.padStart(12)}`];
  for (const c of r.curves) rows.push(`${c.variant.padEnd(16)} ${formatPercent(c.endpoints).padStart(12)} ${formatPercent(c.avg).padStart(12)} ${formatPercent(c.min).padStart(12)}`);
  for (const l of r.lines) rows.push(`${`line ${l.variant}`.padEnd(16)} ${formatPercent(l.endpoints).padStart(12)} ${formatPercent(l.avg).padStart(12)} ${formatPercent(l.min).padStart(12)}`);
  if (r.robust) {
    rows.push('', `${'robust (PGD)'.padEnd(22)} ${'barrier'.padStart(9)} ${'min PGD acc'.padStart(12)} ${'clean there'.padStart(12)}`);
    for (const v of [...r.robust.curves.map((c) => ({ ...c, label: `curve ${c.variant}` })), ...r.robust.lines.map((l) => ({ ...l, label: `line ${l.variant}` }))]) {
      rows.push(`${v.label.padEnd(22)} ${v.barrier.mean.toFixed(3).padStart(9)} ${formatPercent(v.minRobust).padStart(12)} ${formatPercent(v.cleanAtMinRobust).padStart(12)}`);
    }
  }
  return rows;
}

async function run(flags: Flags<typeof spec>): Promise<number> {
  // `--status --out DIR` alone: the preset the Slurm scripts were written for.
  if (flags.status && !flags.preset && flags.out) {
    const r = recordedRun(flags.out);
    flags = { ...flags, preset: r.preset, pairs: flags.pairs ?? r.pairs, 'data-dir': flags['data-dir'] ?? r['data-dir'], robust: flags.robust || !!r.robust };
  }
  if (!flags.preset) throw new UsageError(`--preset is required (${PRESET_NAMES.join(', ')})`);
  const preset = PRESETS[flags.preset];
  if (!preset) throw new UsageError(`--preset '${flags.preset}' is not one of ${PRESET_NAMES.join(', ')}`);
  if (!flags.out) throw new UsageError('--out DIR is required');
  if (preset.needsDataDir && !flags['data-dir']) {
    const archive = preset.dataset === 'cifar10' ? 'cifar-10-binary.tar.gz (it unpacks to cifar-10-batches-bin/)' : 'cifar-100-binary.tar.gz (it unpacks to cifar-100-binary/)';
    throw new UsageError(`preset ${preset.name} reads ${preset.dataset} from --data-dir: download ${archive} from the CIFAR page of the University of Toronto and unpack it into that folder`);
  }
  const pairs = positiveInteger(flags.pairs, 'pairs') ?? preset.pairs;
  const out = resolve(flags.out);
  if (flags.fresh && !flags['list-stages'] && !flags.stage && !flags.status) rmSync(out, { recursive: true, force: true });
  const stages = buildStages(preset, { out, pairs, dataDir: flags['data-dir'], robust: flags.robust });
  const variants = variantsOf(preset);
  // Every mode but --status and --list-stages writes under --out: checked (and created) first.
  if (!flags.status && !flags['list-stages']) checkWritableFolder(out, '--out');

  if (flags.status) return printStatus(out, stages);
  if (flags.slurm) {
    const f = { partition: flags.partition, account: flags.account, gpusPerJob: flags['gpus-per-job'], timePerStage: flags['time-per-stage'], submit: flags.submit };
    return writeSlurm(out, stages, { preset: preset.name, pairs: flags.pairs === undefined ? undefined : pairs, dataDir: flags['data-dir'], robust: flags.robust || undefined }, f);
  }
  if (flags['list-stages']) {
    for (const s of stages) {
      console.log(`${s.name}  [${await stageStatus(out, s)}]`);
      console.log(`  inputs:  ${s.inputs.length ? s.inputs.join(' ') : '-'}`);
      console.log(`  outputs: ${s.outputs.join(' ')}`);
      console.log(`  command: neuralign ${s.argv.join(' ')}`);
    }
    return 0;
  }
  let selected: Stage[] = stages;
  if (flags.stage) {
    const one = stages.find((s) => s.name === flags.stage);
    if (!one) throw new UsageError(`--stage '${flags.stage}' is not a stage of ${preset.name} (see --list-stages)`);
    for (const input of one.inputs) {
      const producer = stages.find((s) => s.outputs.includes(input));
      if (producer && (await stageStatus(out, producer)) !== 'done') throw new Error(`stage ${one.name} needs ${producer.name} to be done first`);
    }
    selected = [one];
  }

  // The commands run in this process; main.ts's table is imported here, not at the top, because
  // main.ts imports this file.
  const { commandTable } = await import('./main.js');
  const runCommand = async (argv: string[]): Promise<number> => {
    const command: Command | undefined = commandTable()[argv[0]!];
    if (!command) throw new Error(`no command '${argv[0]}'`);
    try {
      return await command.run(argv.slice(1));
    } catch (e) {
      // Ctrl-C or SIGTERM stopped the stage at a safe point: the whole reproduction stops (exit
      // 130 / 143 from main.ts) and the same command continues it.
      if (e instanceof RunStoppedError) throw new RunStoppedError(e.signal, `${e.where} (its neuralign ${argv[0]} stage); continue with the same neuralign reproduce command`, e.epoch);
      console.error(`neuralign ${argv[0]}: ${(e as Error).message}`);
      return e instanceof UsageError ? 64 : 1;
    }
  };
  const tty = !!process.stderr.isTTY;
  let lastPlain = '';
  const started = performance.now();
  console.error(`reproducing ${preset.name} (${preset.description}) in ${out}: ${selected.length} stage(s); ${runtime().info.description} via ${runtime().info.backend}`);
  await runStages(out, selected, {
    runCommand,
    runReport: async () => {
      const records = stageRecords(out, stages);
      await buildReport(out, preset, pairs, variants, versions(), [...records.values()].map((r) => ({ name: r.stage, seconds: r.seconds })));
    },
    onMessage: (line) => console.error(line),
    onStage: (s, what, seconds) => {
      if (what === 'skipped') console.error(`${s.name}: done already, skipped`);
      else if (what === 'finished') console.error(`${tty ? '\r\x1b[K' : ''}${s.name}: finished in ${formatDuration(seconds ?? NaN)}`);
      else if (what === 'resumed') console.error(`${s.name}: resuming from its last checkpoint`);
    },
    onProgress: (p) => {
      const line = progressLine(p);
      if (tty) process.stderr.write(`\r${line}\x1b[K`);
      else {
        // Plain output: a line when the stage's detail changes (an epoch, a point), not per batch.
        const key = `${p.stage.name} ${p.detail}`;
        if (key !== lastPlain) console.error(line);
        lastPlain = key;
      }
    },
  });
  if (selected.some((s) => s.kind === 'report')) {
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    console.log(`\n${preset.name}: test accuracy along t (%; BN re-estimated at every t), ${pairs} pair(s):`);
    for (const line of summaryTable(results)) console.log(`  ${line}`);
    for (const s of effectSentences(results)) console.log(s);
    console.log(`report: ${join(out, 'report.md')} (plots in ${join(out, 'plots')}); ${formatDuration((performance.now() - started) / 1000)} this run`);
  }
  return 0;
}

export const reproduce = defineCommand({
  usage: 'neuralign reproduce --preset NAME --out DIR [--pairs N] [--fresh] [--list-stages] [--stage NAME] [--slurm [--submit] [--partition P] [--account A] [--gpus-per-job N] [--time-per-stage HH:MM:SS]] [--status]',
  description:
    "Reproduces Tatro et al. 2020 for one preset: endpoints from seeds (1, 2), ..., the curves the paper compares (unaligned,\n" +
    'aligned; PAM when available), each evaluated along t with the straight line between its endpoints, then report.md,\n' +
    'results.json and plots/. Finished stages are skipped (their inputs are checked by hash); a killed stage resumes.',
  spec,
  epilog: `presets:\n${Object.values(PRESETS).map((p) => `  ${p.name.padEnd(20)} ${p.description}`).join('\n')}`,
  run,
});
