// `neuralign curve` and `neuralign eval-curve` in-process through runCli, on tiny TinyTen endpoints
// (width 1/4, one epoch on 64 synthetic images, so the curve has batch norm to re-estimate):
// the curve folder holds the curve file, its optimizer companion and the log; --resume continues;
// eval-curve writes the JSON schema (every point of the curve and the line, the summaries, the BN
// policy and the image counts); bad input ends in one line with the right exit code.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { paperDefaults, runTraining } from '../../src/nn/train-run.js';
import { setupEngine } from '../helpers.js';
import { cli } from './run-cli.js';

const test = suite('cli curve/eval-curve');
let dir = '';
const ckpt = (name: string) => join(dir, name, 'checkpoint.safetensors');

test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-cli-curve-'));
  for (const seed of [1, 2]) {
    await runTraining({ ...paperDefaults('tinyten', 'synthetic'), epochs: 1, trainSubset: 64, testSubset: 32, batchSize: 32, seed, width: 0.25 }, join(dir, `tt-${seed}`));
  }
});
test.after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await setupEngine(); // runCli destroyed the device; later test files get a fresh one
});

test('curve trains into its folder, resumes, and eval-curve reports curve and line with every summary', async () => {
  const out = join(dir, 'curve');
  const common = ['--a', ckpt('tt-1'), '--b', ckpt('tt-2'), '--out', out, '--train-subset', '64', '--batch-size', '32', '--align', 'weights'];
  let r = await cli('curve', ...common, '--epochs', '1');
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /aligned B to A by weights/);
  assert.match(r.err, /bezier curve with 3 control points/);
  r = await cli('curve', ...common, '--epochs', '2', '--resume');
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /resuming at epoch 2/);
  assert.match(r.out, /trained the curve to epoch 2/);
  assert.equal(readdirSync(out).sort(), ['alignment.json', 'curve.safetensors', 'log.jsonl', 'optimizer-epoch2.safetensors']);
  assert.equal(readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).epoch), [1, 2]);

  const json = join(dir, 'eval.json');
  r = await cli('eval-curve', '--curve', join(out, 'curve.safetensors'), '--points', '3', '--line', '--train-metrics', '--train-subset', '64', '--test-subset', '32', '--json', json);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /from A to P\(B\) \(weights\)/);
  assert.match(r.out, /batch norm re-estimated at each t/);
  const report = JSON.parse(readFileSync(json, 'utf8'));
  assert.is(report.command, 'eval-curve');
  assert.equal(report.curve, { kind: 'bezier', points: 3, epoch: 2 });
  assert.equal(report.batchNorm.policy, 'reestimated');
  assert.equal(report.images, { test: 32, train: 64 });
  assert.equal(report.paths.map((p: { path: string }) => p.path), ['curve', 'line']);
  for (const path of report.paths) {
    assert.equal(path.points.map((p: { t: number }) => p.t), [0, 0.5, 1]);
    for (const p of path.points) {
      for (const key of ['loss', 'accuracy', 's', 'halfSquaredNorm', 'bnImages']) assert.type(p[key], 'number', `${path.path} ${key}`);
      assert.is(p.bnImages, 64);
      assert.type(p.train.loss, 'number');
    }
    for (const key of ['minAccuracy', 'meanAccuracy', 'lossBarrierLinear', 'lossBarrierMean', 'midpointLossBarrier', 'midpointAccuracyDrop']) {
      assert.type(path.barriers[key].value, 'number', `${path.path} ${key}`);
      assert.type(path.barriers[key].source, 'string');
    }
    for (const key of ['testLoss', 'testError', 'trainLoss', 'trainLossWithL2', 'trainError']) assert.type(path.garipov[key].int, 'number', `${path.path} garipov ${key}`);
    // Garipov's train loss with the L2 term exceeds the plain one by 1/2 wd ||w||^2 at every point.
    assert.ok(path.garipov.trainLossWithL2.min > path.garipov.trainLoss.min);
  }
  // The curve and the line share their endpoints.
  assert.is(report.paths[0].points[0].loss, report.paths[1].points[0].loss);
  assert.is(report.paths[0].points[2].accuracy, report.paths[1].points[2].accuracy);
});

test('bad input: one line, non-zero exit', async () => {
  let r = await cli('curve', '--a', ckpt('tt-1'), '--b', ckpt('tt-2'));
  assert.is(r.code, 64);
  assert.match(r.err, /--out is required/);
  r = await cli('curve', '--a', ckpt('tt-1'), '--b', join(dir, 'missing.safetensors'), '--out', join(dir, 'x'));
  assert.is(r.code, 1);
  assert.match(r.err, /missing\.safetensors: no such file/);
  r = await cli('curve', '--a', ckpt('tt-1'), '--b', ckpt('tt-2'), '--out', join(dir, 'x'), '--curve', 'spline');
  assert.is(r.code, 64);
  assert.match(r.err, /--curve 'spline' is not one of bezier, polychain/);
  const pam = ['--a', ckpt('tt-1'), '--b', ckpt('tt-2'), '--out', join(dir, 'x'), '--align', 'pam-unaligned'];
  r = await cli('curve', ...pam, '--pam-relax', 'softmax');
  assert.is(r.code, 64);
  assert.match(r.err, /--pam-relax 'softmax' is not one of projected, sinkhorn/);
  r = await cli('curve', ...pam, '--pam-tau-end', '0.01');
  assert.is(r.code, 64);
  assert.match(r.err, /--pam-tau-end applies to --pam-relax sinkhorn only/);
  r = await cli('curve', ...pam, '--pam-relax', 'sinkhorn', '--pam-tau-start', '0');
  assert.is(r.code, 64);
  assert.match(r.err, /--pam-tau-start needs a positive number, got 0/);
  r = await cli('eval-curve', '--curve', ckpt('tt-1'));
  assert.is(r.code, 1);
  assert.match(r.err, /model checkpoint, not a curve file/);
});

test.run();
