// Data sets by name, for the command line: `--dataset cifar10 --data-root DIR`.
import { loadCifar10, loadCifar100 } from './cifar.js';
import type { ImageDataset } from './dataset.js';
import { DataError } from './errors.js';
import { loadFashionMnist, loadMnist, type Split } from './idx.js';
import { syntheticDataset } from './synthetic.js';

export const DATASET_NAMES = ['cifar10', 'cifar100', 'fashion-mnist', 'mnist', 'synthetic'] as const;

/**
 * Loads `name`'s split. `root` is the data folder (required for CIFAR; MNIST-like sets default to
 * /usr/share/datasets/NAME). The synthetic set (seed 1) has 2,000 training and 500 test images.
 */
export function loadDataset(name: string, split: Split, root?: string): ImageDataset {
  switch (name) {
    case 'cifar10':
    case 'cifar100': {
      if (!root) throw new DataError(`${name}: no data folder given (expected the folder holding ${name === 'cifar10' ? 'cifar-10-batches-bin' : 'cifar-100-binary'}/)`);
      return name === 'cifar10' ? loadCifar10({ root, split }) : loadCifar100({ root, split });
    }
    case 'fashion-mnist':
      return loadFashionMnist({ root, split });
    case 'mnist':
      return loadMnist({ root, split });
    case 'synthetic':
      return syntheticDataset({ n: split === 'train' ? 2000 : 500, seed: 1, split });
    default:
      throw new DataError(`unknown dataset '${name}' (expected one of ${DATASET_NAMES.join(', ')})`);
  }
}
