// The training loop and runs: bit-identical weights for the same seed, a resumed run equal to an
// uninterrupted one (MLP with augmentation, TinyTen with batch norm, a model with dropout whose
// generator offsets must be restored), NaN detection at the exact step with the last checkpoint
// intact, log.jsonl and checkpoint metadata, evaluate() against a float64 reference, flat memory
// over epochs, and checkpoint loading errors. Small models on the synthetic data set.
import { createModel } from '../../src/nn/models/index.js';
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { CheckpointError, loadSafetensors, type CpuTensor } from '../../src/nn/checkpoint/index.js';
import { CHECKPOINT_FILE, loadInto, loadOptimizerState, readCheckpoint, saveTrainingState, type CheckpointMetadata } from '../../src/nn/checkpoint/model.js';
import { DataLoader, subset, syntheticDataset } from '../../src/nn/data/index.js';
import { evaluate, type BatchSource } from '../../src/nn/evaluate.js';
import { ReLU } from '../../src/nn/layers/activation.js';
import { Linear } from '../../src/nn/layers/linear.js';
import { Dropout } from '../../src/nn/layers/dropout.js';
import { Module, Sequential } from '../../src/nn/module.js';
import { SGD, tatroSchedule } from '../../src/nn/optim.js';
import { paperDefaults, resumeOptions, runTraining, savedOptions, type TrainingOptions } from '../../src/nn/train-run.js';
import { TrainingDivergedError, firstNonFinite, trainLoop, type EpochLog } from '../../src/nn/train.js';
import { TEST_SEED, logSoftmaxRef, setupEngine } from '../helpers.js';

const test = suite('train');
let dir = '';
test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-train-'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A small recipe: 192 synthetic images in batches of 32 (6 steps), read every 4 steps. */
function recipe(model: 'mlp' | 'tinyten', epochs: number): TrainingOptions {
  return { ...paperDefaults(model, 'synthetic'), epochs, width: model === 'mlp' ? 1 / 16 : 1 / 4, batchSize: 32, trainSubset: 192, testSubset: 64, augment: true, seed: 7 };
}
const READ_EVERY = 4;

/** Asserts two files' tensors have the same names (in order), dtypes, shapes and bytes. */
function assertSameTensors(a: Map<string, CpuTensor>, b: Map<string, CpuTensor>, what: string): void {
  assert.equal([...a.keys()], [...b.keys()], `${what}: names`);
  for (const [name, ta] of a) {
    const tb = b.get(name)!;
    assert.is(ta.dtype, tb.dtype, `${what}: ${name} dtype`);
    assert.equal(ta.shape, tb.shape, `${what}: ${name} shape`);
    const bytes = (t: CpuTensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    assert.ok(bytes(ta).equals(bytes(tb)), `${what}: ${name} differs`);
  }
}

function differs(a: Map<string, CpuTensor>, b: Map<string, CpuTensor>): boolean {
  return [...a].some(([name, t]) => !Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(b.get(name)!.data.buffer, b.get(name)!.data.byteOffset, b.get(name)!.data.byteLength)));
}

