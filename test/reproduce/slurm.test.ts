// The Slurm scripts of `neuralign reproduce --slurm` (src/reproduce/slurm.ts), without Slurm:
// - each array's dependencies are exactly its stages' input -> producer edges of the stage graph;
// - the arrays cover every stage once, sized by pairs, variants and the plane;
// - the options reach the #SBATCH lines; a task id runs its stage's exact command line;
// - submit.sh, run against a stand-in sbatch, submits in dependency order with the parsed ids;
// - with some stages done, only the rest (and what depends on them) is submitted;
// - --status reads done, running, failed (with the error line) and waiting from the files; the
//   stage lock refuses a second job and takes over a dead one's.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PRESETS, type Preset } from '../../src/reproduce/presets.js';
import { stageStatus } from '../../src/reproduce/runner.js';
import { arraySpec, planSlurm, slurmFiles, slurmLogPath, type SlurmOptions } from '../../src/reproduce/slurm.js';
import { acquireStageLock, stageLockPath } from '../../src/reproduce/stage-lock.js';
import { buildStages, variantsOf, type Stage } from '../../src/reproduce/stages.js';
import { runStatus } from '../../src/reproduce/status.js';
import { cli } from '../cli/run-cli.js';

const test = suite('reproduce --slurm');
let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'neuralign-slurm-'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

const tiny = PRESETS.tiny!;
const opts = (out: string, extra: Partial<SlurmOptions> = {}): SlurmOptions => ({ preset: 'tiny', out, node: '/opt/node/bin/node', cli: '/opt/neuralign/dist/cli.js', ...extra });
const none = new Map<string, string>();
const producersOf = (stages: readonly Stage[], s: Stage) => new Set(s.inputs.map((i) => stages.find((p) => p.outputs.includes(i))).filter((p) => p !== undefined));

test('dependencies are the stage graph\'s input -> producer edges; arrays sized by pairs and variants', () => {
  for (const pairs of [1, 3]) {
    const out = join(dir, `graph${pairs}`);
    const stages = buildStages(tiny, { out, pairs });
    const { arrays } = planSlurm(stages, none);
    const variants = variantsOf(tiny).length;
    const size = Object.fromEntries(arrays.map((a) => [a.kind, a.tasks.length]));
    assert.equal(size, { train: 2 * pairs, curve: pairs * variants, eval: pairs * variants, plane: 2, report: 1 }, `pairs ${pairs}`);
    // Every stage is one task of its kind's array, once.
    const tasks = arrays.flatMap((a) => a.tasks.map((t) => a.stages[t - 1]!.name));
    assert.equal(tasks.sort(), stages.map((s) => s.name).sort());
    for (const a of arrays) {
      // What the array waits for, as (kind, task) pairs, against the union of its stages' producers.
      const waits = new Set(a.after.flatMap((d) => d.tasks.map((t) => `${d.kind}:${t}`)));
      const edges = new Set<string>();
      for (const t of a.tasks) for (const p of producersOf(stages, a.stages[t - 1]!)) edges.add(`${p.kind}:${stages.filter((s) => s.kind === p.kind).indexOf(p) + 1}`);
      assert.equal([...waits].sort(), [...edges].sort(), `${a.kind} with ${pairs} pair(s)`);
    }
    // The plane needs only pair 1's aligned and unaligned curves: with 3 pairs, named tasks.
    const plane = arrays.find((a) => a.kind === 'plane')!;
    const onCurves = plane.after.find((d) => d.kind === 'curve')!;
    assert.is(onCurves.whole, pairs === 1 && variants === 2);
    const submit = slurmFiles(stages, none, opts(out)).files.get('submit.sh')!;
    const deps = plane.after.flatMap((d) => (d.whole ? [`\${job_${d.kind}}`] : d.tasks.map((t) => `\${job_${d.kind}}_${t}`)));
    assert.ok(submit.includes(`--dependency=afterok:${deps.join(':')} --kill-on-invalid-dep=yes plane.sbatch`), deps.join(':'));
    if (pairs === 3) assert.equal(deps, ['${job_train}_1', '${job_train}_2', ...onCurves.tasks.map((t) => `\${job_curve}_${t}`)]);
    assert.match(submit, new RegExp(`--array=1-${2 * pairs} train\\.sbatch`));
    assert.match(submit, /--array=1 --dependency=afterok:\$\{job_eval\}:\$\{job_plane\} --kill-on-invalid-dep=yes report\.sbatch/);
  }
  assert.is(arraySpec([1, 2, 3, 5, 7, 8]), '1-3,5,7-8');
});

