// `neuralign align` and `neuralign interpolate` in-process through runCli, on tiny checkpoints
// trained here for one epoch on the synthetic data set (MLP at width 1/16, TinyTen at width 1/4):
// the aligned checkpoint evaluates like B (a permuted network computes the same function), the
// report holds permutations and per-layer correlations on train and test, an MLP with dead units
// and a permuted copy of itself come back exactly (dead units matched by weights), mismatched pairs are
// refused in one line, and interpolate writes one JSON point per t with the barrier metrics.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { disposeStateDict, permuteStateDict, permutationSpec, randomPermutations } from '../../src/align/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/nn/checkpoint/index.js';
import { loadModel } from '../../src/nn/checkpoint/model.js';
import { paperDefaults, runTraining } from '../../src/nn/train-run.js';
import { forceDeadUnits } from '../align/models.js';
import { TEST_SEED, rng, setupEngine } from '../helpers.js';
import { cli, type Result } from './run-cli.js';

const test = suite('cli align/interpolate');
let dir = '';
const ckpt = (name: string) => join(dir, name, 'checkpoint.safetensors');

test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-cli-align-'));
  const tiny = { epochs: 1, trainSubset: 160, testSubset: 100, batchSize: 32 };
  for (const seed of [1, 2]) {
    await runTraining({ ...paperDefaults('mlp', 'synthetic'), ...tiny, seed, width: 0.0625 }, join(dir, `mlp-${seed}`));
    await runTraining({ ...paperDefaults('tinyten', 'synthetic'), ...tiny, trainSubset: 64, seed, width: 0.25 }, join(dir, `tinyten-${seed}`));
  }
});
test.after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await setupEngine(); // runCli destroyed the device; later test files get a fresh one
});

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

test('align: the aligned checkpoint evaluates like B; the report has permutations and correlations on train and test', async () => {
  const out = join(dir, 'mlp-2-aligned.safetensors');
  const report = join(dir, 'align.json');
  const r = await cli('align', '--a', ckpt('mlp-1'), '--b', ckpt('mlp-2'), '--out', out, '--samples', '150', '--batch-size', '64', '--json', report);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /on synthetic-train\[0:150\], 150 images; test correlations on synthetic-test, 500 images/);
  assert.match(r.out, /^layer\s+units\s+train before\s+train after\s+signalling\s+test before\s+test after\s+signalling\s+dead A\/B\s+dead matched by$/m);
  assert.match(r.out, /^layers\.0\s+32\s/m);
  assert.match(r.out, /^mean\s/m);

  const json = readJson(report);
  assert.equal(
    [json.command, json.model, json.dataset, json.method, json.preActivation, json.images, json.config, json.seeds],
    ['align', 'mlp', 'synthetic', 'correlation', false, { train: 150, test: 500 }, { inChannels: 3, numClasses: 10, width: 0.0625 }, { a: 1, b: 2 }],
  );
  assert.equal(json.layers.map((l: { layer: string; units: number }) => [l.layer, l.units]), [['layers.0', 32], ['layers.2', 32]]);
  for (const l of json.layers) {
    for (const split of ['train', 'test']) {
      for (const key of ['before', 'after', 'afterSignalling', 'signalling', 'deadA', 'deadB']) assert.type(l[split][key], 'number', `${l.layer} ${split} ${key}`);
      // The matching maximizes the summed correlation on train, so its mean can only rise there.
      if (split === 'train') assert.ok(l.train.after >= l.train.before, `${l.layer}: after ${l.train.after} < before ${l.train.before}`);
    }
  }
  assert.ok(json.summary.train.after > json.summary.train.before && json.summary.test.after > json.summary.test.before, JSON.stringify(json.summary));
  for (const [group, perm] of Object.entries(json.permutations) as [string, number[]][]) {
    assert.equal([...perm].sort((x, y) => x - y), perm.map((_, i) => i), `${group} is a permutation`);
  }

  // Same names and metadata as B, plus the alignment; eval gives B's test accuracy.
  const [fileB, fileAligned] = await Promise.all([loadSafetensors(ckpt('mlp-2')), loadSafetensors(out)]);
  assert.equal([...fileAligned.tensors.keys()], [...fileB.tensors.keys()]);
  const { alignment, ...rest } = fileAligned.metadata;
  assert.equal(rest, fileB.metadata);
  assert.equal(JSON.parse(alignment!).permutations, json.permutations);
  const evalOf = async (path: string) => {
    const e = await cli('eval', '--checkpoint', path, '--json');
    assert.is(e.code, 0, e.err);
    return JSON.parse(e.out);
  };
  const [eb, ealigned] = [await evalOf(ckpt('mlp-2')), await evalOf(out)];
  assert.is(ealigned.accuracy, eb.accuracy);
  assert.ok(Math.abs(ealigned.loss - eb.loss) <= 1e-5 * eb.loss, `loss ${ealigned.loss} vs ${eb.loss}`);

  // A -> P(B) ends at B's function: the last point of the line is B's evaluation.
  const line = join(dir, 'line.json');
  const i = await cli('interpolate', '--a', ckpt('mlp-1'), '--b', out, '--points', '3', '--json', line);
  assert.is(i.code, 0, i.err);
  const path = readJson(line);
  assert.equal(path.points.map((p: { t: number }) => p.t), [0, 0.5, 1]);
  assert.is(path.batchNorm.present, false);
  assert.is(path.points[2].accuracy, eb.accuracy);
});

