// PAM end to end (src/align/pam-run.ts through runCurveTraining) on two small MLPs trained on the
// synthetic set from different seeds:
// - pam-unaligned writes the P-step's matrices and record, rounds to a permutation per group, and
//   its curve file records the permutation (method 'pam-unaligned') that eval-curve reads: the
//   t = 1 end of the opened curve computes B's function;
// - a run stopped after its first P-epoch and resumed gives bit-identical P matrices, the same
//   rounding and the same curve as an uninterrupted run; the phi-step resumes bit for bit too
//   (its proximal anchors are rebuilt from the endpoints);
// - pam-aligned starts from the correlation alignment and records the rounded permutation
//   composed with it;
// - --pam-relax sinkhorn anneals tau to tau_end, rounds Sinkhorn(L / tau_end) solved to 1e-4 by
//   the same candidates, and records the permutation in the curve file; a projected run's recipe
//   does not name a relaxation (so its records are those of before the Sinkhorn variant); a
//   Sinkhorn run stopped in its P-step and resumed ends as an uninterrupted one.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { evaluateCurve } from '../../src/align/curve-eval.js';
import { CURVE_FILE, closeCurve, openCurve, readCurveFile } from '../../src/align/curve-file.js';
import { runCurveTraining, type CurveTrainingOptions } from '../../src/align/curve-run.js';
import { linspace } from '../../src/align/interpolate.js';
import { PAM_P_FILE, PAM_RECORD_FILE, type PamRecord } from '../../src/align/pam-run.js';
import { checkPermutation, composePermutations } from '../../src/align/permute.js';
import { loadSafetensors } from '../../src/nn/checkpoint/safetensors.js';
import { CHECKPOINT_FILE, loadModel } from '../../src/nn/checkpoint/model.js';
import { DataLoader, firstImages, loadDataset } from '../../src/nn/data/index.js';
import { evaluate } from '../../src/nn/evaluate.js';
import { paperDefaults, runTraining } from '../../src/nn/train-run.js';
import { setupEngine } from '../helpers.js';

const test = suite('pam-run');
let dir = '';
let A = '';
let B = '';
test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-pam-'));
  for (const seed of [1, 2]) {
    await runTraining({ ...paperDefaults('mlp', 'synthetic'), epochs: 2, width: 1 / 16, batchSize: 32, trainSubset: 256, testSubset: 128, seed }, join(dir, `ep${seed}`), { readEvery: 8 });
  }
  A = join(dir, 'ep1', CHECKPOINT_FILE);
  B = join(dir, 'ep2', CHECKPOINT_FILE);
});
test.after(() => (process.env.KEEP_TEST_DIR ? console.log(dir) : rmSync(dir, { recursive: true, force: true })));

// A large P-step learning rate so that P moves in a few steps, and a small nu.
const recipe = (extra: Partial<CurveTrainingOptions>): Partial<CurveTrainingOptions> => ({
  epochs: 2, batchSize: 32, trainSubset: 256, seed: 5, lr: 0.05, pamLr: 2, pamPEpochs: 2, pamCandidates: 4, pamNu: 10, align: 'pam-unaligned', ...extra,
});
const bytes = (t: { data: ArrayBufferView }) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const record = (out: string) => JSON.parse(readFileSync(join(out, PAM_RECORD_FILE), 'utf8')) as PamRecord;
const withoutTiming = (r: PamRecord) => ({ ...r, training: null, seconds: null, pStep: r.pStep.map((l) => ({ ...l, seconds: null })) });

async function sameTensors(pathA: string, pathB: string, what: string): Promise<void> {
  const [fa, fb] = [await loadSafetensors(pathA), await loadSafetensors(pathB)];
  assert.equal([...fa.tensors.keys()], [...fb.tensors.keys()], what);
  for (const [k, t] of fa.tensors) assert.ok(bytes(t).equals(bytes(fb.tensors.get(k)!)), `${what}: '${k}' differs`);
}

