// A training run in an output folder: the recipe (paper section 5 defaults per model and data
// set), the data, the model and optimizer, then trainLoop with a checkpoint and a log.jsonl line
// after every epoch, and --resume from the folder's last checkpoint.
//
//   DIR/checkpoint.safetensors          weights after the last finished epoch (checkpoint/model.ts)
//   DIR/optimizer-epoch{E}.safetensors  momentum buffers of the same epoch
//   DIR/log.jsonl                       one EpochLog per line
//
// The folder's rules (its lock, the order of the writes, what a resume or a rerun after a kill
// finds and drops) are RunFolder's (run-folder.ts), shared with curve training.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { init } from '../engine/index.js';
import { CheckpointError } from './checkpoint/safetensors.js';
import {
  CHECKPOINT_FILE, checkFinite, generatorStates, loadInto, saveModel, readCheckpoint,
  type CheckpointFile, type CheckpointMetadata,
} from './checkpoint/model.js';
import { CIFAR_AUGMENT, DataLoader, firstImages, loadDataset } from './data/index.js';
import { createModel, type ModelName } from './models/index.js';
import { SGD, cosineSchedule, garipovSchedule, stepSchedule, tatroSchedule, type LrSchedule } from './optim.js';
import { evaluate } from './evaluate.js';
import { LOG_FILE, RunFolder } from './run-folder.js';
import { trainLoop, type EpochLog, type StepProgress } from './train.js';
import { adversarialObjective, inputSpace } from './pgd.js';
import { batchNormLayers, recomputeBatchNorm } from './update-bn.js';
import { describeTuning, tuneKernels } from './tune-kernels.js';

export const SCHEDULE_NAMES = ['tatro', 'garipov', 'step', 'cosine', 'constant'] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

/** Everything that determines a run's weights (stored in the checkpoint's metadata). */
export interface TrainingOptions {
  model: ModelName;
  dataset: string;
  /** Data folder (not part of the recipe: a resumed run may find the data elsewhere). */
  dataDir?: string;
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  momentum: number;
  nesterov: boolean;
  schedule: ScheduleName;
  seed: number;
  width: number;
  augment: boolean;
  /** Train (test) on the first N images only. */
  trainSubset?: number;
  testSubset?: number;
  /**
   * Madry et al.'s adversarial training (Tatro et al. section 4, `train --adversarial`): every
   * batch replaced by its PGD examples (nn/pgd.ts), eps and step in pixel units. Absent in a
   * standard run, so its recipe and metadata are as before.
   */
  adversarial?: boolean;
  pgdEps?: number;
  pgdStep?: number;
  pgdSteps?: number;
}

/**
 * The paper's endpoint recipe: Nesterov SGD, momentum 0.9, lr 0.1, weight decay 5e-4, the
 * 0.5^floor(e/20) * 0.9996^e schedule, 250 epochs, batch 128 (64 for TinyTen on CIFAR-10), and the
 * CIFAR augmentation on CIFAR data sets (none on MNIST-like ones, as the paper's code).
 */
export function paperDefaults(model: ModelName, dataset: string): TrainingOptions {
  return {
    model,
    dataset,
    epochs: 250,
    batchSize: model === 'tinyten' && dataset === 'cifar10' ? 64 : 128,
    lr: 0.1,
    weightDecay: 5e-4,
    momentum: 0.9,
    nesterov: true,
    schedule: 'tatro',
    seed: 1,
    width: 1,
    augment: dataset.startsWith('cifar'),
  };
}

export function makeSchedule(name: ScheduleName, lr0: number, epochs: number): LrSchedule {
  switch (name) {
    case 'tatro':
      return tatroSchedule(lr0);
    case 'garipov':
      return garipovSchedule(lr0, epochs);
    case 'step':
      return stepSchedule(lr0, Math.max(1, Math.ceil(epochs / 3)), 0.1);
    case 'cosine':
      return cosineSchedule(lr0, epochs);
    case 'constant':
      return () => lr0;
  }
}

