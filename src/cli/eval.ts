// `neuralign eval`: loss and accuracy of a checkpoint on a test set. The data set, data folder and
// batch size default to the checkpoint's training options, so evaluating a training checkpoint
// repeats the last test evaluation of its run (on the full test set unless --test-subset).
import { DATASET_NAMES, DataLoader, firstImages } from '../nn/data/index.js';
import { evaluate } from '../nn/evaluate.js';
import { UsageError, positiveInteger, type FlagSpec } from './args.js';
import { checkpointData, openCheckpoint } from './checkpoints.js';
import { defineCommand } from './command.js';

const spec = {
  checkpoint: { type: 'string', help: 'a checkpoint written by `neuralign train` (required)' },
  dataset: { type: 'string', help: `data set: ${DATASET_NAMES.join(', ')} (default: the checkpoint's)` },
  'data-dir': { type: 'string', help: "data folder (default: the checkpoint's training data folder)" },
  'batch-size': { type: 'number', help: "batch size (default: the checkpoint's training batch size)" },
  'test-subset': { type: 'number', help: 'evaluate on the first N test images' },
  json: { type: 'boolean', help: 'print one JSON object' },
} satisfies FlagSpec;

export const evalCommand = defineCommand({
  usage: 'neuralign eval --checkpoint FILE [--dataset D] [--data-dir DIR] [--batch-size B] [--json]',
  description: 'Test loss and accuracy of a checkpoint (BN in eval mode, no augmentation).',
  spec,
  async run(flags) {
    if (!flags.checkpoint) throw new UsageError('--checkpoint FILE is required');
    const batchFlag = positiveInteger(flags['batch-size'], 'batch-size');
    const testSubset = positiveInteger(flags['test-subset'], 'test-subset');
    if (flags.dataset !== undefined && !DATASET_NAMES.includes(flags.dataset as never)) throw new UsageError(`--dataset '${flags.dataset}' is not one of ${DATASET_NAMES.join(', ')}`);

    const { model, meta } = await openCheckpoint(flags.checkpoint);
    try {
      const dataset = flags.dataset ?? meta.dataset;
      const data = firstImages(checkpointData(meta, 'test', flags['data-dir'], dataset), testSubset, 'test-subset');
      const batchSize = batchFlag ?? (meta.training as { batchSize?: number }).batchSize ?? 128;
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
  },
});
