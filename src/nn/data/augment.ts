// The per-batch image transform on the GPU (augment.wgsl): uint8 pixels go up packed four to a
// u32 word, a quarter of the bytes of f32 and no CPU conversion loop; one kernel then pads to
// the output size, augments (RandomAffine rotation, horizontal flip, RandomCrop with zero
// padding, in torchvision's order) and normalizes ((x / 255 - mean) / std) each output pixel.
import augmentWgsl from '../../shaders/augment.wgsl';
import counterRngWgsl from '../../shaders/lib/counter_rng.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import { Kernel, Tensor, gridStride, launch, runtime } from '../../engine/index.js';
import { DataError } from './errors.js';

const augmentKernel = new Kernel('augment', [gridWgsl, counterRngWgsl, augmentWgsl]);

/** Training augmentation; each part is off when left out. */
export interface AugmentOptions {
  /** RandomAffine(degrees): rotation about the centre by an angle uniform in [-degrees, degrees]. */
  degrees?: number;
  /** RandomHorizontalFlip(p = 0.5). */
  flip?: boolean;
  /** RandomCrop(size, padding = cropPadding): a random window of the zero-padded image. */
  cropPadding?: number;
  /** Rotation sampling: 'nearest' (torchvision's default) or 'bilinear'. Both fill with 0. */
  interpolation?: 'nearest' | 'bilinear';
}

/** The paper's CIFAR training augmentation (utils/data.py). */
export const CIFAR_AUGMENT: Readonly<AugmentOptions> = { degrees: 15, flip: true, cropPadding: 4 };

/** Counters each image draws from the generator (angle, flip, crop row, crop column). */
export const DRAWS_PER_IMAGE = 4;

export interface TransformOptions {
  /** Output [H, W] (default [32, 32]); smaller images are zero-padded, centred. */
  size?: readonly [number, number];
  mean: readonly number[];
  std: readonly number[];
  augment?: AugmentOptions | null;
  /** Random stream: image b uses counters offset + 4b .. offset + 4b + 3 under seed. */
  seed?: number;
  offset?: number;
}

/**
 * x [B, C, H, W] f32 on the GPU from B uint8 images [B, C, h, w] (row-major, `pixels` may be longer
 * than B * C * h * w: loaders pass a reused staging array). The caller owns x.
 */
export function transformImages(pixels: Uint8Array, shape: readonly [number, number, number, number], opts: TransformOptions): Tensor {
  const [b, c, h, w] = shape;
  const [outH, outW] = opts.size ?? [32, 32];
  if (c < 1 || c > 4) throw new DataError(`image transform: ${c} channels, the kernel handles 1 to 4`);
  if (opts.mean.length !== c || opts.std.length !== c) {
    throw new DataError(`image transform: mean and std need ${c} values, got ${opts.mean.length} and ${opts.std.length}`);
  }
  if (h > outH || w > outW) throw new DataError(`image transform: ${h} x ${w} images do not fit the ${outH} x ${outW} output`);
  const bytes = b * c * h * w;
  if (pixels.length < bytes) throw new DataError(`image transform: ${pixels.length} bytes for ${b} images of ${c} x ${h} x ${w}`);
  const aug = opts.augment ?? {};
  const degrees = aug.degrees ?? 0;
  const cropPadding = aug.cropPadding ?? 0;
  if (!(degrees >= 0 && degrees <= 180)) throw new DataError(`image transform: rotation range ${degrees} degrees is outside 0..180`);
  if (!(Number.isInteger(cropPadding) && cropPadding >= 0 && cropPadding <= 127)) {
    throw new DataError(`image transform: crop padding ${cropPadding} is not an integer in 0..127`);
  }

  const x = new Tensor([b, c, outH, outW], 'f32');
  if (x.size === 0) return x;
  const words = Math.ceil(bytes / 4);
  const packed = new Tensor([words], 'u32');
  // writeBuffer wants a multiple of 4 bytes; the staging array of a loader is already padded.
  const upload = pixels.byteLength >= words * 4 ? pixels.subarray(0, words * 4) : padTo4(pixels.subarray(0, bytes));
  runtime().stream.upload(packed.buffer, upload);
  launch(augmentKernel, {
    op: 'augment',
    constants: { BILINEAR: aug.interpolation === 'bilinear' ? 1 : 0 },
    params: (p) =>
      p
        .u32(x.size, c, h, w, outH, outW, (outH - h) >> 1, (outW - w) >> 1, (opts.seed ?? 0) >>> 0, (opts.offset ?? 0) >>> 0)
        .f32(degrees)
        .u32(aug.flip ? 1 : 0, cropPadding)
        .align(16)
        .f32(...vec4(opts.mean, 0))
        .f32(...vec4(opts.std, 1)),
    buffers: [packed.buffer, x.buffer],
    shapes: [x.shape],
    workgroups: gridStride(x.size, 256),
  });
  packed.dispose(); // reusable only after the submit that reads it (engine/buffer-pool.ts)
  return x;
}

function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
  out.set(bytes);
  return out;
}

function vec4(values: readonly number[], fill: number): number[] {
  return [0, 1, 2, 3].map((i) => values[i] ?? fill);
}