test('pam-unaligned: P-step, rounding, phi-step; the curve file records the permutation; resume phase by phase is exact', async () => {
  const straight = join(dir, 'p-straight');
  await runCurveTraining(A, B, recipe({}), straight, { readEvery: 4 });
  const r = record(straight);
  assert.is(r.method, 'pam-unaligned');
  assert.is(r.initial, null);
  assert.is(r.pStep.length, 2, 'two P-epochs logged');
  assert.is(r.candidates.length, 2 + 4, 'projection, previous and 4 draws');
  assert.equal(r.candidates.slice(0, 2).map((c) => c.source), ['projection', 'previous']);
  const best = Math.min(...r.candidates.map((c) => c.loss));
  assert.is(r.candidates[r.chosen]!.loss, best, 'the chosen candidate has the lowest training NLL');
  for (const l of r.pStep) for (const d of Object.values(l.distance)) assert.ok(d >= 0 && d < 1, `distance ${d}`);
  // At this learning rate P leaves the identity and rounding moves units (deterministic: fixed seeds).
  assert.ok(Object.values(r.moved).some((n) => n > 0), `PAM moved no unit: ${JSON.stringify(r.moved)}`);
  const { meta } = await readCurveFile(join(straight, CURVE_FILE));
  assert.equal(meta.permutation, r.permutation, 'the curve file records the PAM permutation');
  assert.is(meta.permutation!.method, 'pam-unaligned');
  for (const [g, p] of Object.entries(meta.permutation!.groups)) {
    checkPermutation(p, p.length, `group ${g}`);
    assert.is(p.filter((v, i) => v !== i).length, r.moved[g], `group ${g}: moved units`);
  }

  // Stopped after the first P-epoch, then resumed: the same P, rounding and curve.
  const split = join(dir, 'p-split');
  try {
    await runCurveTraining(A, B, recipe({}), split, { readEvery: 4, hooks: { pam: { onPEpochEnd: () => { throw new Error('stop'); } } } });
    assert.unreachable('the hook stops the run');
  } catch (e) {
    assert.is((e as Error).message, 'stop');
  }
  try {
    await runCurveTraining(A, B, recipe({}), split);
    assert.unreachable('a started PAM run is not overwritten');
  } catch (e) {
    assert.match((e as Error).message, /already holds a PAM run/);
  }
  await runCurveTraining(A, B, { epochs: 1 }, split, { resume: true, readEvery: 4 });
  await sameTensors(join(straight, PAM_P_FILE), join(split, PAM_P_FILE), 'P after the P-step');
  assert.equal(withoutTiming(record(split)), withoutTiming(r), 'pam.json');
  // The phi-step: 1 epoch, then resumed to 2.
  await runCurveTraining(A, B, { epochs: 2 }, split, { resume: true, readEvery: 4 });
  await sameTensors(join(straight, CURVE_FILE), join(split, CURVE_FILE), 'bends after the phi-step');

  // eval-curve reads it unchanged: t = 1 is P(B), which computes B's function.
  const opened = await openCurve(join(straight, CURVE_FILE));
  try {
    const data = new DataLoader(firstImages(loadDataset('synthetic', 'test'), 128, 'n'), { batchSize: 64 });
    const b = await loadModel(B);
    const own = await evaluate(b.model, data);
    b.model.dispose();
    const onCurve = await evaluateCurve(opened.model, opened.curve, linspace(3), { bn: null, test: data });
    const end = onCurve.points[onCurve.points.length - 1]!;
    assert.ok(Math.abs(end.loss - own.loss) < 1e-4, `t = 1: loss ${end.loss} vs B's ${own.loss}`);
  } finally {
    closeCurve(opened);
  }
});

