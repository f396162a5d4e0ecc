// train --recompute-bn (runTraining's recomputeBn): after the last epoch the BN running statistics
// are recomputed on one pass of the training loader and saved; the weights are those of the same
// run without it, bit for bit, and the statistics are those recomputeBatchNorm gives on them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CHECKPOINT_FILE, loadModel, readCheckpoint } from '../../src/nn/checkpoint/model.js';
import { DataLoader, firstImages, loadDataset } from '../../src/nn/data/index.js';
import { paperDefaults, runTraining } from '../../src/nn/train-run.js';
import { recomputeBatchNorm } from '../../src/nn/update-bn.js';
import { setupEngine } from '../helpers.js';

const test = suite('recompute-bn');
let dir = '';
test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-recompute-bn-'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('the saved statistics are recomputed at the final weights; the weights are unchanged', async () => {
  const options = { ...paperDefaults('tinyten', 'synthetic'), epochs: 1, width: 0.25, batchSize: 32, trainSubset: 96, testSubset: 32, seed: 3 };
  const [plain, recomputed] = [join(dir, 'plain'), join(dir, 'recomputed')];
  await runTraining(options, plain);
  const result = await runTraining(options, recomputed, { recomputeBn: true });
  assert.is(result.recomputedBn!.images, 96);
  const [p, r] = [await readCheckpoint(join(plain, CHECKPOINT_FILE)), await readCheckpoint(join(recomputed, CHECKPOINT_FILE))];
  const hex = (t: { data: ArrayBufferView }) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');
  let statsDiffer = false;
  for (const [name, t] of p.tensors) {
    const same = hex(t) === hex(r.tensors.get(name)!);
    if (name.includes('running_') || name.includes('num_batches')) statsDiffer ||= !same;
    else assert.ok(same, `${name}: the weights are the run's own`);
  }
  assert.ok(statsDiffer, 'the running statistics changed');
  assert.type(r.meta.metrics?.test_acc_recomputed_bn, 'number');

  // The same recomputation by hand on the plain run's model gives the saved statistics.
  const { model } = await loadModel(join(plain, CHECKPOINT_FILE));
  const train = new DataLoader(firstImages(loadDataset('synthetic', 'train'), 96, 'n'), { batchSize: 32, shuffle: true, augment: null, seed: 3 });
  await recomputeBatchNorm(model, train, { epoch: 1 });
  for (const [name, t] of model.stateDict()) {
    if (!name.includes('running_')) continue;
    assert.equal(Array.from(await t.toArray()), Array.from(new Float32Array(r.tensors.get(name)!.data.buffer, r.tensors.get(name)!.data.byteOffset, t.size)), name);
  }
  model.dispose();
});

test.run();