const tensorsOf = async (path: string) => (await loadSafetensors(path)).tensors;
const readLog = (d: string): EpochLog[] => readFileSync(join(d, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const withoutTiming = ({ seconds: _s, images_per_s: _i, ...rest }: EpochLog) => rest;

for (const model of ['mlp', 'tinyten'] as const) {
  test(`${model}: the same seed gives bit-identical weights; 1 epoch + resume equals 2 epochs straight`, async () => {
    const [a, b, c] = ['a', 'b', 'c'].map((s) => join(dir, `${model}-${s}`)) as [string, string, string];
    await runTraining(recipe(model, 2), a, { readEvery: READ_EVERY });
    await runTraining(recipe(model, 2), c, { readEvery: READ_EVERY });
    await runTraining(recipe(model, 1), b, { readEvery: READ_EVERY });
    const afterOne = await tensorsOf(join(b, CHECKPOINT_FILE));
    // As if killed while saving epoch 2: its log line and optimizer file written, the checkpoint
    // not yet, and half a line more. Resume must use epoch 1's optimizer file and drop the rest.
    copyFileSync(join(a, 'optimizer-epoch2.safetensors'), join(b, 'optimizer-epoch2.safetensors'));
    appendFileSync(join(b, 'log.jsonl'), `${readFileSync(join(a, 'log.jsonl'), 'utf8').split('\n')[1]}\n{"epoch":3,"tra`);
    const { options: saved } = await savedOptions(b);
    const resumed = await runTraining(resumeOptions(saved, { epochs: 2 }), b, { resume: true, readEvery: READ_EVERY });
    assert.is(resumed.logs.length, 1, 'the resumed run trains epoch 2 only');

    const straight = await tensorsOf(join(a, CHECKPOINT_FILE));
    assert.ok(differs(straight, afterOne), 'epoch 2 changes the weights (the comparison is not vacuous)');
    assertSameTensors(straight, await tensorsOf(join(c, CHECKPOINT_FILE)), 'same seed, two runs');
    assertSameTensors(straight, await tensorsOf(join(b, CHECKPOINT_FILE)), 'resumed vs straight');
    assertSameTensors(await tensorsOf(join(a, 'optimizer-epoch2.safetensors')), await tensorsOf(join(b, 'optimizer-epoch2.safetensors')), 'momentum');
    assert.equal(readdirSync(b).sort(), ['checkpoint.safetensors', 'log.jsonl', 'optimizer-epoch2.safetensors'], 'older optimizer files are deleted');
    if (model === 'tinyten') assert.is(straight.get('layers.0.bn.num_batches_tracked')!.dtype, 'I64');

    // log.jsonl: one record per epoch, the same numbers either way (timings aside).
    const logA = readLog(a);
    assert.equal(logA.map(withoutTiming), readLog(b).map(withoutTiming), 'log.jsonl of the resumed run');
    assert.equal(logA.map((l) => l.epoch), [1, 2]);
    const schedule = tatroSchedule(0.1);
    logA.forEach((l, e) => {
      assert.equal(Object.keys(l), ['epoch', 'train_loss', 'train_acc', 'test_loss', 'test_acc', 'lr', 'seconds', 'images_per_s']);
      assert.is(l.lr, schedule(e));
      for (const v of Object.values(l)) assert.ok(Number.isFinite(v) && v >= 0, `${JSON.stringify(l)}`);
      assert.ok(l.train_acc <= 1 && l.test_acc <= 1);
      // Accuracies are counts over 192 training and 64 test images.
      assert.is(Math.round(l.train_acc * 192), l.train_acc * 192);
      assert.is(Math.round(l.test_acc * 64), l.test_acc * 64);
    });

    // The checkpoint's metadata rebuilds the model and records where training stood.
    const { meta } = await readCheckpoint(join(a, CHECKPOINT_FILE));
    assert.is(meta.model, model);
    assert.equal(meta.config, { inChannels: 3, numClasses: 10, width: recipe(model, 2).width, seed: 7 });
    assert.is(meta.dataset, 'synthetic');
    assert.is(meta.epoch, 2);
    assert.is(meta.seed, 7);
    assert.equal(meta.training, { ...recipe(model, 2) });
    assert.equal(meta.metrics, { ...logA[1]! });
  });
}

// ---------------------------------------------------------------------------------------------
// Loop-level tests with a model of our own: dropout, poisoned batches, memory.

/** Linear -> ReLU -> Dropout(0.5) -> Linear on flattened 3x32x32 images. */
class DropNet extends Module {
  readonly net: Sequential;
  /** Set by a test: the next forward's logits get a NaN (the loss of that step is NaN). */
  poisonNext = false;
  constructor(seed: number) {
    super();
    const generator = new E.Generator(seed);
    this.net = this.registerModule('net', new Sequential(new Linear(3072, 24, { generator }), new ReLU(), new Dropout(0.5, generator), new Linear(24, 10, { generator })));
  }
  forward(x: E.Tensor): E.Tensor {
    const logits = this.net.forward(E.flatten(x, 1));
    if (!this.poisonNext) return logits;
    this.poisonNext = false;
    return E.add(logits, E.tensor(Float32Array.of(NaN), []));
  }
}

const trainSet = subset(syntheticDataset({ n: 150, seed: 3 }), 0, 150);
const testSet = syntheticDataset({ n: 40, seed: 3, split: 'test' });
const loaders = () => ({
  train: new DataLoader(trainSet, { batchSize: 32, shuffle: true, seed: 5 }), // 5 steps, the last of 22 images
  test: new DataLoader(testSet, { batchSize: 16 }),
});

function setup(): { model: DropNet; optimizer: SGD } {
  const model = E.tidy(() => new DropNet(11));
  return { model, optimizer: new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 }) };
}

