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

test.run();