test("align --method weights: Git Re-Basin weight matching, same report, B's function", async () => {
  const out = join(dir, 'mlp-2-wm.safetensors');
  const report = join(dir, 'wm.json');
  const r = await cli('align', '--a', ckpt('mlp-1'), '--b', ckpt('mlp-2'), '--out', out, '--method', 'weights', '--samples', '100', '--test-subset', '100', '--json', report);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /by weight matching \(\d+ sweeps\); correlations on synthetic-train\[0:100\], 100 images; test correlations on synthetic-test\[0:100\], 100 images/);
  const json = readJson(report);
  assert.is(json.method, 'weights');
  assert.type(json.weightMatching.converged, 'boolean');
  const objective: number[] = json.weightMatching.objective;
  assert.ok(objective.every((v, i) => i === 0 || v >= objective[i - 1]!), `objective never decreases: ${objective}`);
  assert.equal(json.layers.map((l: { layer: string }) => l.layer), ['layers.0', 'layers.2']);
  assert.equal(JSON.parse((await loadSafetensors(out)).metadata.alignment!).method, 'weights');
  // One runCli at a time: each captures the console and closes the device.
  const evalB = JSON.parse((await cli('eval', '--checkpoint', ckpt('mlp-2'), '--json')).out);
  const evalAligned = JSON.parse((await cli('eval', '--checkpoint', out, '--json')).out);
  assert.is(evalAligned.accuracy, evalB.accuracy);
});

