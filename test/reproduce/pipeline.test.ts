// `neuralign reproduce` end to end on the tiny synthetic preset (seconds), in-process:
// - every artifact is written (endpoints, curves, eval JSON, stage records, logs, report, plots);
// - a second invocation skips every stage;
// - a curve stage killed in the middle (its started record and an epoch-1 checkpoint left behind)
//   resumes, and its results equal an uninterrupted run's;
// - a changed input (the curve recipe) invalidates that stage and the stages after it, not the
//   ones before.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadSafetensors } from '../../src/nn/checkpoint/safetensors.js';
import { PRESETS, type Preset } from '../../src/reproduce/presets.js';
import { stageStatus } from '../../src/reproduce/runner.js';
import { buildStages } from '../../src/reproduce/stages.js';
import { cli } from '../cli/run-cli.js';
import { setupEngine } from '../helpers.js';

const test = suite('reproduce');
let dir = '';
test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-reproduce-'));
});
test.after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await setupEngine(); // runCli destroyed the device; later test files get a fresh one
});

/** The tiny preset with two curve epochs (so a curve can be killed between them), two variants, no plane (the plane stage is the tiny preset's own; its report part is tested in test/report). */
const preset: Preset = { ...PRESETS.tiny!, name: 'tiny-test', curve: { ...PRESETS.tiny!.curve, epochs: 2 }, variants: ['unaligned', 'aligned'], plane: null };
PRESETS['tiny-test'] = preset;