test('options reach the #SBATCH lines; a task id runs its stage\'s exact command line', () => {
  const out = join(dir, 'options');
  const stages = buildStages(tiny, { out, dataDir: '/data/x y' });
  const { files } = slurmFiles(stages, none, opts(out, { partition: 'gpu', account: 'lab42', gpusPerJob: 2, timePerStage: '1-02:00:00', dataDir: '/data/x y' }));
  assert.equal([...files.keys()].sort(), ['curve.sbatch', 'eval.sbatch', 'plane.sbatch', 'report.sbatch', 'run.json', 'submit.sh', 'train.sbatch']);
  const train = files.get('train.sbatch')!;
  for (const line of ['#SBATCH --partition=gpu', '#SBATCH --account=lab42', '#SBATCH --time=1-02:00:00', '#SBATCH --gres=gpu:2', `#SBATCH --output=${out}/slurm/logs/train-%a.log`, '#SBATCH --open-mode=append']) {
    assert.ok(train.split('\n').includes(line), line);
  }
  assert.not.match(files.get('report.sbatch')!, /--gres/);
  assert.not.match(slurmFiles(stages, none, opts(out)).files.get('train.sbatch')!, /--partition|--account|--time|--gres/);

  // Run the script with a stand-in node that prints its arguments: task 2 is train-s2.
  mkdirSync(join(out, 'slurm'), { recursive: true });
  const echo = join(out, 'echo-args');
  writeFileSync(echo, '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n');
  chmodSync(echo, 0o755);
  writeFileSync(join(out, 'slurm', 'train.sbatch'), slurmFiles(stages, none, opts(out, { node: echo, dataDir: '/data/x y' })).files.get('train.sbatch')!);
  const r = spawnSync('bash', [join(out, 'slurm', 'train.sbatch')], { encoding: 'utf8', env: { ...process.env, SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_JOB_ID: '77', SLURM_JOB_ID: '79' } });
  assert.is(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0]!, /^== neuralign stage train-s2: job 77_2 \(79\) on /);
  assert.equal(lines.slice(1, -1), ['/opt/neuralign/dist/cli.js', 'reproduce', '--preset', 'tiny', '--out', out, '--data-dir', '/data/x y', '--stage', 'train-s2']);
  assert.match(lines.at(-1)!, /^== neuralign stage train-s2: exit 0 /);
});