test('align: an MLP with dead units and a permuted copy of it: the copy comes back exactly, dead units included (issue 17)', async () => {
  // A = the one-epoch MLP with 8 of each layer's 32 units killed (weights -|w|, bias -20: never
  // active), B = A with every group randomly permuted, both saved as checkpoints.
  await setupEngine(); // the earlier runCli calls closed the device
  const { model, raw } = await loadModel(ckpt('mlp-1'));
  const spec = permutationSpec(model);
  await forceDeadUnits(model, spec, () => 8, rng(TEST_SEED));
  const [pathA, pathB] = [join(dir, 'dead-a.safetensors'), join(dir, 'dead-perm-a.safetensors')];
  await saveSafetensors(pathA, model.stateDict(), raw);
  const permuted = permuteStateDict(model.stateDict(), spec, randomPermutations(spec, rng(TEST_SEED + 1)));
  await saveSafetensors(pathB, permuted, raw);
  disposeStateDict(permuted);
  model.dispose();
  const maxDiff = async (x: string, y: string) => {
    const [fx, fy] = [await loadSafetensors(x), await loadSafetensors(y)];
    let worst = 0;
    for (const [name, t] of fx.tensors) {
      const u = fy.tensors.get(name)!.data;
      for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(Number(t.data[i]!) - Number(u[i]!)));
    }
    return worst;
  };

  const out = join(dir, 'dead-aligned.safetensors');
  const report = join(dir, 'dead.json');
  const r = await cli('align', '--a', pathA, '--b', pathB, '--out', out, '--samples', '150', '--batch-size', '64', '--test-subset', '100', '--json', report);
  assert.is(r.code, 0, r.err);
  assert.is(await maxDiff(pathA, out), 0, `max |A - align(perm(A))| (seed ${TEST_SEED})`);
  assert.match(r.out, /^layer\s+units\s+train before\s+train after\s+signalling\s+test before\s+test after\s+signalling\s+dead A\/B\s+dead matched by$/m);
  assert.match(r.out, /^layers\.0\s+32\s.*\s(8|9|1\d)\/\1\s+weights, \d+ moved$/m);
  const json = readJson(report);
  assert.is(json.deadUnits, 'weights');
  assert.equal(json.silentUnits.groups.map((g: { group: string }) => g.group), ['layers.0', 'layers.2']);
  for (const l of json.layers) {
    assert.ok(l.train.deadA >= 8 && l.train.deadA === l.train.deadB, `${l.layer}: dead ${l.train.deadA}/${l.train.deadB}`);
    assert.is(l.train.deadMatching, 'weights');
    assert.is(l.train.signalling, 32 - l.train.deadA);
    // A dead pair counts 0 in the mean over all units; over signalling pairs the copy correlates ~1.
    assert.ok(l.train.afterSignalling > 0.999 && l.train.after < 0.8, `${l.layer}: ${l.train.afterSignalling} vs ${l.train.after}`);
  }
  assert.ok(json.summary.train.afterSignalling > json.summary.train.after, JSON.stringify(json.summary));
  assert.is(JSON.parse((await loadSafetensors(out)).metadata.alignment!).deadUnits, 'weights');

  // The paper's behaviour: the dead units are paired however the solver breaks ties.
  const arbitrary = join(dir, 'dead-arbitrary.safetensors');
  const q = await cli('align', '--a', pathA, '--b', pathB, '--out', arbitrary, '--samples', '150', '--test-subset', '100', '--dead-units', 'arbitrary', '--json', report);
  assert.is(q.code, 0, q.err);
  assert.ok((await maxDiff(pathA, arbitrary)) > 0, `arbitrary dead units differ from A (seed ${TEST_SEED})`);
  assert.match(q.out, /^layers\.0\s+32\s.*\s+arbitrary$/m);
  assert.is(readJson(report).deadUnits, 'arbitrary');
});

test('align: mismatched pairs and bad flags are refused in one line', async () => {
  const r = await cli('align', '--a', ckpt('mlp-1'), '--b', ckpt('tinyten-1'), '--out', join(dir, 'never.safetensors'));
  assert.is(r.code, 1, r.err);
  const lines = r.err.trim().split('\n');
  assert.is(lines.length, 1, r.err);
  assert.match(lines[0]!, /^neuralign align: cannot align .*mlp-1.* \(mlp width 0\.0625, .*\) and .*tinyten-1.* \(tinyten width 0\.25, .*\): they differ in architecture, width$/);
  assert.not.ok(existsSync(join(dir, 'never.safetensors')));
  const i = await cli('interpolate', '--a', ckpt('tinyten-1'), '--b', ckpt('mlp-2'));
  assert.is(i.code, 1);
  assert.match(i.err, /cannot interpolate .* they differ in architecture, width/);

  for (const [args, what] of [
    [['--a', ckpt('mlp-1'), '--out', 'x'], '--b FILE is required'],
    [['--a', ckpt('mlp-1'), '--b', ckpt('mlp-2'), '--out', 'x', '--method', 'ot'], "--method 'ot' is not one of correlation, weights"],
    [['--a', ckpt('mlp-1'), '--b', ckpt('mlp-2'), '--out', 'x', '--samples', '0'], '--samples needs a positive integer'],
    [['--a', ckpt('mlp-1'), '--b', ckpt('mlp-2'), '--out', 'x', '--dead-units', 'none'], "--dead-units 'none' is not one of weights, arbitrary"],
  ] as [string[], string][]) {
    const e = await cli('align', ...args);
    assert.is(e.code, 64, e.err);
    assert.ok(e.err.startsWith(`neuralign align: ${what}`), e.err.split('\n')[0]);
  }
  const p = await cli('interpolate', '--a', ckpt('mlp-1'), '--b', ckpt('mlp-2'), '--points', '1');
  assert.is(p.code, 64);
  assert.match(p.err, '--points needs an integer >= 2');
  for (const [cmd, flags] of [['align', ['--a', '--b', '--out', '--method', '--samples', '--batch-size', '--dead-units', '--pre-activation', '--data-dir', '--json']], ['interpolate', ['--points', '--json', '--bn-batches', '--test-subset', '--train-subset', '--no-augment', '--repair']]] as const) {
    const help = await cli(cmd, '--help');
    for (const flag of flags) assert.ok(help.out.includes(flag), `${cmd} help mentions ${flag}`);
  }
});

