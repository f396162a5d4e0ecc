// IDX files (MNIST, Fashion-MNIST), plain or gzip-compressed.
//
// Format: magic 00 00 TT DD (TT the element type, 08 = unsigned byte; DD the number of
// dimensions), then DD big-endian u32 sizes, then the elements row-major. Images files are
// [N, 28, 28], labels files [N]. Only unsigned bytes are read: the only type these data sets use.
import { join } from 'node:path';
import { checkLabels, type ImageDataset } from './dataset.js';
import { DataError } from './errors.js';
import { isFile, readDataFile, requireDir } from './io.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const TYPE_NAMES: Record<number, string> = { 0x08: 'unsigned byte', 0x09: 'signed byte', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64' };

/** Parses IDX bytes (already gunzipped); `where` names the file in errors. */
export function parseIdx(bytes: Uint8Array, where: string): IdxArray {
  if (bytes.length < 4) throw new DataError(`${where}: ${bytes.length} bytes is too short for an IDX header (truncated file?)`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const magic = [...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new DataError(`${where}: not an IDX file (magic bytes ${magic}, expected 00 00 08 NN)`);
  }
  const type = bytes[2]!;
  if (type !== 0x08) {
    const name = TYPE_NAMES[type] ?? 'unknown';
    throw new DataError(`${where}: IDX element type 0x${type.toString(16).padStart(2, '0')} (${name}) is not supported, expected 0x08 (unsigned byte)`);
  }
  const rank = bytes[3]!;
  if (rank === 0) throw new DataError(`${where}: IDX header declares 0 dimensions`);
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) {
    throw new DataError(`${where}: truncated IDX header (${bytes.length} bytes, the ${rank}-dimensional header needs ${headerBytes})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < rank; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const expected = dims.reduce((p, d) => p * d, 1);
  const found = bytes.length - headerBytes;
  if (found < expected) {
    throw new DataError(`${where}: truncated: [${dims.join(', ')}] needs ${expected} data bytes, the file has ${found}`);
  }
  if (found > expected) {
    throw new DataError(`${where}: ${found - expected} unexpected bytes after the [${dims.join(', ')}] data (wrong header sizes?)`);
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

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

// Per-channel statistics of x / 255 over the training images. MNIST's are torchvision's usual
// (0.1307, 0.3081); Fashion-MNIST's (0.2860, 0.3530) are computed the same way. (The paper's code
// feeds MNIST unnormalized; pass mean 0, std 1 to the loader to match it.)
const STATS = {
  'fashion-mnist': { mean: [0.286], std: [0.353] },
  mnist: { mean: [0.1307], std: [0.3081] },
};

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
  if (images.dims.length !== 3) {
    throw new DataError(`${imagesPath}: expected images of 3 dimensions [N, H, W], the header says [${images.dims.join(', ')}]`);
  }
  if (labels.dims.length !== 1) {
    throw new DataError(`${labelsPath}: expected labels of 1 dimension [N], the header says [${labels.dims.join(', ')}]`);
  }
  const [n, h, w] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) throw new DataError(`${labelsPath}: ${labels.dims[0]} labels for ${n} images in ${imagesPath}`);
  const classes = 10;
  const labels32 = Int32Array.from(labels.data);
  checkLabels(labels32, classes, labelsPath);
  return { name: `${name}-${split}`, shape: [n, 1, h, w], images: images.data, labels: labels32, classes, ...STATS[name] };
}

/** `base`.gz or `base` in `root`. */
function findIdx(root: string, base: string, expected: string): string {
  for (const file of [`${base}.gz`, base]) {
    const path = join(root, file);
    if (isFile(path)) return path;
  }
  throw new DataError(`${join(root, base)}.gz: file not found (expected ${expected})`);
}