/**
 * The options of a resumed run: the checkpoint's, with `given` (what the user asked for) allowed to
 * change only the data folder and the number of epochs (the latter not when the schedule depends
 * on it). Anything else that differs is an error naming it: the run would not continue the same
 * recipe.
 */
export function resumeOptions<T extends { schedule: ScheduleName; epochs: number; dataDir?: string }>(saved: T, given: Partial<T>): T {
  const out = { ...saved };
  for (const [key, value] of Object.entries(given) as [keyof T & string, unknown][]) {
    if (value === undefined || value === saved[key]) continue;
    const dependsOnEpochs = ['garipov', 'step', 'cosine'].includes(saved.schedule);
    if (key === 'dataDir' || (key === 'epochs' && !dependsOnEpochs)) {
      (out as Record<string, unknown>)[key] = value;
      continue;
    }
    const why = key === 'epochs' ? ` (the ${saved.schedule} schedule depends on the number of epochs)` : '';
    throw new Error(`cannot resume with ${key} ${JSON.stringify(value)}: the checkpoint was trained with ${JSON.stringify(saved[key] ?? null)}${why}`);
  }
  return out;
}

/** The training options stored in DIR's checkpoint. */
export async function savedOptions(dir: string): Promise<{ options: TrainingOptions; file: CheckpointFile }> {
  const path = join(dir, CHECKPOINT_FILE);
  if (!existsSync(path)) {
    const why = existsSync(join(dir, LOG_FILE)) ? ` (the run stopped before its first epoch was saved: rerun without --resume to start again)` : '';
    throw new Error(`${dir}: no ${CHECKPOINT_FILE} to resume from${why}`);
  }
  const file = await readCheckpoint(path);
  const training = file.meta.training;
  const types: Record<string, string> = { model: 'string', dataset: 'string', schedule: 'string', nesterov: 'boolean', augment: 'boolean' };
  for (const key of Object.keys(paperDefaults('mlp', 'synthetic'))) {
    if (typeof training[key] !== (types[key] ?? 'number')) {
      throw new CheckpointError(`${path}: its training options lack '${key}', so the run cannot be resumed`);
    }
  }
  return { options: training as unknown as TrainingOptions, file };
}

export interface RunHooks {
  /** What opening the folder did on its own (a stale lock taken over, a log without checkpoint cleared). */
  onMessage?: (line: string) => void;
  onStart?: (info: { parameters: number; trainImages: number; testImages: number; startEpoch: number; options: TrainingOptions }) => void;
  onProgress?: (p: StepProgress) => void;
  onEpochEnd?: (log: EpochLog) => void;
}

export interface RunResult {
  /** With recomputeBn: the images the BN statistics were recomputed on and the test result after. */
  recomputedBn?: { images: number; testLoss: number; testAccuracy: number };
  logs: EpochLog[];
  /** The checkpoint's epoch when the run ends. */
  epoch: number;
  checkpoint: string;
}

/**
 * Trains per `options` into folder `out`. With `resume`, continues from out's checkpoint (options
 * must be resumeOptions of the saved ones); without, `out` must not hold a checkpoint yet.
 */
export async function runTraining(
  options: TrainingOptions,
  out: string,
  opts: { resume?: boolean; readEvery?: number; hooks?: RunHooks; recomputeBn?: boolean; stop?: AbortSignal } = {},
): Promise<RunResult> {
  const hooks = opts.hooks ?? {};
  // The folder first: an unwritable --out or a second writer fails before any work.
  const folder = await RunFolder.open(out, { main: CHECKPOINT_FILE, what: 'a checkpoint', resume: !!opts.resume, onMessage: hooks.onMessage });
  try {
    return await trainIn(folder, options, opts);
  } finally {
    folder.close();
  }
}