test('interpolate --repair: REPAIR at every t keeps the endpoints and lowers the midpoint loss of an MLP line', async () => {
  const [plainJson, repairJson] = [join(dir, 'plain.json'), join(dir, 'repair.json')];
  const plain = await cli('interpolate', '--a', ckpt('mlp-1'), '--b', ckpt('mlp-2'), '--points', '3', '--json', plainJson);
  assert.is(plain.code, 0, plain.err);
  const r = await cli('interpolate', '--a', ckpt('mlp-1'), '--b', ckpt('mlp-2'), '--points', '3', '--repair', '--repair-samples', '100', '--json', repairJson);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /REPAIR at each t on the first 100 training images/);
  const [p, q] = [readJson(plainJson), readJson(repairJson)];
  assert.equal(q.repair, { images: 100 });
  // At t = 0 and 1 the target statistics are the endpoint's own: REPAIR changes (almost) nothing.
  for (const i of [0, 2]) assert.ok(Math.abs(q.points[i].loss - p.points[i].loss) <= 1e-4 * p.points[i].loss, `endpoint ${i}`);
  assert.ok(q.points[1].loss < p.points[1].loss, `midpoint loss ${q.points[1].loss} (repaired) vs ${p.points[1].loss}`);
});

test('interpolate: TinyTen with BN re-estimated at every t writes one JSON point per t and the barriers', async () => {
  const json = join(dir, 'tinyten.json');
  const r = await cli('interpolate', '--a', ckpt('tinyten-1'), '--b', ckpt('tinyten-2'), '--points', '4', '--train-subset', '40', '--test-subset', '50', '--json', json);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /batch norm re-estimated at each t on synthetic-train\[0:40\] \(2 batches of 32, not augmented\)/);
  assert.match(r.out, /loss barrier [-\d.]+ at t = [\d.]+\s+\[Entezari/);
  assert.match(r.out, /min accuracy [\d.]+%.*\[Tatro/);
  const out = readJson(json);
  assert.equal(out.points.map((p: { t: number; images: number; bnImages: number }) => [p.t, p.images, p.bnImages]), [0, 1 / 3, 2 / 3, 1].map((t) => [t, 50, 40]));
  assert.equal(out.batchNorm, { present: true, reset: true, trainImages: 40, batches: 2, batchSize: 32, augment: false });
  for (const key of ['lossBarrierLinear', 'lossBarrierMean', 'midpointLossBarrier', 'midpointAccuracyDrop', 'minAccuracy', 'meanAccuracy', 'meanLoss']) {
    assert.type(out.barriers[key].value, 'number', key);
    assert.type(out.barriers[key].source, 'string', key);
  }
  assert.equal(out.barriers.endpoints.loss, [out.points[0].loss, out.points[3].loss]);
});

test.run();
