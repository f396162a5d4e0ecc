// Curve training and evaluation end to end on small endpoints (two MLPs trained on the synthetic
// set from different seeds):
// - a curve trained a few epochs has a lower loss at its midpoint than the straight line's;
// - 1 epoch + --resume gives bit-identical bends, momentum and log to 2 epochs straight;
// - the curve file records the endpoints' SHA-256, and a changed endpoint is refused;
// - with --align correlation the t = 1 end is P(B), which computes B's function;
// - eval-curve's summaries: the arc-length Avg equals a hand computation from the points, and the
//   endpoint points equal the endpoint networks' own evaluation after the same BN policy.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { evaluateCurve, evaluateCurveLine } from '../../src/align/curve-eval.js';
import { CURVE_FILE, closeCurve, openCurve, readCurveFile, fileSha256 } from '../../src/align/curve-file.js';
import { runCurveTraining, type CurveTrainingOptions } from '../../src/align/curve-run.js';
import { linspace } from '../../src/align/interpolate.js';
import { arcLengthMean } from '../../src/align/barrier.js';
import { loadSafetensors } from '../../src/nn/checkpoint/safetensors.js';
import { CHECKPOINT_FILE, loadModel } from '../../src/nn/checkpoint/model.js';
import { DataLoader, firstImages, loadDataset } from '../../src/nn/data/index.js';
import { evaluate } from '../../src/nn/evaluate.js';
import { paperDefaults, runTraining } from '../../src/nn/train-run.js';
import { setupEngine } from '../helpers.js';

const test = suite('curve-run');
let dir = '';
let A = '';
let B = '';
test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-curve-'));
  // Two MLPs (32-32 hidden) on 384 synthetic images, 3 epochs each, seeds 1 and 2.
  for (const seed of [1, 2]) {
    const out = join(dir, `ep${seed}`);
    await runTraining({ ...paperDefaults('mlp', 'synthetic'), epochs: 3, width: 1 / 16, batchSize: 32, trainSubset: 384, testSubset: 128, seed }, out, { readEvery: 6 });
  }
  A = join(dir, 'ep1', CHECKPOINT_FILE);
  B = join(dir, 'ep2', CHECKPOINT_FILE);
});
test.after(() => (process.env.KEEP_TEST_DIR ? console.log(dir) : rmSync(dir, { recursive: true, force: true })));

const recipe = (epochs: number): Partial<CurveTrainingOptions> => ({ epochs, batchSize: 32, trainSubset: 384, seed: 5, lr: 0.02 });
const bytes = (t: { data: ArrayBufferView }) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const withoutTiming = (line: string) => {
  const { seconds: _s, images_per_s: _i, ...rest } = JSON.parse(line);
  return rest;
};

/** Train loss (eval mode; an MLP has no BN) of `model` on the 384 training images. */
async function trainLoss(model: import('../../src/nn/module.js').Module): Promise<number> {
  const data = firstImages(loadDataset('synthetic', 'train'), 384, 'n');
  return (await evaluate(model, new DataLoader(data, { batchSize: 128 }))).loss;
}

test('a trained curve beats the straight line at its midpoint; resume is bit-identical', async () => {
  const [straight, split] = [join(dir, 'c-straight'), join(dir, 'c-split')];
  await runCurveTraining(A, B, recipe(4), straight, { readEvery: 4 });
  await runCurveTraining(A, B, recipe(2), split, { readEvery: 4 });
  const resumed = await runCurveTraining(A, B, { epochs: 4 }, split, { resume: true, readEvery: 4 });
  assert.is(resumed.logs.length, 2, 'the resumed run trains epochs 3 and 4');
  const [fa, fb] = [await loadSafetensors(join(straight, CURVE_FILE)), await loadSafetensors(join(split, CURVE_FILE))];
  assert.equal([...fa.tensors.keys()], [...fb.tensors.keys()]);
  assert.ok([...fa.tensors.keys()].every((k) => k.startsWith('bend1.')), 'one bend, named bend1.<parameter>');
  for (const [k, t] of fa.tensors) assert.ok(bytes(t).equals(bytes(fb.tensors.get(k)!)), `bend tensor ${k} differs after resume`);
  const [oa, ob] = [await loadSafetensors(join(straight, 'optimizer-epoch4.safetensors')), await loadSafetensors(join(split, 'optimizer-epoch4.safetensors'))];
  for (const [k, t] of oa.tensors) assert.ok(bytes(t).equals(bytes(ob.tensors.get(k)!)), `momentum ${k} differs after resume`);
  const logs = [straight, split].map((d) => readFileSync(join(d, 'log.jsonl'), 'utf8').trim().split('\n').map(withoutTiming));
  assert.equal(logs[0], logs[1], 'log.jsonl');
  assert.equal(readdirSync(split).sort(), ['curve.safetensors', 'log.jsonl', 'optimizer-epoch4.safetensors']);

  const { meta } = await readCurveFile(join(straight, CURVE_FILE));
  assert.is(meta.epoch, 4);
  assert.is(meta.curve, 'bezier');
  assert.is(meta.points, 3);
  assert.is(meta.permutation, null);
  assert.is(meta.endpoints.a.sha256, await fileSha256(A));
  assert.is(meta.endpoints.b.sha256, await fileSha256(B));

  // The midpoint: curve against line, same network, same data.
  const opened = await openCurve(join(straight, CURVE_FILE));
  try {
    const { curve, model } = opened;
    curve.loadInto(model, 0.5);
    const onCurve = await trainLoss(model);
    E.noGrad(() => E.tidy(() => {
      for (const [name, dst] of model.stateDict()) {
        const [a, b] = [curve.endpoints[0].get(name)!, curve.endpoints[1].get(name)!];
        E.runtime().stream.copy(E.add(E.mulScalar(a, 0.5), E.mulScalar(b, 0.5)).buffer, 0, dst.buffer, 0, dst.bytes);
      }
    }));
    const onLine = await trainLoss(model);
    const ends = [await trainLoss(opened.endpoints.a.model), await trainLoss(opened.endpoints.b.model)];
    assert.ok(onLine > Math.max(...ends), `the straight line has a barrier here (midpoint ${onLine}, ends ${ends})`);
    assert.ok(onCurve < onLine, `curve midpoint loss ${onCurve} < line midpoint loss ${onLine}`);
  } finally {
    closeCurve(opened);
  }
});