async function trainIn(folder: RunFolder, options: TrainingOptions, opts: Parameters<typeof runTraining>[2] & {}): Promise<RunResult> {
  const hooks = opts.hooks ?? {};
  const out = folder.dir;
  const checkpointPath = folder.mainPath;
  let resumeFrom: CheckpointFile | null = null;
  if (opts.resume) {
    const { options: saved, file } = await savedOptions(out);
    options = resumeOptions(saved, options); // throws when the recipe differs
    resumeFrom = file;
  }

  const trainSet = firstImages(loadDataset(options.dataset, 'train', options.dataDir), options.trainSubset, 'train-subset');
  const testSet = firstImages(loadDataset(options.dataset, 'test', options.dataDir), options.testSubset, 'test-subset');
  await init();

  const config = { inChannels: trainSet.shape[1], numClasses: trainSet.classes, width: options.width, seed: options.seed };
  const model = createModel(options.model, config);
  // The fastest matmul kernel for this adapter and conv kernel for each layer (seconds on llvmpipe).
  const images = trainSet.shape[0] * Math.max(0, options.epochs - (resumeFrom?.meta.epoch ?? 0));
  hooks.onMessage?.(describeTuning(await tuneKernels(model, [options.batchSize, ...trainSet.shape.slice(1)], { images })));
  const optimizer = new SGD(model.parameters(), {
    lr: options.lr,
    momentum: options.momentum,
    weightDecay: options.weightDecay,
    nesterov: options.nesterov,
  });
  try {
    let startEpoch = 0;
    if (resumeFrom) {
      startEpoch = resumeFrom.meta.epoch;
      loadInto(model, resumeFrom, checkpointPath);
      await checkFinite(model, checkpointPath);
      await folder.resumeFrom(startEpoch, optimizer);
    }
    const train = new DataLoader(trainSet, { batchSize: options.batchSize, shuffle: true, augment: options.augment ? CIFAR_AUGMENT : null, seed: options.seed });
    const test = new DataLoader(testSet, { batchSize: options.batchSize });
    hooks.onStart?.({ parameters: model.parameterCount(), trainImages: trainSet.shape[0], testImages: testSet.shape[0], startEpoch, options });
    let epoch = startEpoch;
    let lastMeta = null as CheckpointMetadata | null; // set in onEpochEnd (TypeScript cannot see the callback assign it)
    const logs = await trainLoop({
      model,
      optimizer,
      schedule: makeSchedule(options.schedule, options.lr, options.epochs),
      train,
      test,
      epochs: options.epochs,
      startEpoch,
      readEvery: opts.readEvery,
      objective: options.adversarial ? adversarialObjective(model, inputSpace(train), { eps: options.pgdEps, step: options.pgdStep, steps: options.pgdSteps }, options.seed) : undefined,
      stop: opts.stop,
      onProgress: hooks.onProgress,
      onEpochEnd: async (log) => {
        const meta: CheckpointMetadata = {
          model: options.model,
          config,
          dataset: options.dataset,
          seed: options.seed,
          epoch: log.epoch,
          training: { ...options },
          generators: generatorStates(model),
          metrics: { ...log },
        };
        await folder.saveEpoch(log, optimizer, (path) => saveModel(path, model, meta));
        lastMeta = meta;
        epoch = log.epoch;
        hooks.onEpochEnd?.(log);
      },
    });
    let recomputed: RunResult['recomputedBn'];
    const finalMeta = lastMeta;
    if (opts.recomputeBn && finalMeta && batchNormLayers(model).length > 0) {
      // Short runs leave the running statistics behind the weights (issue 11's example: 29.8% with
      // them, 65.2% after recomputing): recompute them on one pass of the training loader at the
      // final weights (torch.optim.swa_utils.update_bn) and save the checkpoint again. Only the
      // running statistics change; a later --resume trains the same weights either way.
      const stats = await recomputeBatchNorm(model, train, { epoch: epoch });
      const after = await evaluate(model, test);
      const metrics = { ...finalMeta.metrics, bn_recomputed_images: stats.images, test_loss_recomputed_bn: after.loss, test_acc_recomputed_bn: after.accuracy };
      await saveModel(checkpointPath, model, { ...finalMeta, metrics });
      recomputed = { images: stats.images, testLoss: after.loss, testAccuracy: after.accuracy };
    }
    return { logs, epoch, checkpoint: checkpointPath, recomputedBn: recomputed };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}
