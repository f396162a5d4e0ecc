// `neuralign train`: flags -> TrainingOptions (the paper's defaults for what is not given), then
// runTraining with a progress reporter. Exit 0 when the run finishes; errors (bad data, a corrupt
// checkpoint, a diverged loss) are one line from main.ts, exit 1.
import { runtime } from '../engine/index.js';
import { DATASET_NAMES } from '../nn/data/index.js';
import { MODEL_NAMES, type ModelName } from '../nn/models/index.js';
import { RunStoppedError, TrainingDivergedError } from '../nn/train.js';
import { SCHEDULE_NAMES, paperDefaults, resumeOptions, runTraining, savedOptions, type ScheduleName, type TrainingOptions } from '../nn/train-run.js';
import { UsageError, choice, nonNegative, positiveInteger, type FlagSpec, type Flags } from './args.js';
import { defineCommand } from './command.js';
import { ProgressReporter } from './progress.js';
import { ADVERSARIAL_TRAINING } from '../nn/pgd.js';
import { PGD_FLAGS, adversarialFromFlags, describePgd } from './pgd-flags.js';
import { stopSignal } from './signals.js';

// Recipe flags have no parser default: an absent flag means "the paper's default" for a new run
// and "the checkpoint's value" for --resume.
const spec = {
  model: { type: 'string', help: `architecture: ${MODEL_NAMES.join(', ')}` },
  dataset: { type: 'string', help: `data set: ${DATASET_NAMES.join(', ')}` },
  'data-dir': { type: 'string', help: 'data folder (CIFAR: the folder holding cifar-10-batches-bin/; MNIST-like: default /usr/share/datasets/NAME)' },
  out: { type: 'string', help: 'output folder: checkpoint.safetensors, optimizer-epoch{E}.safetensors, log.jsonl (required)' },
  epochs: { type: 'number', help: 'epochs to train in all (default 250)' },
  'batch-size': { type: 'number', help: 'batch size (default 128; 64 for tinyten on cifar10)' },
  lr: { type: 'number', help: 'initial learning rate (default 0.1)' },
  wd: { type: 'number', help: 'weight decay (default 5e-4)' },
  momentum: { type: 'number', help: 'SGD momentum (default 0.9)' },
  nesterov: { type: 'boolean', help: 'Nesterov momentum (the default)' },
  'no-nesterov': { type: 'boolean', help: 'plain momentum' },
  schedule: { type: 'string', help: `learning-rate schedule: ${SCHEDULE_NAMES.join(', ')} (default tatro: lr 0.5^floor(e/20) 0.9996^e; step: x0.1 every epochs/3)` },
  seed: { type: 'number', help: 'seed of the initialization, data order and augmentation (default 1)' },
  width: { type: 'number', help: 'channel width multiplier (default 1)' },
  'train-subset': { type: 'number', help: 'train on the first N training images' },
  'test-subset': { type: 'number', help: 'evaluate on the first N test images' },
  'no-augment': { type: 'boolean', help: 'no augmentation (CIFAR data sets are augmented by default, MNIST-like ones never)' },
  resume: { type: 'boolean', help: "continue from --out's checkpoint (same recipe; --epochs may grow)" },
  'recompute-bn': { type: 'boolean', help: 'after the last epoch, recompute the batch-norm running statistics on one pass of the training data (torch.optim.swa_utils.update_bn) and save them' },
  adversarial: { type: 'boolean', help: 'adversarial training on PGD examples only (Madry et al.; Tatro et al. section 4): default 200 epochs, garipov schedule, --eps 8/255 --step 2/255 --steps 5' },
  ...PGD_FLAGS,
  'log-every': { type: 'number', help: 'read the loss every K batches: progress, plain log lines, NaN checks', default: 50 },
} satisfies FlagSpec;

