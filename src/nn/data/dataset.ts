// A dataset lives on the CPU: uint8 images [N, C, H, W] (row-major, as the files store them) and
// int32 labels. Batches go to the GPU one at a time (loader.ts); mean and std feed Normalize.
import { DataError } from './errors.js';

export interface ImageDataset {
  /** e.g. 'cifar10-train', 'fashion-mnist-test'. */
  readonly name: string;
  /** [N, C, H, W]. */
  readonly shape: readonly [number, number, number, number];
  /** N * C * H * W bytes, row-major NCHW. */
  readonly images: Uint8Array;
  /** N labels in [0, classes). */
  readonly labels: Int32Array;
  /** Number of classes. */
  readonly classes: number;
  /** Per-channel mean and standard deviation of x / 255 (torchvision's Normalize arguments). */
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** Bytes of one image. */
export function imageBytes(ds: ImageDataset): number {
  const [, c, h, w] = ds.shape;
  return c * h * w;
}

/**
 * Images [start, end) as a dataset sharing the same memory (the paper aligns on the first 10,000
 * training images, unshuffled).
 */
export function subset(ds: ImageDataset, start: number, end: number): ImageDataset {
  const [n, c, h, w] = ds.shape;
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= n)) {
    throw new DataError(`${ds.name}: subset [${start}, ${end}) is outside its ${n} images`);
  }
  const bytes = c * h * w;
  return {
    ...ds,
    name: `${ds.name}[${start}:${end}]`,
    shape: [end - start, c, h, w],
    images: ds.images.subarray(start * bytes, end * bytes),
    labels: ds.labels.subarray(start, end),
  };
}

/**
 * The first `n` images of `ds` (all of it when `n` is undefined), for the --train-subset style
 * options; a DataError naming `--flag` when `n` is not a whole number in 1..N.
 */
export function firstImages(ds: ImageDataset, n: number | undefined, flag: string): ImageDataset {
  if (n === undefined) return ds;
  if (!(Number.isInteger(n) && n > 0 && n <= ds.shape[0])) throw new DataError(`--${flag} ${n}: ${ds.name} has ${ds.shape[0]} images`);
  return subset(ds, 0, n);
}

/** Throws a DataError naming `where` and the first label outside [0, classes). */
export function checkLabels(labels: ArrayLike<number>, classes: number, where: string, what = 'label'): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!(l >= 0 && l < classes)) {
      throw new DataError(`${where}: ${what} ${l} at index ${i} is outside 0..${classes - 1}`);
    }
  }
}
