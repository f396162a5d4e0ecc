// `neuralign eval`: loss and accuracy of a checkpoint on a test set. The data set, data folder and
// batch size default to the checkpoint's training options, so evaluating a training checkpoint
// repeats the last test evaluation of its run (on the full test set unless --test-subset).
import { DATASET_NAMES, DataLoader, firstImages } from '../nn/data/index.js';
import { evaluate } from '../nn/evaluate.js';
import { evaluateAdversarial, inputSpace, pgdRecipe } from '../nn/pgd.js';
import { UsageError, positiveInteger, type FlagSpec } from './args.js';
import { checkpointData, openCheckpoint } from './checkpoints.js';
import { defineCommand } from './command.js';
import { PGD_FLAGS, describePgd, pgdFromFlags } from './pgd-flags.js';

const spec = {
  checkpoint: { type: 'string', help: 'a checkpoint written by `neuralign train` (required)' },
  dataset: { type: 'string', help: `data set: ${DATASET_NAMES.join(', ')} (default: the checkpoint's)` },
  'data-dir': { type: 'string', help: "data folder (default: the checkpoint's training data folder)" },
  'batch-size': { type: 'number', help: "batch size (default: the checkpoint's training batch size)" },
  'test-subset': { type: 'number', help: 'evaluate on the first N test images' },
  json: { type: 'boolean', help: 'print one JSON object' },
  pgd: { type: 'boolean', help: 'also the PGD test loss and accuracy (eval mode; --eps, --step, --steps, --restarts)' },
  ...PGD_FLAGS,
  restarts: { type: 'number', help: 'PGD: random starts per image, the worst kept (default 1)' },
  'pgd-seed': { type: 'number', help: 'PGD: seed of the random starts (default 0)', default: 0 },
} satisfies FlagSpec;

export const evalCommand = defineCommand({
  usage: 'neuralign eval --checkpoint FILE [--dataset D] [--data-dir DIR] [--batch-size B] [--json] [--pgd [--eps 8/255] [--step 2/255] [--steps 5] [--restarts 1]]',
  description: 'Test loss and accuracy of a checkpoint (BN in eval mode, no augmentation); with --pgd also under a PGD attack.',
  spec,
  async run(flags) {
    if (!flags.checkpoint) throw new UsageError('--checkpoint FILE is required');
    const batchFlag = positiveInteger(flags['batch-size'], 'batch-size');
    const testSubset = positiveInteger(flags['test-subset'], 'test-subset');
    const attack = flags.pgd ? pgdRecipe({ ...pgdFromFlags(flags), restarts: positiveInteger(flags.restarts, 'restarts') }) : null;
    if (!flags.pgd && (flags.eps ?? flags.step ?? flags.steps ?? flags.restarts) !== undefined) throw new UsageError('--eps, --step, --steps and --restarts need --pgd');
    if (flags.dataset !== undefined && !DATASET_NAMES.includes(flags.dataset as never)) throw new UsageError(`--dataset '${flags.dataset}' is not one of ${DATASET_NAMES.join(', ')}`);

    const { model, meta } = await openCheckpoint(flags.checkpoint);
    try {
      const dataset = flags.dataset ?? meta.dataset;
      const data = firstImages(checkpointData(meta, 'test', flags['data-dir'], dataset), testSubset, 'test-subset');
      const batchSize = batchFlag ?? (meta.training as { batchSize?: number }).batchSize ?? 128;
      const loader = new DataLoader(data, { batchSize });
      if (attack) {
        const r = await evaluateAdversarial(model, loader, inputSpace(loader), attack, { seed: flags['pgd-seed'] });
        if (flags.json) {
          console.log(JSON.stringify({ checkpoint: flags.checkpoint, model: meta.model, epoch: meta.epoch, dataset, images: r.clean.images, loss: r.clean.loss, accuracy: r.clean.accuracy, pgd: { ...attack, seed: flags['pgd-seed'], loss: r.pgd.loss, accuracy: r.pgd.accuracy } }));
        } else {
          console.log(`${flags.checkpoint} (${meta.model}, epoch ${meta.epoch}) on ${data.name}, ${r.clean.images} images:`);
          console.log(`  clean: loss ${r.clean.loss.toFixed(4)}, accuracy ${(100 * r.clean.accuracy).toFixed(2)}%`);
          console.log(`  ${describePgd(attack)}: loss ${r.pgd.loss.toFixed(4)}, accuracy ${(100 * r.pgd.accuracy).toFixed(2)}%`);
        }
        return 0;
      }
      const result = await evaluate(model, loader);
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
