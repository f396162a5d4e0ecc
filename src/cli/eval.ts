// `neuralign eval`: loss and accuracy of a checkpoint on a test set. The data set, data folder and
// batch size default to the checkpoint's training options, so evaluating a training checkpoint
// repeats the last test evaluation of its run (on the full test set unless --test-subset).
import { init, tuneMatmul } from '../engine/index.js';
import { loadModel } from '../nn/checkpoint/model.js';
import { DATASET_NAMES, DataError, DataLoader, loadDataset, subset } from '../nn/data/index.js';
import { evaluate } from '../nn/evaluate.js';
import { UsageError, helpText, parseArgs, positiveInteger, type FlagSpec } from './args.js';

const spec = {
  checkpoint: { type: 'string', help: 'a checkpoint written by `neuralign train` (required)' },
  dataset: { type: 'string', help: `data set: ${DATASET_NAMES.join(', ')} (default: the checkpoint's)` },
  'data-dir': { type: 'string', help: "data folder (default: the checkpoint's training data folder)" },
  'batch-size': { type: 'number', help: "batch size (default: the checkpoint's training batch size)" },
  'test-subset': { type: 'number', help: 'evaluate on the first N test images' },
  json: { type: 'boolean', help: 'print one JSON object' },
  help: { type: 'boolean', help: 'show this help' },
} satisfies FlagSpec;

export const evalHelp = helpText('neuralign eval --checkpoint FILE [--dataset D] [--data-dir DIR] [--batch-size B] [--json]', "Test loss and accuracy of a checkpoint (BN in eval mode, no augmentation).", spec);

export async function evalCommand(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(argv, spec);
  if (flags.help) {
    console.log(evalHelp);
    return 0;
  }
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (!flags.checkpoint) throw new UsageError('--checkpoint FILE is required');
  const batchFlag = positiveInteger(flags['batch-size'] as number | undefined, 'batch-size');
  const subsetFlag = positiveInteger(flags['test-subset'] as number | undefined, 'test-subset');
  if (flags.dataset !== undefined && !DATASET_NAMES.includes(flags.dataset as never)) throw new UsageError(`--dataset '${flags.dataset}' is not one of ${DATASET_NAMES.join(', ')}`);

  await init();
  await tuneMatmul();
  const { model, meta } = await loadModel(flags.checkpoint);
  try {
    const training = meta.training as { dataDir?: string; batchSize?: number };
    const dataset = flags.dataset ?? meta.dataset;
    const dataDir = flags['data-dir'] ?? (dataset === meta.dataset ? training.dataDir : undefined);
    let data = loadDataset(dataset, 'test', dataDir);
    if (data.shape[1] !== meta.config.inChannels || data.classes !== meta.config.numClasses) {
      throw new DataError(
        `${data.name}: ${data.shape[1]}-channel images of ${data.classes} classes, the checkpoint's ${meta.model} takes ${meta.config.inChannels} channels and ${meta.config.numClasses} classes`,
      );
    }
    if (subsetFlag !== undefined) {
      if (subsetFlag > data.shape[0]) throw new DataError(`--test-subset ${subsetFlag}: ${data.name} has ${data.shape[0]} images`);
      data = subset(data, 0, subsetFlag);
    }
    const batchSize = batchFlag ?? training.batchSize ?? 128;
    const result = await evaluate(model, new DataLoader(data, { batchSize }));
    if (flags.json) {
      console.log(JSON.stringify({ checkpoint: flags.checkpoint, model: meta.model, epoch: meta.epoch, dataset, images: result.images, loss: result.loss, accuracy: result.accuracy }));
    } else {
      console.log(
        `${flags.checkpoint} (${meta.model}, epoch ${meta.epoch}) on ${data.name}, ${result.images} images: ` +
          `loss ${result.loss.toFixed(4)}, accuracy ${(100 * result.accuracy).toFixed(2)}%`,
      );
    }
    return 0;
  } finally {
    model.dispose();
  }
}