test('a changed endpoint file is refused; a curve file is not a checkpoint', async () => {
  const out = join(dir, 'c-changed');
  await runCurveTraining(A, B, recipe(1), out, { readEvery: 4 });
  const copyB = join(dir, 'b-copy.safetensors');
  copyFileSync(B, copyB);
  const moved = join(dir, 'c-moved');
  await runCurveTraining(A, copyB, recipe(1), moved, { readEvery: 4 });
  copyFileSync(A, copyB); // the endpoint file now holds other weights
  try {
    await openCurve(join(moved, CURVE_FILE));
    assert.unreachable('a changed endpoint must be refused');
  } catch (e) {
    assert.match((e as Error).message, /changed since the curve was trained/);
  }
  try {
    await readCurveFile(A);
    assert.unreachable('a checkpoint is not a curve file');
  } catch (e) {
    assert.match((e as Error).message, /model checkpoint, not a curve file/);
  }
  try {
    await runCurveTraining(A, B, recipe(1), out);
    assert.unreachable('an existing curve must not be overwritten');
  } catch (e) {
    assert.match((e as Error).message, /already holds a curve/);
  }
});

test('--align correlation: the curve ends at P(B), which computes B\'s function; eval summaries', async () => {
  const out = join(dir, 'c-aligned');
  await runCurveTraining(A, B, { ...recipe(1), align: 'correlation', alignSamples: 256 }, out, { readEvery: 4 });
  assert.ok(existsSync(join(out, 'alignment.json')), 'the alignment report is saved');
  const opened = await openCurve(join(out, CURVE_FILE));
  try {
    assert.ok(opened.meta.permutation && opened.meta.permutation.method === 'correlation');
    const groups = Object.values(opened.meta.permutation!.groups);
    assert.ok(groups.some((p) => p.some((v, i) => v !== i)), 'the permutation is not the identity');
    const { curve, model } = opened;
    const test = new DataLoader(firstImages(loadDataset('synthetic', 'test'), 128, 'n'), { batchSize: 64 });
    const b = await loadModel(B);
    const own = await evaluate(b.model, test);
    b.model.dispose();
    const ts = linspace(5);
    const onCurve = await evaluateCurve(model, curve, ts, { bn: null, test });
    const onLine = await evaluateCurveLine(model, curve, ts, { bn: null, test });
    for (const r of [onCurve, onLine]) {
      const end = r.points[r.points.length - 1]!;
      assert.ok(Math.abs(end.loss - own.loss) < 1e-4, `t = 1 is P(B): loss ${end.loss} vs B's ${own.loss}`);
      assert.is(end.accuracy, own.accuracy);
      // The arc-length Avg from the points by hand.
      const s = r.points.map((p) => p.s);
      const acc = r.points.map((p) => p.accuracy);
      let integral = 0;
      for (let i = 1; i < s.length; i++) integral += ((acc[i] + acc[i - 1]) / 2) * (s[i] - s[i - 1]);
      assert.ok(Math.abs(r.barriers.meanAccuracy.value - integral / s[s.length - 1]) < 1e-12, `${r.path}: arc-length mean`);
      assert.is(r.barriers.minAccuracy.value, Math.min(...acc));
      assert.is(r.barriers.endpoints.meanAccuracy, (acc[0] + acc[acc.length - 1]) / 2);
      assert.ok(Math.abs(r.garipov.testError.int - (1 - arcLengthMean(s, acc))) < 1e-12);
    }
    // Line and curve share the endpoints and the line's arc length is uniform in t.
    assert.is(onLine.points[0]!.loss, onCurve.points[0]!.loss);
    assertCloseScalar(onLine.points[2]!.s, onLine.length / 2, 'line midpoint arc length');
    assert.ok(onCurve.length >= onLine.length * (1 - 1e-6), 'the curve is at least as long as the line');
  } finally {
    closeCurve(opened);
  }
});

function assertCloseScalar(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= 1e-6 * Math.abs(b), `${what}: ${a} vs ${b}`);
}

test.run();