async function run(flags: Flags<typeof spec>): Promise<number> {
  if (!flags.out) throw new UsageError('--out DIR is required');
  if (flags.nesterov && flags['no-nesterov']) throw new UsageError('--nesterov and --no-nesterov contradict each other');
  const given: Partial<TrainingOptions> = {
    model: choice(flags.model, MODEL_NAMES, 'model'),
    dataset: choice(flags.dataset, DATASET_NAMES, 'dataset'),
    dataDir: flags['data-dir'],
    epochs: positiveInteger(flags.epochs, 'epochs'),
    batchSize: positiveInteger(flags['batch-size'], 'batch-size'),
    lr: nonNegative(flags.lr, 'lr'),
    weightDecay: nonNegative(flags.wd, 'wd'),
    momentum: nonNegative(flags.momentum, 'momentum'),
    // Nesterov needs momentum: --momentum 0 alone means plain SGD.
    nesterov: flags['no-nesterov'] ? false : flags.nesterov ? true : flags.momentum === 0 ? false : undefined,
    schedule: choice<ScheduleName>(flags.schedule, SCHEDULE_NAMES, 'schedule'),
    seed: flags.seed,
    width: flags.width,
    augment: flags['no-augment'] ? false : undefined,
    trainSubset: positiveInteger(flags['train-subset'], 'train-subset'),
    testSubset: positiveInteger(flags['test-subset'], 'test-subset'),
    ...adversarialFromFlags(flags),
  };
  if (given.seed !== undefined && !(Number.isInteger(given.seed) && given.seed >= 0 && given.seed < 2 ** 32)) throw new UsageError(`--seed needs an integer in 0..2^32-1, got ${given.seed}`);
  if (given.width !== undefined && !(given.width > 0)) throw new UsageError(`--width needs a number > 0, got ${given.width}`);
  const logEvery = positiveInteger(flags['log-every'], 'log-every')!;

  let options: TrainingOptions;
  if (flags.resume) {
    options = resumeOptions((await savedOptions(flags.out)).options, given);
  } else {
    if (!given.model) throw new UsageError('--model is required');
    if (!given.dataset) throw new UsageError('--dataset is required');
    const defaults = paperDefaults(given.model as ModelName, given.dataset);
    options = { ...defaults, ...(given.adversarial ? ADVERSARIAL_TRAINING : {}) };
    for (const [k, v] of Object.entries(given)) if (v !== undefined) (options as unknown as Record<string, unknown>)[k] = v;
  }

  const progress = new ProgressReporter(process.stderr);
  let result;
  try {
    result = await runTraining(options, flags.out, {
      resume: flags.resume,
      readEvery: logEvery,
      recomputeBn: flags['recompute-bn'],
      stop: stopSignal(),
      hooks: {
        onMessage: (line) => console.error(line),
        onStart: (s) => {
          const o = s.options;
          if (s.startEpoch >= o.epochs) return; // nothing to do: said once the run returns
          const rt = runtime();
          console.error(
            `${s.startEpoch > 0 ? `resuming at epoch ${s.startEpoch + 1}: ` : ''}${o.model} (${s.parameters.toLocaleString('en-US')} parameters) on ${o.dataset}: ` +
              `${s.trainImages} train / ${s.testImages} test images, batch ${o.batchSize}, ${o.epochs} epochs, lr ${o.lr} (${o.schedule}), ` +
              `wd ${o.weightDecay}, momentum ${o.momentum}${o.nesterov ? ' nesterov' : ''}, ${o.augment ? 'augmented' : 'no augmentation'}, seed ${o.seed}; ` +
              (o.adversarial ? `adversarial: ${describePgd({ eps: o.pgdEps!, step: o.pgdStep!, steps: o.pgdSteps! })} examples only; ` : '') +
              `${rt.info.description} via ${rt.info.backend}`,
          );
        },
        onProgress: (p) => progress.step(p),
        onEpochEnd: (log) => progress.epoch(log, options.epochs),
      },
    });
  } catch (e) {
    progress.close();
    if (e instanceof TrainingDivergedError) {
      const saved = e.epoch - 1;
      const kept = saved > 0 ? `the checkpoint of epoch ${saved} in ${flags.out} is kept` : 'no checkpoint was written';
      throw new Error(`${e.message}; ${kept}`);
    }
    if (e instanceof RunStoppedError) {
      const saved = e.epoch - 1;
      const how = saved > 0
        ? `${flags.out} holds the checkpoint of epoch ${saved}; continue with: neuralign train --resume --out ${flags.out}`
        : `no checkpoint was written; rerun the same command to start again`;
      throw new RunStoppedError(e.signal, `${e.where}; ${how}`, e.epoch);
    }
    throw e;
  }
  const last = result.logs[result.logs.length - 1];
  if (!last) {
    console.log(`${flags.out}: already trained for ${result.epoch} epochs (--epochs ${options.epochs}); nothing to do`);
    return 0;
  }
  console.log(
    `trained ${options.model} on ${options.dataset} to epoch ${last.epoch}: test accuracy ${(100 * last.test_acc).toFixed(2)}%, ` +
      `test loss ${last.test_loss.toFixed(4)}; checkpoint ${result.checkpoint}`,
  );
  const r = result.recomputedBn;
  if (r) {
    console.log(`batch-norm statistics recomputed on ${r.images} training images: test accuracy ${(100 * r.testAccuracy).toFixed(2)}%, test loss ${r.testLoss.toFixed(4)} (saved in the checkpoint)`);
  }
  return 0;
}

export const train = defineCommand({
  usage: 'neuralign train --model M --dataset D --out DIR [options]',
  description:
    'Trains an endpoint model with the recipe of Tatro et al. 2020, section 5 (Nesterov SGD, lr 0.1, weight decay 5e-4,\n' +
    'the tatro schedule, 250 epochs), evaluating on the test set and saving a checkpoint after every epoch.',
  spec,
  // runTraining starts the device and tunes matmul itself, after the data has loaded, so a wrong
  // --data-dir fails before the device starts.
  device: false,
  run,
});
