// The demo's alignment stage: the paper's core effect at the smallest scale that shows it.
// Two MLPs trained from different seeds on Fashion-MNIST; B aligned to A by activation
// correlation (Tatro et al. 2020, section 1); the straight lines A-B and A-P(B) evaluated on the
// test set. Alignment should raise the matched correlation of every hidden layer and lower the
// loss barrier on the line (the curves of the paper come next in the project).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { linearBarrier, minimum } from '../align/barrier.js';
import { alignModels, disposeStateDict } from '../align/index.js';
import { evaluateLine, linspace } from '../align/interpolate.js';
import { CHECKPOINT_FILE, loadModel } from '../nn/checkpoint/model.js';
import { DataLoader, FASHION_MNIST_ROOT, loadDataset, subset } from '../nn/data/index.js';
import { createModel } from '../nn/models/index.js';
import { paperDefaults, runTraining, type TrainingOptions } from '../nn/train-run.js';

export interface AlignDemoOptions {
  out: string;
  epochs: number;
  points: number;
  trainSubset?: number;
}

/** Trains (or reuses) one endpoint in `dir`. */
async function endpoint(options: TrainingOptions, dir: string): Promise<void> {
  if (existsSync(join(dir, CHECKPOINT_FILE))) {
    console.log(`  reusing ${dir} (delete it to retrain)`);
    return;
  }
  const started = performance.now();
  const result = await runTraining(options, dir);
  const last = result.logs[result.logs.length - 1];
  const acc = last ? `${(last.test_acc * 100).toFixed(2)}%` : '?';
  console.log(`  ${dir}: seed ${options.seed}, ${options.epochs} epoch(s), test accuracy ${acc} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
}

export function fashionMnistAvailable(): boolean {
  return existsSync(join(FASHION_MNIST_ROOT, 'train-images-idx3-ubyte.gz'));
}

export async function alignDemo(opts: AlignDemoOptions): Promise<number> {
  const recipe: TrainingOptions = {
    ...paperDefaults('mlp', 'fashion-mnist'),
    epochs: opts.epochs,
    lr: 0.05,
    schedule: 'constant',
    trainSubset: opts.trainSubset,
  };
  console.log(`\nalignment on Fashion-MNIST: two MLPs (${recipe.epochs} epoch(s), Nesterov SGD lr ${recipe.lr}), seeds 1 and 2`);
  const dirA = join(opts.out, 'mlp-seed1');
  const dirB = join(opts.out, 'mlp-seed2');
  await endpoint({ ...recipe, seed: 1 }, dirA);
  await endpoint({ ...recipe, seed: 2 }, dirB);

  const { model: a } = await loadModel(join(dirA, CHECKPOINT_FILE));
  const { model: b } = await loadModel(join(dirB, CHECKPOINT_FILE));
  const train = loadDataset('fashion-mnist', 'train');
  const test = loadDataset('fashion-mnist', 'test');
  // The paper's alignment data: the first 10,000 training images, test transform, batch 512.
  const alignLoader = new DataLoader(subset(train, 0, 10000), { batchSize: 512 });
  const aligned = await alignModels(a, b, alignLoader);
  console.log('  mean correlation of matched units (first 10,000 training images):');
  for (const l of aligned.layers) {
    console.log(`    ${l.layer.padEnd(12)} ${String(l.units).padStart(4)} units   before ${l.before.toFixed(3)}   after ${l.after.toFixed(3)}`);
  }

  // Straight lines A-B and A-P(B); an MLP has no batch norm, so nothing is re-estimated.
  const ts = linspace(opts.points);
  const testLoader = new DataLoader(test, { batchSize: 1000 });
  const probe = createModel('mlp', { inChannels: 1, numClasses: 10 });
  probe.eval();
  const stateA = a.stateDict();
  const plain = await evaluateLine(probe, stateA, b.stateDict(), ts, { bn: null, test: testLoader });
  const viaAligned = await evaluateLine(probe, stateA, aligned.state, ts, { bn: null, test: testLoader });
  console.log('  test accuracy along the straight line (1 - t) A + t B:');
  console.log(`    ${'t'.padEnd(6)} ${'A-B'.padStart(8)} ${'A-P(B)'.padStart(8)}`);
  ts.forEach((t, i) => {
    console.log(`    ${t.toFixed(3).padEnd(6)} ${(plain[i]!.accuracy * 100).toFixed(2).padStart(7)}% ${(viaAligned[i]!.accuracy * 100).toFixed(2).padStart(7)}%`);
  });
  const barrier = (points: typeof plain) => linearBarrier(ts, points.map((p) => p.loss)).value;
  const worst = (points: typeof plain) => minimum(ts, points.map((p) => p.accuracy)).value * 100;
  const [bPlain, bAligned] = [barrier(plain), barrier(viaAligned)];
  console.log(`  loss barrier (max over t of L(t) above the endpoints' line): A-B ${bPlain.toFixed(3)}, A-P(B) ${bAligned.toFixed(3)}`);
  console.log(`  minimum accuracy on the line: A-B ${worst(plain).toFixed(2)}%, A-P(B) ${worst(viaAligned).toFixed(2)}%`);
  console.log(bAligned < bPlain ? '  alignment lowered the barrier, as the paper reports' : '  alignment did NOT lower the barrier on this run');

  disposeStateDict(aligned.state);
  for (const m of [a, b, probe]) m.dispose();
  return bAligned < bPlain ? 0 : 1;
}
