// CIFAR-10 and CIFAR-100, binary version.
//
// CIFAR-10 (`cifar-10-batches-bin/`): data_batch_1.bin .. data_batch_5.bin (train) and
// test_batch.bin, each a run of 3073-byte records: 1 label byte, then 3072 pixel bytes: the red
// plane, then green, then blue, each 32 x 32 row-major. That is already [C, H, W], so a record's
// pixels copy straight into the NCHW image array.
// CIFAR-100 (`cifar-100-binary/`): train.bin and test.bin, 3074-byte records: coarse label byte
// (20 superclasses), fine label byte (100 classes), 3072 pixel bytes as above.
// The official files hold 10,000 records each (50,000 in CIFAR-100's train.bin); any whole
// number of records is accepted, so tests can write small files.
import { basename, join } from 'node:path';
import { checkLabels, type ImageDataset } from './dataset.js';
import { DataError } from './errors.js';
import type { Split } from './idx.js';
import { isDir, isFile, readDataFile, requireDir } from './io.js';

const PIXELS = 3 * 32 * 32;

// The paper's code normalizes CIFAR-10 and CIFAR-100 alike with CIFAR-10's statistics
// (utils/data.py: `CIFAR100 = CIFAR10`).
const MEAN = [0.4914, 0.4822, 0.4465];
const STD = [0.247, 0.243, 0.261];

export interface CifarOptions {
  /** The `cifar-10-batches-bin` / `cifar-100-binary` folder itself, or the folder holding it. */
  root: string;
  split?: Split;
}

export interface Cifar100Options extends CifarOptions {
  /** 'fine' (100 classes, the default) or 'coarse' (20 superclasses). */
  labels?: 'fine' | 'coarse';
}

export function loadCifar10(opts: CifarOptions): ImageDataset {
  const split = opts.split ?? 'train';
  const files = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  const dir = resolveFolder(opts.root, 'cifar-10-batches-bin', 'CIFAR-10', ['data_batch_1.bin..data_batch_5.bin', 'test_batch.bin'], files[0]!);
  const parts = files.map((f) => readRecords(join(dir, f), 1, 0, 10, 'CIFAR-10'));
  return { name: `cifar10-${split}`, ...concat(parts), classes: 10, mean: MEAN, std: STD };
}

export function loadCifar100(opts: Cifar100Options): ImageDataset {
  const split = opts.split ?? 'train';
  const fine = (opts.labels ?? 'fine') === 'fine';
  const file = split === 'train' ? 'train.bin' : 'test.bin';
  const dir = resolveFolder(opts.root, 'cifar-100-binary', 'CIFAR-100', ['train.bin', 'test.bin'], file);
  const part = readRecords(join(dir, file), 2, fine ? 1 : 0, fine ? 100 : 20, 'CIFAR-100');
  return { name: `cifar100-${split}${fine ? '' : '-coarse'}`, ...concat([part]), classes: fine ? 100 : 20, mean: MEAN, std: STD };
}

/** `root` itself when it is the data folder (or holds `probe`), else root/`folder`. */
function resolveFolder(root: string, folder: string, what: string, files: string[], probe: string): string {
  const expected = `${what} binary files (${files.join(', ')}) in ${folder}/ or in the folder itself`;
  requireDir(root, expected);
  if (basename(root) === folder || isFile(join(root, probe))) return root;
  const inner = join(root, folder);
  if (isDir(inner)) return inner;
  throw new DataError(`${root}: no ${folder}/ folder and no ${probe} here (expected ${expected})`);
}

interface Part {
  images: Uint8Array;
  labels: Int32Array;
}

/** Records of `labelBytes` label bytes + 3072 pixels; the label used is byte `labelIndex`. */
function readRecords(path: string, labelBytes: number, labelIndex: number, classes: number, what: string): Part {
  const record = labelBytes + PIXELS;
  const bytes = readDataFile(path, `a ${what} binary file of ${record}-byte records`);
  if (bytes.length === 0 || bytes.length % record !== 0) {
    throw new DataError(`${path}: ${bytes.length} bytes is not a whole number of ${record}-byte ${what} records (truncated file?)`);
  }
  const n = bytes.length / record;
  const images = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = bytes[i * record + labelIndex]!;
    images.set(bytes.subarray(i * record + labelBytes, (i + 1) * record), i * PIXELS);
  }
  checkLabels(labels, classes, path, labelBytes === 2 ? (labelIndex === 1 ? 'fine label' : 'coarse label') : 'label');
  return { images, labels };
}

function concat(parts: Part[]): { shape: [number, number, number, number]; images: Uint8Array; labels: Int32Array } {
  if (parts.length === 1) {
    const p = parts[0]!;
    return { shape: [p.labels.length, 3, 32, 32], images: p.images, labels: p.labels };
  }
  const n = parts.reduce((s, p) => s + p.labels.length, 0);
  const images = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * PIXELS);
    labels.set(p.labels, at);
    at += p.labels.length;
  }
  return { shape: [n, 3, 32, 32], images, labels };
}
