// IDX files (MNIST, Fashion-MNIST), plain or gzip-compressed, read from the file system; the
// format itself (parseIdx, mnistLikeDataset) is in idx-format.ts.
import { join } from 'node:path';
import type { ImageDataset } from './dataset.js';
import { DataError } from './errors.js';
import { mnistLikeDataset, parseIdx, type IdxArray } from './idx-format.js';
import { isFile, readDataFile, requireDir } from './io.js';

export { parseIdx, type IdxArray } from './idx-format.js';

/** Reads an IDX file, plain or gzipped. */
export function readIdx(path: string, expected = 'an IDX file'): IdxArray {
  return parseIdx(readDataFile(path, expected), path);
}

export type Split = 'train' | 'test';

export interface MnistOptions {
  /** Folder holding the four IDX files (gzipped or not). */
  root?: string;
  split?: Split;
}

export const FASHION_MNIST_ROOT = '/usr/share/datasets/fashion-mnist';
export const MNIST_ROOT = '/usr/share/datasets/mnist';

/** Fashion-MNIST from its four IDX files (default folder /usr/share/datasets/fashion-mnist). */
export function loadFashionMnist(opts: MnistOptions = {}): ImageDataset {
  return loadMnistLike('fashion-mnist', opts.root ?? FASHION_MNIST_ROOT, opts.split ?? 'train');
}

/** MNIST from its four IDX files (same names and format as Fashion-MNIST). */
export function loadMnist(opts: MnistOptions = {}): ImageDataset {
  return loadMnistLike('mnist', opts.root ?? MNIST_ROOT, opts.split ?? 'train');
}

const FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];

function loadMnistLike(name: 'fashion-mnist' | 'mnist', root: string, split: Split): ImageDataset {
  const expected = `the ${name} IDX files ${FILES.map((f) => `${f}.gz`).join(', ')} (gzipped or not)`;
  requireDir(root, expected);
  const prefix = split === 'train' ? 'train' : 't10k';
  const imagesPath = findIdx(root, `${prefix}-images-idx3-ubyte`, expected);
  const labelsPath = findIdx(root, `${prefix}-labels-idx1-ubyte`, expected);
  const images = readIdx(imagesPath, `${name} images [N, 28, 28]`);
  const labels = readIdx(labelsPath, `${name} labels [N]`);
  return mnistLikeDataset(name, split, images, labels, { images: imagesPath, labels: labelsPath });
}

/** `base`.gz or `base` in `root`. */
function findIdx(root: string, base: string, expected: string): string {
  for (const file of [`${base}.gz`, base]) {
    const path = join(root, file);
    if (isFile(path)) return path;
  }
  throw new DataError(`${join(root, base)}.gz: file not found (expected ${expected})`);
}