/** Runs submit.sh with a stand-in sbatch that logs its arguments and answers ids 101, 102, ... */
function fakeSubmit(out: string): { calls: string[][]; stdout: string } {
  const fake = join(out, 'fake-sbatch');
  const calls = join(out, 'calls');
  writeFileSync(fake, `#!/bin/bash\nn=$(( $(cat ${calls} 2>/dev/null | wc -l) + 101 ))\necho "$*" >> ${calls}\necho "$n;cluster"\n`);
  chmodSync(fake, 0o755);
  rmSync(calls, { force: true });
  const r = spawnSync('bash', [join(out, 'slurm', 'submit.sh')], { encoding: 'utf8', env: { ...process.env, SBATCH: fake } });
  assert.is(r.status, 0, r.stderr);
  return { calls: existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n').map((l) => l.split(' ')) : [], stdout: r.stdout };
}

test('`reproduce --slurm` writes the folder; submit.sh submits in order with the parsed ids', async () => {
  const out = join(dir, 'cli');
  const r = await cli('reproduce', '--preset', 'tiny', '--out', out, '--slurm', '--partition', 'debug', '--time-per-stage', '00:20:00');
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /must be on a filesystem that every node/);
  assert.match(r.out, /stage\(s\) to submit/);
  assert.match(readFileSync(join(out, 'slurm', 'curve.sbatch'), 'utf8'), /#SBATCH --partition=debug\n#SBATCH --time=00:20:00/);
  const { calls, stdout } = fakeSubmit(out);
  assert.equal(calls.map((c) => c.at(-1)), ['train.sbatch', 'curve.sbatch', 'eval.sbatch', 'plane.sbatch', 'report.sbatch']);
  assert.ok(calls.every((c) => c[0] === '--parsable'));
  assert.ok(calls[1]!.includes('--dependency=afterok:101'), calls[1]!.join(' '));
  assert.ok(calls[2]!.includes('--dependency=afterok:101:102'), calls[2]!.join(' ')); // eval reads the curve and both endpoints
  assert.ok(calls[4]!.includes('--dependency=afterok:103:104'), calls[4]!.join(' '));
  assert.match(stdout, /^train 101 1-2\ncurve 102 1-4\n/);
  assert.is(readFileSync(join(out, 'slurm', 'jobs.txt'), 'utf8'), stdout);

  const bad = await cli('reproduce', '--preset', 'tiny', '--out', out, '--slurm', '--time-per-stage', 'an hour');
  assert.is(bad.code, 64);
  assert.match(bad.err, /not a Slurm time/);
});

/** Marks `stage` of the run folder `dir` done as the runner would: its outputs written and a record with their hashes. */
function markDone(dir: string, stage: Stage): void {
  const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
  for (const o of stage.outputs) {
    mkdirSync(join(o, '..'), { recursive: true });
    writeFileSync(o, `output of ${stage.name}`);
  }
  mkdirSync(join(dir, 'stages'), { recursive: true });
  const record = { stage: stage.name, argv: stage.argv, inputs: Object.fromEntries(stage.inputs.map((p) => [p, sha(p)])), outputs: Object.fromEntries(stage.outputs.map((p) => [p, sha(p)])), seconds: 1, finished: '' };
  writeFileSync(join(dir, 'stages', `${stage.name}.json`), JSON.stringify(record));
}

test('a rerun with some stages done submits only the rest and what depends on them', async () => {
  const out = join(dir, 'rerun');
  const preset: Preset = { ...tiny, variants: ['unaligned', 'aligned'] };
  const stages = buildStages(preset, { out });
  const by = (n: string) => stages.find((s) => s.name === n)!;
  for (const n of ['train-s1', 'train-s2', 'curve-p1-unaligned', 'eval-p1-unaligned', 'curve-p1-aligned']) markDone(out, by(n));
  const status = new Map<string, string>();
  for (const s of stages) status.set(s.name, await stageStatus(out, s));
  assert.is(status.get('eval-p1-unaligned'), 'done');
  const { arrays, files } = slurmFiles(stages, status, opts(out));
  const submitted = arrays.flatMap((a) => a.tasks.map((t) => a.stages[t - 1]!.name));
  assert.equal(submitted, ['eval-p1-aligned', 'plane-p1-unaligned', 'plane-p1-aligned', 'report']);
  // The eval and plane arrays wait for nothing (their producers are done); the report for them.
  assert.equal(arrays.find((a) => a.kind === 'eval')!.after, []);
  assert.equal(arrays.find((a) => a.kind === 'eval')!.tasks, [2]);
  mkdirSync(join(out, 'slurm'), { recursive: true });
  for (const [n, t] of files) writeFileSync(join(out, 'slurm', n), t);
  const { calls } = fakeSubmit(out);
  assert.equal(calls.map((c) => c.join(' ')), ['--parsable --array=2 eval.sbatch', '--parsable --array=1-2 plane.sbatch', '--parsable --array=1 --dependency=afterok:101:102 --kill-on-invalid-dep=yes report.sbatch']);

  // An endpoint rewritten (no longer matching its record): it and everything after it again.
  writeFileSync(by('train-s2').outputs[0]!, 'changed');
  status.clear();
  for (const s of stages) status.set(s.name, await stageStatus(out, s));
  const again = planSlurm(stages, status).arrays.flatMap((a) => a.tasks.map((t) => a.stages[t - 1]!.name));
  const kinds = ['curve', 'eval', 'plane', 'report'];
  assert.equal(again, ['train-s2', ...kinds.flatMap((k) => stages.filter((s) => s.kind === k).map((s) => s.name))]);

  // Everything done: nothing to submit.
  const all = new Map(stages.map((s) => [s.name, 'done']));
  assert.equal(planSlurm(stages, all).arrays, []);
  assert.match(slurmFiles(stages, all, opts(out)).files.get('submit.sh')!, /nothing to submit/);
});

test('--status: done, running, failed with the last error line, waiting; the stage lock', async () => {
  const out = join(dir, 'status');
  const preset: Preset = { ...tiny, variants: ['unaligned', 'aligned'], plane: null };
  const stages = buildStages(preset, { out });
  const by = (n: string) => stages.find((s) => s.name === n)!;
  markDone(out, by('train-s1'));
  markDone(out, by('train-s2'));
  // curve-p1-unaligned failed under Slurm; curve-p1-aligned runs (a live lock: this process).
  mkdirSync(join(out, 'slurm', 'logs'), { recursive: true });
  writeFileSync(slurmLogPath(out, 'curve', 1), [
    '== neuralign stage curve-p1-unaligned: job 5_1 (6) on n1 at 2024-01-01T00:00:00 ==',
    'epoch 1/1 ...',
    '== neuralign stage curve-p1-unaligned: exit 0 at 2024-01-01T00:01:00 ==',
    '== neuralign stage curve-p1-unaligned: job 9_1 (10) on n1 at 2024-01-02T00:00:00 ==',
    'epoch 1/1 batch 3/6',
    'neuralign reproduce: stage curve-p1-unaligned failed (exit 1); its output is in /x/logs/curve-p1-unaligned.log',
    '== neuralign stage curve-p1-unaligned: exit 1 at 2024-01-02T00:01:00 ==',
    '',
  ].join('\n'));
  const release = acquireStageLock(out, 'curve-p1-aligned', 'neuralign curve ...');
  let reports = await runStatus(out, stages);
  const state = (n: string) => reports.find((r) => r.stage.name === n)!;
  assert.is(state('train-s1').state, 'done');
  assert.is(state('curve-p1-unaligned').state, 'failed');
  assert.match(state('curve-p1-unaligned').detail, /^exit 1: neuralign reproduce: stage curve-p1-unaligned failed \(exit 1\)/);
  assert.is(state('curve-p1-aligned').state, 'running');
  assert.match(state('curve-p1-aligned').detail, new RegExp(`pid ${process.pid} on ${hostname()}`));
  assert.is(state('eval-p1-aligned').state, 'waiting');
  assert.is(state('eval-p1-aligned').detail, 'for curve-p1-aligned');
  assert.is(state('report').detail, 'for eval-p1-unaligned, eval-p1-aligned');

  // A second job on the running stage stops with the holder's name.
  assert.throws(() => acquireStageLock(out, 'curve-p1-aligned', 'x'), /being run by pid \d+ on .*not starting it twice/);
  release();
  assert.not.ok(existsSync(stageLockPath(out, 'curve-p1-aligned')));
  // A lock left by a process that is gone (a SIGKILL): the stage reads as failed, and a new job takes it over.
  const dead = spawnSync('true').pid!;
  writeFileSync(stageLockPath(out, 'curve-p1-aligned'), JSON.stringify({ pid: dead, host: hostname(), job: '12_2 (14)', started: 'then', command: 'x' }));
  reports = await runStatus(out, stages);
  assert.is(state('curve-p1-aligned').state, 'failed');
  const heard: string[] = [];
  const again = acquireStageLock(out, 'curve-p1-aligned', 'x', (l) => heard.push(l));
  assert.match(heard.join(), /taking over the lock of Slurm job 12_2 \(14\), pid \d+ .* no longer running/);
  again();

  // The command: exit 3 while a stage has failed, every stage listed; the preset from run.json.
  writeFileSync(join(out, 'slurm', 'run.json'), JSON.stringify({ preset: 'tiny', out }));
  const r = await cli('reproduce', '--status', '--out', out);
  assert.is(r.code, 3, r.err);
  assert.match(r.out, /curve-p1-unaligned\s+failed\s+exit 1: /);
  assert.match(r.out, /\d+ done, 0 running, 1 failed, \d+ waiting/);
});

test.run();