const bytesOf = async (path: string) => {
  const f = await loadSafetensors(path);
  return new Map([...f.tensors].map(([k, t]) => [k, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex')]));
};

test('a full run writes every artifact; a second run skips every stage', async () => {
  const out = join(dir, 'full');
  let r = await cli('reproduce', '--preset', 'tiny-test', '--out', out);
  assert.is(r.code, 0, r.err);
  const stages = buildStages(preset, { out });
  assert.equal(stages.map((s) => s.name), [
    'train-s1', 'train-s2', 'curve-p1-unaligned', 'eval-p1-unaligned', 'curve-p1-aligned', 'eval-p1-aligned', 'report',
  ]);
  for (const s of stages) {
    for (const o of s.outputs) assert.ok(existsSync(o), `${s.name} wrote ${o}`);
    assert.is(await stageStatus(out, s), 'done', s.name);
  }
  for (const f of ['plots/paths.svg', 'plots/correlation.svg', 'logs/train-s1.log']) assert.ok(existsSync(join(out, f)), f);
  assert.match(r.out, /unaligned\s+\S+\s+\S+\s+\S+/);
  assert.match(r.out, /report: .*report\.md/);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.equal(results.curves.map((c: { variant: string }) => c.variant), ['unaligned', 'aligned']);
  assert.equal(results.lines.map((c: { variant: string }) => c.variant), ['A-B', 'A-P(B)']);

  r = await cli('reproduce', '--preset', 'tiny-test', '--out', out);
  assert.is(r.code, 0, r.err);
  for (const s of stages) assert.match(r.err, new RegExp(`${s.name.replace(/[()]/g, '\\$&')}: done already, skipped`));

  // --list-stages shows the graph with every stage done.
  r = await cli('reproduce', '--preset', 'tiny-test', '--out', out, '--list-stages');
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /curve-p1-aligned {2}\[done\]\n {2}inputs: {2}.*seed1\/checkpoint\.safetensors .*seed2\/checkpoint\.safetensors\n {2}outputs: .*curve\.safetensors\n {2}command: neuralign curve /);
});

test('a curve stage killed after its first epoch resumes to the same result; a changed recipe invalidates what follows', async () => {
  const full = join(dir, 'full');
  const out = join(dir, 'killed');
  // The endpoints, then the unaligned curve stopped after epoch 1 of 2 as a kill would leave it.
  for (const stage of ['train-s1', 'train-s2']) assert.is((await cli('reproduce', '--preset', 'tiny-test', '--out', out, '--stage', stage)).code, 0);
  const curve = buildStages(preset, { out }).find((s) => s.name === 'curve-p1-unaligned')!;
  const oneEpoch = curve.argv.map((a, i) => (curve.argv[i - 1] === '--epochs' ? '1' : a));
  assert.is((await cli(...oneEpoch)).code, 0);
  const status = stageStatus;
  // The runner writes the started record before running; write it as the killed run would have.
  const inputs = Object.fromEntries(curve.inputs.map((p) => [p, createHash('sha256').update(readFileSync(p)).digest('hex')]));
  mkdirSync(join(out, 'stages'), { recursive: true });
  writeFileSync(join(out, 'stages', `${curve.name}.started.json`), JSON.stringify({ argv: curve.argv, inputs }));
  assert.is(await status(out, curve), 'resumable');

  const r = await cli('reproduce', '--preset', 'tiny-test', '--out', out);
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /curve-p1-unaligned: resuming from its last checkpoint/);
  assert.match(r.err, /train-s1: done already, skipped/);
  const [a, b] = [await bytesOf(join(full, 'curves', 'pair1-unaligned', 'curve.safetensors')), await bytesOf(curve.outputs[0]!)];
  assert.equal([...a.keys()], [...b.keys()]);
  for (const [k, v] of a) assert.is(b.get(k), v, `bend tensor ${k} equals the uninterrupted run's`);
  const evalOf = (d: string) => JSON.parse(readFileSync(join(d, 'eval', 'pair1-unaligned.json'), 'utf8')).paths.map((p: { points: { loss: number }[] }) => p.points.map((q) => q.loss));
  assert.equal(evalOf(out), evalOf(full), 'the evaluation along t equals the uninterrupted run\'s');

  // A changed curve recipe: the curve and everything after it is stale; the endpoints are not.
  const changed: Preset = { ...preset, curve: { ...preset.curve, epochs: 3 } };
  const stages = buildStages(changed, { out });
  const byName = async (n: string) => status(out, stages.find((s) => s.name === n)!);
  assert.is(await byName('train-s1'), 'done');
  assert.is(await byName('curve-p1-unaligned'), 'stale');
  PRESETS['tiny-test'] = changed;
  try {
    const again = await cli('reproduce', '--preset', 'tiny-test', '--out', out);
    assert.is(again.code, 0, again.err);
    assert.match(again.err, /train-s2: done already, skipped/);
    assert.not.match(again.err, /curve-p1-unaligned: done already/);
    assert.not.match(again.err, /eval-p1-unaligned: done already/);
    assert.ok(/curve-p1-unaligned: finished/.test(again.err) && /eval-p1-unaligned: finished/.test(again.err) && /report: finished/.test(again.err));
  } finally {
    PRESETS['tiny-test'] = preset;
  }
});

test('--robust adds adversarial endpoints, robust curves and their PGD evaluation; the report\'s robust table holds their numbers', async () => {
  const out = join(dir, 'robust');
  const r = await cli('reproduce', '--preset', 'tiny-test', '--out', out, '--robust');
  assert.is(r.code, 0, r.err);
  const names = buildStages(preset, { out, robust: true }).map((s) => s.name);
  for (const n of ['train-adv-s1', 'train-adv-s2', 'curve-adv-p1-unaligned', 'eval-adv-p1-unaligned', 'curve-adv-p1-aligned', 'eval-adv-p1-aligned']) assert.ok(names.includes(n), n);
  assert.match(readFileSync(join(out, 'logs', 'train-adv-s1.log'), 'utf8'), /adversarial/);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.equal(results.robust.curves.map((c: { variant: string }) => c.variant), ['unaligned', 'aligned']);
  assert.equal(results.robust.lines.map((c: { variant: string }) => c.variant), ['A-B', 'A-P(B)']);
  const evalJson = JSON.parse(readFileSync(join(out, 'eval', 'robust-pair1-aligned.json'), 'utf8'));
  const curve = evalJson.paths.find((p: { path: string }) => p.path === 'curve');
  assert.is(results.robust.curves[1].barrier.mean, curve.robust.robustLossBarrier.value);
  assert.is(results.robust.curves[1].minRobust.mean, curve.robust.minRobustAccuracy.value);
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  assert.match(md, /## Adversarially trained endpoints \(PGD, section 4\)/);
  assert.match(md, new RegExp(`\\| curve, aligned \\| ${curve.robust.robustLossBarrier.value.toFixed(3)} \\|`));
  assert.ok(existsSync(join(out, 'plots', 'robust.svg')));
  assert.match(r.out, /robust \(PGD\)\s+barrier\s+min PGD acc/);
});

test('bad presets and stages are one-line usage errors', async () => {
  let r = await cli('reproduce', '--preset', 'nope', '--out', join(dir, 'x'));
  assert.is(r.code, 64);
  assert.match(r.err, /--preset 'nope' is not one of quick, tiny/);
  r = await cli('reproduce', '--preset', 'cifar10-tinyten', '--out', join(dir, 'x'));
  assert.is(r.code, 64);
  assert.match(r.err, /download cifar-10-binary\.tar\.gz/);
  r = await cli('reproduce', '--preset', 'tiny-test', '--out', join(dir, 'y'), '--stage', 'eval-p1-aligned');
  assert.is(r.code, 1);
  assert.match(r.err, /needs curve-p1-aligned to be done first/);
});

test.run();