const META: Omit<CheckpointMetadata, 'epoch' | 'generators'> = { model: 'mlp', config: { inChannels: 3, numClasses: 10, width: 1, seed: 11 }, dataset: 'synthetic', seed: 5, training: {} };
const metaOf = (model: Module, epoch: number): CheckpointMetadata => ({
  ...META,
  epoch,
  generators: [...new Set(model.namedModules().flatMap(([, m]) => (m instanceof Dropout ? [m.generator] : [])))].map((g) => ({ seed: g.seed, offset: g.offset })),
});

async function weights(model: Module): Promise<Float32Array[]> {
  return Promise.all(model.parameters().map(async (p) => await p.toArray('f32')));
}

function release(...runs: { model: Module; optimizer: SGD }[]): void {
  for (const r of runs) {
    r.optimizer.dispose();
    r.model.dispose();
  }
}

test('dropout: a resumed run restores the generator offsets and matches the straight run bit for bit', async () => {
  const d = join(dir, 'dropnet');
  const straight = setup();
  await trainLoop({ ...straight, ...loaders(), schedule: tatroSchedule(0.05), epochs: 2, readEvery: 3 });

  const first = setup();
  await trainLoop({ ...first, ...loaders(), schedule: tatroSchedule(0.05), epochs: 1, readEvery: 3, onEpochEnd: (log) => saveTrainingState(d, first.model, first.optimizer, metaOf(first.model, log.epoch)) });
  release(first);

  const resume = async (restoreGenerators: boolean) => {
    const run = setup();
    const file = await readCheckpoint(join(d, CHECKPOINT_FILE));
    if (!restoreGenerators) file.meta.generators = file.meta.generators.map((g) => ({ ...g, offset: 0 }));
    loadInto(run.model, file, 'checkpoint');
    await loadOptimizerState(d, 1, run.optimizer);
    await trainLoop({ ...run, ...loaders(), schedule: tatroSchedule(0.05), epochs: 2, startEpoch: 1, readEvery: 3 });
    return run;
  };
  const resumed = await resume(true);
  const want = await weights(straight.model);
  const got = await weights(resumed.model);
  want.forEach((w, i) => assert.ok(Buffer.from(w.buffer).equals(Buffer.from(got[i]!.buffer)), `parameter ${i} differs after resume`));

  // Without the offsets the masks repeat epoch 1's and the weights differ: the test can fail.
  const stale = await resume(false);
  const other = await weights(stale.model);
  assert.ok(want.some((w, i) => !Buffer.from(w.buffer).equals(Buffer.from(other[i]!.buffer))), 'stale dropout offsets should change the result');
  release(straight, resumed, stale);
});