test('pam-aligned: starts from the correlation alignment and composes the rounded permutation with it', async () => {
  const out = join(dir, 'p-aligned');
  await runCurveTraining(A, B, recipe({ align: 'pam-aligned', alignSamples: 256, epochs: 1 }), out, { readEvery: 4 });
  const r = record(out);
  const alignment = JSON.parse(readFileSync(join(out, 'alignment.json'), 'utf8'));
  assert.equal(r.initial, alignment.permutation, 'the initial permutation is the correlation alignment');
  const rounded = new Map<string, Int32Array>();
  for (const [g, p] of Object.entries(r.permutation.groups)) {
    const init = Int32Array.from(r.initial!.groups[g]!);
    // final = init o rounded, so rounded = init^-1 applied: final[i] = init[rounded[i]].
    const inv = new Int32Array(init.length);
    init.forEach((v, i) => (inv[v] = i));
    const back = Int32Array.from(p, (v) => inv[v]!);
    checkPermutation(back, back.length);
    rounded.set(g, back);
    assert.equal([...composePermutations(init, back)], p);
    assert.is(back.filter((v, i) => v !== i).length, r.moved[g]);
  }
  assert.is((await readCurveFile(join(out, CURVE_FILE))).meta.permutation!.method, 'pam-aligned');
});

test('pam-unaligned --pam-relax sinkhorn: tau annealed to tau_end, P doubly stochastic, the same rounding, a permutation in the curve file', async () => {
  const out = join(dir, 'p-sinkhorn');
  await runCurveTraining(A, B, recipe({ pamRelax: 'sinkhorn', pamLr: 0.5, pamTauStart: 0.5, pamTauEnd: 0.02, epochs: 1 }), out, { readEvery: 4 });
  const r = record(out);
  assert.equal([r.recipe.pamRelax, r.recipe.pamTauStart, r.recipe.pamTauEnd], ['sinkhorn', 0.5, 0.02]);
  assert.is(r.pStep.length, 2, 'two P-epochs logged');
  const taus = r.pStep.map((l) => l.tau!);
  assert.ok(taus[0]! < 0.5 && taus[0]! > 0.02 && Math.abs(taus[1]! - 0.02) < 1e-9, `epoch-end temperatures ${taus}`);
  // A step's P comes from a few warm-started rounds, so only its columns are exact; the rounding's
  // P is solved to 1e-4.
  for (const l of r.pStep) assert.ok(l.sinkhornError! < 0.1, `epoch ${l.epoch}: sums off by ${l.sinkhornError}`);
  assert.ok(r.sinkhorn!.error <= 1e-4, `the rounded P's sums are off by ${r.sinkhorn!.error}`);
  assert.equal(r.candidates.slice(0, 2).map((c) => c.source), ['projection', 'previous']);
  assert.is(r.candidates[r.chosen]!.loss, Math.min(...r.candidates.map((c) => c.loss)), 'the chosen candidate has the lowest training NLL');
  const { meta } = await readCurveFile(join(out, CURVE_FILE));
  assert.equal(meta.permutation, r.permutation);
  for (const [g, p] of Object.entries(meta.permutation!.groups)) checkPermutation(p, p.length, `group ${g}`);
  assert.is(record(join(dir, 'p-straight')).recipe.pamRelax, undefined, 'a projected run names no relaxation');

  // Stopped after the first P-epoch and resumed: the Sinkhorn P-step starts again, and being
  // deterministic ends in the same rounding and curve.
  const split = join(dir, 'p-sinkhorn-split');
  const sinkhornRecipe = recipe({ pamRelax: 'sinkhorn', pamLr: 0.5, pamTauStart: 0.5, pamTauEnd: 0.02, epochs: 1 });
  try {
    await runCurveTraining(A, B, sinkhornRecipe, split, { readEvery: 4, hooks: { pam: { onPEpochEnd: () => { throw new Error('stop'); } } } });
    assert.unreachable('the hook stops the run');
  } catch (e) {
    assert.is((e as Error).message, 'stop');
  }
  await runCurveTraining(A, B, {}, split, { resume: true, readEvery: 4 });
  assert.equal(withoutTiming(record(split)), withoutTiming(r), 'pam.json');
  await sameTensors(join(out, CURVE_FILE), join(split, CURVE_FILE), 'bends after the phi-step');
});

test.run();
