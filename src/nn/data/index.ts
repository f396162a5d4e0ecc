// Data sets (CPU-side uint8 images and labels), their readers, and GPU batching and augmentation.
export { DataError } from './errors.js';
export { subset, firstImages, imageBytes, checkLabels, type ImageDataset } from './dataset.js';
export { parseIdx, readIdx, loadMnist, loadFashionMnist, FASHION_MNIST_ROOT, MNIST_ROOT, type IdxArray, type MnistOptions, type Split } from './idx.js';
export { loadCifar10, loadCifar100, type CifarOptions, type Cifar100Options } from './cifar.js';
export { syntheticDataset, type SyntheticOptions } from './synthetic.js';
export { transformImages, CIFAR_AUGMENT, DRAWS_PER_IMAGE, type AugmentOptions, type TransformOptions } from './augment.js';
export { DataLoader, type Batch, type LoaderOptions } from './loader.js';
export { loadDataset, DATASET_NAMES } from './registry.js';