/** Trains 3 epochs of 5 steps, calling `poison` before the step at (0-based) epoch 1, index 2. */
async function divergingRun(d: string, poison: (run: ReturnType<typeof setup>, x: E.Tensor) => E.Tensor) {
  const run = setup();
  const { train, test: testLoader } = loaders();
  const source: BatchSource = {
    length: train.length,
    batch: (epoch, i) => {
      const b = train.batch(epoch, i);
      return epoch === 1 && i === 2 ? { x: poison(run, b.x), y: b.y } : b;
    },
  };
  let error: unknown = null;
  const epochs: number[] = [];
  try {
    await trainLoop({
      ...run,
      train: source,
      test: testLoader,
      schedule: () => 0.05,
      epochs: 3,
      readEvery: 4, // step 3 lies inside the first window of epoch 2
      onEpochEnd: async (log) => {
        epochs.push(log.epoch);
        await saveTrainingState(d, run.model, run.optimizer, metaOf(run.model, log.epoch));
      },
    });
  } catch (e) {
    error = e;
  }
  assert.instance(error, TrainingDivergedError, String(error));
  assert.not.match((error as Error).message, '\n');
  assert.equal(epochs, [1], 'epochs finished');
  // The checkpoint of epoch 1 and its optimizer file are whole, loadable and finite.
  assert.equal(readdirSync(d).sort(), ['checkpoint.safetensors', 'optimizer-epoch1.safetensors']);
  const file = await readCheckpoint(join(d, CHECKPOINT_FILE));
  assert.is(file.meta.epoch, 1);
  const fresh = setup();
  loadInto(fresh.model, file, 'checkpoint');
  await loadOptimizerState(d, 1, fresh.optimizer);
  assert.is(await firstNonFinite(fresh.model), null);
  for (const w of await weights(fresh.model)) assert.ok(w.every(Number.isFinite), 'checkpointed weights are finite');
  assert.ok(Number.isFinite((await evaluate(fresh.model, testLoader)).loss));
  release(run, fresh);
  return error as TrainingDivergedError;
}

test('a NaN loss stops the run at its exact epoch and step; the last checkpoint stays loadable', async () => {
  const err = await divergingRun(join(dir, 'nan-loss'), (run, x) => {
    run.model.poisonNext = true;
    return x;
  });
  assert.is(err.epoch, 2);
  assert.is(err.step, 3);
  assert.match(err.message, 'training loss is NaN at epoch 2, step 3 of 5');
});

test('a NaN input stops the run at its step: ReLU propagates NaN as PyTorch does', async () => {
  const err = await divergingRun(join(dir, 'nan-input'), (_, x) => {
    const mask = E.tensor(Float32Array.from({ length: x.size }, (_, k) => (k === 17 ? NaN : 1)), x.shape);
    return E.mul(x, mask);
  });
  assert.is(err.epoch, 2);
  assert.ok(err.step !== null, 'the step is named');
});

test('firstNonFinite names the first parameter or buffer holding NaN or infinity', async () => {
  const run = setup();
  assert.is(await firstNonFinite(run.model), null);
  const [name, weight] = [...run.model.stateDict()].find(([, t]) => t.dtype === 'f32' && t.size > 1)!;
  const poisoned = E.tensor(Float32Array.from({ length: weight.size }, (_, k) => (k === 1 ? Infinity : 0)), weight.shape);
  E.runtime().stream.copy(poisoned.buffer, 0, weight.buffer, 0, weight.bytes);
  poisoned.dispose();
  assert.is(await firstNonFinite(run.model), name);
  release(run);
});

test('memory: the pool holds the same bytes after every epoch and allocates nothing new after the first two', async () => {
  const before = E.runtime().pool.getStats().inUse;
  const run = setup();
  const stats: ReturnType<E.Runtime['pool']['getStats']>[] = [];
  await trainLoop({ ...run, ...loaders(), schedule: () => 0.05, epochs: 5, readEvery: 2, onEpochEnd: () => void stats.push(E.runtime().pool.getStats()) });
  const inUse = stats.map((s) => s.inUse);
  assert.ok(inUse.every((b) => b === inUse[0]), `bytes in use after each epoch: ${inUse.join(', ')}`);
  assert.is(stats[4]!.creations, stats[1]!.creations, `buffers created by epochs 3-5 (${stats.map((s) => s.creations).join(', ')})`);
  release(run);
  assert.is(E.runtime().pool.getStats().inUse, before, 'everything is freed after the loop');
});

