// The adversarial commands in-process (issue 10): --eps/--step as numbers or fractions;
// `train --adversarial` stores its recipe (Garipov's schedule, PGD eps/step/steps), differs from a
// standard run, resumes bit for bit and refuses another attack on resume; `eval --pgd` reports clean
// and PGD loss and accuracy, the clean part equal to plain `eval`, eps 0 equal to clean.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../src/cli/args.js';
import { fraction } from '../../src/cli/pgd-flags.js';
import { loadSafetensors } from '../../src/nn/checkpoint/index.js';
import { readCheckpoint } from '../../src/nn/checkpoint/model.js';
import { RunStoppedError } from '../../src/nn/train.js';
import { runTraining, type TrainingOptions } from '../../src/nn/train-run.js';
import { setupEngine } from '../helpers.js';
import { cli } from './run-cli.js';

const test = suite('cli adversarial');
let dir = '';
const ckpt = (name: string) => join(dir, name, 'checkpoint.safetensors');
const TINY = ['--model', 'mlp', '--dataset', 'synthetic', '--width', '0.0625', '--train-subset', '96', '--test-subset', '64', '--batch-size', '32', '--log-every', '2'];

test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-cli-adv-'));
});
test.after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await setupEngine();
});

test('--eps and --step take numbers and fractions', () => {
  assert.is(fraction('8/255', 'eps'), 8 / 255);
  assert.is(fraction('0.03', 'eps'), 0.03);
  assert.is(fraction(' 2 / 255 ', 'step'), 2 / 255);
  assert.is(fraction(undefined, 'eps'), undefined);
  for (const bad of ['8/', 'a/255', '1/0', '']) assert.throws(() => fraction(bad, 'eps'), (e: unknown) => e instanceof UsageError);
});

test('train --adversarial: the recipe in the checkpoint, different weights from a standard run, bit-exact resume, another attack refused', async () => {
  const bytes = async (path: string) => [...(await loadSafetensors(path)).tensors].map(([n, t]) => [n, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex')]);
  let r = await cli('train', ...TINY, '--epochs', '2', '--out', join(dir, 'std'));
  assert.is(r.code, 0, r.err);
  r = await cli('train', ...TINY, '--epochs', '2', '--adversarial', '--eps', '16/255', '--step', '4/255', '--steps', '3', '--out', join(dir, 'adv'));
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /adversarial: PGD-3 \(L-inf eps 16\/255, step 4\/255\) examples only/);
  const meta = (await readCheckpoint(ckpt('adv'))).meta.training;
  assert.equal([meta.adversarial, meta.pgdEps, meta.pgdStep, meta.pgdSteps, meta.schedule, meta.lr, meta.weightDecay, meta.nesterov], [true, 16 / 255, 4 / 255, 3, 'garipov', 0.1, 5e-4, true]);
  const std = (await readCheckpoint(ckpt('std'))).meta.training;
  assert.ok(!('adversarial' in std) && !('pgdEps' in std), 'a standard run keeps its recipe as before');
  assert.not.equal(await bytes(ckpt('adv')), await bytes(ckpt('std')), 'adversarial training changes the weights');

  // Stopped after epoch 1 (the signal route of a killed run), then resumed to 2: the same bytes.
  const stop = new AbortController();
  const options = (await readCheckpoint(ckpt('adv'))).meta.training as unknown as TrainingOptions;
  const stopped = await runTraining(options, join(dir, 'adv-resumed'), { readEvery: 2, stop: stop.signal, hooks: { onEpochEnd: (log) => void (log.epoch === 1 && stop.abort('SIGTERM')) } }).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(stopped instanceof RunStoppedError, `stopped: ${stopped}`);
  assert.is((await readCheckpoint(ckpt('adv-resumed'))).meta.epoch, 1);
  r = await cli('train', '--resume', '--out', join(dir, 'adv-resumed'));
  assert.is(r.code, 0, r.err);
  assert.equal(await bytes(ckpt('adv-resumed')), await bytes(ckpt('adv')), 'resumed = uninterrupted');

  r = await cli('train', '--resume', '--out', join(dir, 'adv'), '--eps', '8/255');
  assert.is.not(r.code, 0);
  assert.match(r.err, /cannot resume with pgdEps/);
  r = await cli('train', ...TINY, '--epochs', '2', '--eps', '8/255', '--out', join(dir, 'no-adv'));
  assert.is(r.code, 64);
  assert.match(r.err, /need --adversarial/);
});

test('eval --pgd: clean and PGD in one report; the clean part equals eval; eps 0 equals clean', async () => {
  let r = await cli('eval', '--checkpoint', ckpt('std'), '--json');
  assert.is(r.code, 0, r.err);
  const plain = JSON.parse(r.out);
  r = await cli('eval', '--checkpoint', ckpt('std'), '--json', '--pgd', '--eps', '8/255', '--step', '2/255', '--steps', '5');
  assert.is(r.code, 0, r.err);
  const adv = JSON.parse(r.out);
  assert.is(adv.loss, plain.loss);
  assert.is(adv.accuracy, plain.accuracy);
  assert.equal([adv.pgd.eps, adv.pgd.step, adv.pgd.steps, adv.pgd.restarts], [8 / 255, 2 / 255, 5, 1]);
  assert.ok(adv.pgd.loss > adv.loss, `PGD loss ${adv.pgd.loss} > clean ${adv.loss}`);
  assert.ok(adv.pgd.accuracy <= adv.accuracy);
  r = await cli('eval', '--checkpoint', ckpt('std'), '--json', '--pgd', '--eps', '0', '--step', '0');
  const zero = JSON.parse(r.out);
  assert.is(zero.pgd.loss, zero.loss);
  r = await cli('eval', '--checkpoint', ckpt('std'), '--pgd', '--restarts', '2');
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /clean: loss \d\.\d{4}, accuracy [\d.]+%\n {2}PGD-5 \(L-inf eps 8\/255, step 2\/255, 2 restarts\): loss \d\.\d{4}, accuracy [\d.]+%/);
  r = await cli('eval', '--checkpoint', ckpt('std'), '--eps', '8/255');
  assert.is(r.code, 64);
});

