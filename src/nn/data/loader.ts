// Batches for training and evaluation: per epoch a seeded shuffle of the dataset, then for each
// batch the images' uint8 rows gathered into one staging array, uploaded once, and transformed
// on the GPU (augment.ts) into x [B, C, 32, 32] f32, with labels y [B] i32.
//
// Randomness is a pure function of (seed, epoch): the order is permutation(n, hash(seed, 2 epoch))
// and the augmentation of the image at position p of the epoch uses counters 4p .. 4p + 3 under
// seed hash(seed, 2 epoch + 1). So batch(epoch, i) is the same whenever and in whatever order
// it is asked for, on every backend.
import { Tensor, tensor } from '../../engine/index.js';
import { transformImages, DRAWS_PER_IMAGE, type AugmentOptions } from './augment.js';
import { imageBytes, type ImageDataset } from './dataset.js';
import { DataError } from './errors.js';
import { deriveSeed, permutation } from './random.js';

export interface LoaderOptions {
  batchSize: number;
  /** Reshuffle every epoch (training); default false (evaluation order = dataset order). */
  shuffle?: boolean;
  /** Training augmentation (e.g. CIFAR_AUGMENT); default none. */
  augment?: AugmentOptions | null;
  seed?: number;
  /** Drop the last batch when it is smaller than batchSize; default false (keep it). */
  dropLast?: boolean;
  /** Output [H, W]; default [32, 32] (28 x 28 images are zero-padded 2 pixels each side). */
  size?: readonly [number, number];
  /** Override the dataset's normalization (e.g. mean 0, std 1 for the paper's MNIST). */
  mean?: readonly number[];
  std?: readonly number[];
}

export interface Batch {
  /** [B, C, H, W] f32, normalized (and augmented when training). */
  x: Tensor;
  /** [B] i32 class labels. */
  y: Tensor;
}

export class DataLoader {
  readonly batchSize: number;
  private readonly staging: Uint8Array;
  private readonly labels: Int32Array;
  private cachedEpoch = -1;
  private cachedOrder: Int32Array | null = null;

  constructor(
    readonly dataset: ImageDataset,
    readonly opts: LoaderOptions,
  ) {
    const { batchSize } = opts;
    if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new DataError(`batch size ${batchSize} is not a positive integer`);
    this.batchSize = batchSize;
    this.staging = new Uint8Array(Math.ceil((batchSize * imageBytes(dataset)) / 4) * 4);
    this.labels = new Int32Array(batchSize);
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.shape[0];
    return this.opts.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Dataset indices in the order epoch `epoch` visits them. */
  order(epoch: number): Int32Array {
    if (epoch !== this.cachedEpoch || !this.cachedOrder) {
      const n = this.dataset.shape[0];
      this.cachedOrder = this.opts.shuffle
        ? permutation(n, deriveSeed(this.opts.seed ?? 0, 2 * epoch))
        : Int32Array.from({ length: n }, (_, i) => i);
      this.cachedEpoch = epoch;
    }
    return this.cachedOrder;
  }

  /**
   * Batch `index` of epoch `epoch`. Its tensors belong to the caller (or to the tidy scope open
   * at the call): dispose them after the step.
   */
  batch(epoch: number, index: number): Batch {
    if (!(Number.isInteger(index) && index >= 0 && index < this.length)) {
      throw new DataError(`${this.dataset.name}: batch ${index} is outside 0..${this.length - 1}`);
    }
    const { images, labels, shape } = this.dataset;
    const [n, c, h, w] = shape;
    const bytes = c * h * w;
    const order = this.order(epoch);
    const start = index * this.batchSize;
    const b = Math.min(this.batchSize, n - start);
    for (let i = 0; i < b; i++) {
      const k = order[start + i]!;
      this.staging.set(images.subarray(k * bytes, (k + 1) * bytes), i * bytes);
      this.labels[i] = labels[k]!;
    }
    const augment = this.opts.augment ?? null;
    const x = transformImages(this.staging, [b, c, h, w], {
      size: this.opts.size ?? [32, 32],
      mean: this.opts.mean ?? this.dataset.mean,
      std: this.opts.std ?? this.dataset.std,
      augment,
      seed: deriveSeed(this.opts.seed ?? 0, 2 * epoch + 1),
      offset: start * DRAWS_PER_IMAGE,
    });
    const y = tensor(this.labels.subarray(0, b), [b], 'i32');
    return { x, y };
  }

  /** The batches of one epoch, in order (each made when the loop asks for it). */
  *epoch(epoch: number): Generator<Batch> {
    for (let i = 0; i < this.length; i++) yield this.batch(epoch, i);
  }
}