test('evaluate(): mean cross-entropy and accuracy equal a float64 reference over ragged batches', async () => {
  const run = setup();
  run.model.eval();
  const loader = new DataLoader(testSet, { batchSize: 16 }); // 16, 16, 8
  const xs: Float32Array[] = [];
  const ys: Int32Array[] = [];
  for (let i = 0; i < loader.length; i++) {
    const { x, y } = loader.batch(0, i);
    const logits = E.noGrad(() => run.model.forward(x));
    xs.push(await logits.toArray('f32'));
    ys.push(await y.toArray('i32'));
    for (const t of [x, y, logits]) t.dispose();
  }
  let loss = 0;
  let correct = 0;
  xs.forEach((logits, b) => {
    const rows = ys[b]!.length;
    const lp = logSoftmaxRef(logits, rows, 10);
    for (let r = 0; r < rows; r++) {
      const label = ys[b]![r]!;
      loss -= lp[r * 10 + label]!;
      const row = Array.from(logits.subarray(r * 10, r * 10 + 10));
      if (row.indexOf(Math.max(...row)) === label) correct++;
    }
  });
  run.model.train();
  const result = await evaluate(run.model, loader);
  assert.is(result.images, 40);
  assert.ok(Math.abs(result.loss - loss / 40) <= 1e-5 * Math.abs(loss / 40), `loss ${result.loss}, reference ${loss / 40} (seed ${TEST_SEED})`);
  assert.is(result.accuracy, correct / 40);
  assert.ok(run.model.training, 'evaluate() restores training mode');
  release(run);
});

test('loading checks names, shapes and dropout generators, each a one-line CheckpointError', async () => {
  const d = join(dir, 'load');
  const run = setup();
  await saveTrainingState(d, run.model, run.optimizer, metaOf(run.model, 0));
  const expectError = async (edit: (f: Awaited<ReturnType<typeof readCheckpoint>>) => void, ...parts: string[]) => {
    const file = await readCheckpoint(join(d, CHECKPOINT_FILE));
    edit(file);
    try {
      loadInto(run.model, file, 'ckpt');
    } catch (e) {
      assert.instance(e, CheckpointError);
      const msg = (e as Error).message;
      assert.not.match(msg, '\n');
      for (const p of parts) assert.ok(msg.includes(p), `'${msg}' should mention '${p}'`);
      return;
    }
    assert.unreachable(`expected an error mentioning ${parts.join(', ')}`);
  };
  await expectError((f) => f.tensors.delete('net.3.bias'), 'lacks 1 tensor', "'net.3.bias'");
  await expectError((f) => f.tensors.set('net.9.weight', f.tensors.get('net.3.bias')!), 'unexpected', "'net.9.weight'");
  await expectError((f) => f.tensors.set('net.3.bias', { dtype: 'F32', shape: [11], data: new Float32Array(11) }), "'net.3.bias'", 'f32[10]', 'f32[11]');
  await expectError((f) => (f.meta.generators = []), 'dropout generator');
  await expectError((f) => (f.meta.generators = [{ seed: 99, offset: 0 }]), 'seed 99');
  // The optimizer file must be the checkpoint's epoch's.
  try {
    await loadOptimizerState(d, 3, run.optimizer);
    assert.unreachable('expected an error');
  } catch (e) {
    assert.instance(e, CheckpointError);
    assert.match((e as Error).message, 'optimizer-epoch3.safetensors: file not found');
  }
  release(run);
});

test('resumeOptions: only the number of epochs (for epoch-free schedules) and the data folder may change', () => {
  const saved = recipe('mlp', 3);
  assert.equal(resumeOptions(saved, { epochs: 9, dataDir: '/elsewhere', lr: saved.lr, trainSubset: undefined }), { ...saved, epochs: 9, dataDir: '/elsewhere' });
  assert.throws(() => resumeOptions(saved, { lr: 0.5 }), /cannot resume with lr 0\.5: the checkpoint was trained with 0\.1/);
  assert.throws(() => resumeOptions(saved, { model: 'tinyten' }), /model "tinyten".*"mlp"/);
  assert.throws(() => resumeOptions({ ...saved, schedule: 'cosine' }, { epochs: 9 }), /cosine schedule depends/);
  assert.ok(existsSync(dir));
});

test('createModel keeps no temporaries of the initialization (GoogLeNet redraws truncated normals)', () => {
  const before = E.runtime().pool.getStats().inUse;
  const model = createModel('googlenet', { inChannels: 3, numClasses: 10, width: 1 / 32, seed: 1 });
  model.dispose();
  assert.is(E.runtime().pool.getStats().inUse, before);
});

test.run();