test('curve --adversarial and eval-curve --robust: a robust curve trains and resumes bit for bit; per-t clean and PGD metrics; robust summaries recomputed from the points', async () => {
  const tiny = ['--model', 'tinyten', '--dataset', 'synthetic', '--width', '0.25', '--train-subset', '64', '--test-subset', '48', '--batch-size', '32', '--epochs', '1', '--adversarial', '--steps', '2'];
  for (const seed of ['1', '2']) {
    const r = await cli('train', ...tiny, '--seed', seed, '--out', join(dir, `tt-${seed}`));
    assert.is(r.code, 0, r.err);
  }
  const curveArgs = ['--a', ckpt('tt-1'), '--b', ckpt('tt-2'), '--train-subset', '64', '--epochs', '2', '--log-every', '2'];
  let r = await cli('curve', ...curveArgs, '--adversarial', '--out', join(dir, 'curve-adv'));
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /adversarial: PGD-2 \(L-inf eps 8\/255, step 2\/255\) examples at each batch's t/, 'the endpoints\' attack by default');
  r = await cli('curve', ...curveArgs, '--schedule', 'garipov', '--out', join(dir, 'curve-std'));
  assert.is(r.code, 0, r.err);
  const bends = async (name: string) => [...(await loadSafetensors(join(dir, name, 'curve.safetensors'))).tensors].map(([n, t]) => [n, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex')]);
  assert.not.equal(await bends('curve-adv'), await bends('curve-std'), 'the attack changes the bends');
  // Resume: 1 epoch, stopped, then on to 2.
  const { runCurveTraining } = await import('../../src/align/curve-run.js');
  await setupEngine(); // runCli shut the device down; runCurveTraining does not start it
  const stop = new AbortController();
  const stopped = await runCurveTraining(ckpt('tt-1'), ckpt('tt-2'), { trainSubset: 64, epochs: 2, adversarial: true }, join(dir, 'curve-adv-2'), {
    readEvery: 2, stop: stop.signal, hooks: { onEpochEnd: (log) => void (log.epoch === 1 && stop.abort('SIGTERM')) },
  }).then(() => null, (e: unknown) => e);
  assert.ok(stopped instanceof RunStoppedError, `stopped: ${stopped}`);
  r = await cli('curve', '--resume', ...curveArgs.slice(0, 4), '--out', join(dir, 'curve-adv-2'));
  assert.is(r.code, 0, r.err);
  assert.equal(await bends('curve-adv-2'), await bends('curve-adv'), 'resumed = uninterrupted');

  const json = join(dir, 'robust.json');
  r = await cli('eval-curve', '--curve', join(dir, 'curve-adv', 'curve.safetensors'), '--points', '3', '--line', '--robust', '--train-subset', '64', '--json', json);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /robust: PGD-2 \(L-inf eps 8\/255, step 2\/255\)/);
  assert.match(r.out, /curve: robust loss barrier -?\d\.\d{4}/);
  assert.match(r.out, /line: min PGD accuracy [\d.]+% at t = [\d.]+ \(clean there [\d.]+%\)/);
  const out = JSON.parse(readFileSync(json, 'utf8'));
  const [curve, line] = out.paths;
  assert.equal(curve.points[0].robust, line.points[0].robust, 't = 0 is endpoint A on both paths');
  for (const path of out.paths) {
    const pts = path.points as { t: number; loss: number; accuracy: number; robust: { loss: number; accuracy: number } }[];
    for (const p of pts) assert.ok(p.robust.loss >= p.loss, `t ${p.t}: PGD loss ${p.robust.loss} >= clean ${p.loss}`);
    const [l0, l1] = [pts[0]!.robust.loss, pts[pts.length - 1]!.robust.loss];
    const barrier = Math.max(...pts.map((p) => p.robust.loss - ((1 - p.t) * l0 + p.t * l1)));
    assert.ok(Math.abs(path.robust.robustLossBarrier.value - barrier) < 1e-12, `${path.path}: robust barrier ${path.robust.robustLossBarrier.value} vs ${barrier}`);
    const minAcc = Math.min(...pts.map((p) => p.robust.accuracy));
    assert.is(path.robust.minRobustAccuracy.value, minAcc);
    assert.is(path.robust.cleanAccuracyAtMinRobust, pts.find((p) => p.robust.accuracy === minAcc)!.accuracy);
    assert.is(path.robust.maxCleanAccuracy.value, Math.max(...pts.map((p) => p.accuracy)));
  }
  assert.equal(out.attack, { eps: 8 / 255, step: 2 / 255, steps: 2, randomStart: true, restarts: 1, seed: 0 });
});

test.run();
