// The GPU image transform (pad, RandomAffine rotation, flip, RandomCrop, normalize) against a
// float64 JavaScript reference that draws the same counter-based random numbers, and the loader:
// shuffling, batch sizes, determinism, and batches equal to the reference transform.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { CIFAR_AUGMENT, DataLoader, syntheticDataset, transformImages, type AugmentOptions } from '../../src/nn/data/index.js';
import { deriveSeed, hash, permutation } from '../../src/nn/data/random.js';
import { TEST_SEED, assertClose, rng, setupEngine } from '../helpers.js';

const test = suite('data-augment');
const rand = rng(TEST_SEED);
test.before(setupEngine);

interface RefOptions {
  size: [number, number];
  mean: number[];
  std: number[];
  augment: AugmentOptions | null;
  seed: number;
  offset: number;
}

/**
 * The transform in float64, straight from the definitions: torchvision's inverse maps in reverse
 * order (crop, flip, rotation about the centre, zero-padded canvas). `ambiguous` marks nearest
 * samples whose source coordinate lies within 0.002 px of a rounding boundary, where float32
 * rounding and the GPU's cos/sin may pick the other neighbour.
 */
function reference(pixels: Uint8Array, [b, c, h, w]: number[], o: RefOptions) {
  const [H, W] = o.size;
  const padTop = (H - h) >> 1, padLeft = (W - w) >> 1;
  const aug = o.augment ?? {};
  const values = new Float64Array(b * c * H * W);
  const ambiguous = new Uint8Array(values.length);
  const canvas = (img: number, ch: number, y: number, x: number) => {
    const sy = y - padTop, sx = x - padLeft;
    return sy < 0 || sx < 0 || sy >= h || sx >= w ? 0 : pixels[((img * c + ch) * h + sy) * w + sx]!;
  };
  for (let img = 0; img < b; img++) {
    const counter = o.offset + 4 * img;
    const draw = (k: number) => hash(o.seed, counter + k);
    const pad = aug.cropPadding ?? 0;
    const span = 2 * pad + 1;
    const ci = pad ? Math.floor(((draw(2) >>> 8) * span) / 2 ** 24) - pad : 0;
    const cj = pad ? Math.floor(((draw(3) >>> 8) * span) / 2 ** 24) - pad : 0;
    const flipped = aug.flip && draw(1) >>> 8 < 0x800000;
    const degrees = aug.degrees ?? 0;
    const angle = (degrees * (2 * ((draw(0) >>> 8) / 2 ** 24) - 1) * Math.PI) / 180;
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const i = ((img * c + ch) * H + y) * W + x;
          let qy = y + ci, qx = x + cj;
          let v = 0;
          if (qy >= 0 && qx >= 0 && qy < H && qx < W) {
            if (flipped) qx = W - 1 - qx;
            if (degrees > 0) {
              const cy = (H - 1) / 2, cx = (W - 1) / 2;
              const dy = qy - cy, dx = qx - cx;
              const uy = cy - Math.sin(angle) * dx + Math.cos(angle) * dy;
              const ux = cx + Math.cos(angle) * dx + Math.sin(angle) * dy;
              if (aug.interpolation === 'bilinear') {
                const y0 = Math.floor(uy), x0 = Math.floor(ux), fy = uy - y0, fx = ux - x0;
                v = (1 - fy) * ((1 - fx) * canvas(img, ch, y0, x0) + fx * canvas(img, ch, y0, x0 + 1)) +
                  fy * ((1 - fx) * canvas(img, ch, y0 + 1, x0) + fx * canvas(img, ch, y0 + 1, x0 + 1));
              } else {
                const near = (u: number) => Math.abs(u + 0.5 - Math.round(u + 0.5)) < 2e-3;
                if (near(uy) || near(ux)) ambiguous[i] = 1;
                v = canvas(img, ch, Math.floor(uy + 0.5), Math.floor(ux + 0.5));
              }
            } else {
              v = canvas(img, ch, qy, qx);
            }
          }
          values[i] = (v / 255 - o.mean[ch]!) / o.std[ch]!;
        }
      }
    }
  }
  return { values, ambiguous };
}

function randomPixels(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
}

/**
 * GPU transform vs reference; nearest samples flagged ambiguous may differ (they must be few).
 * atol 1e-6: float32 (v / 255 - mean) / std is off by ~2e-7 where it cancels to near 0.
 */
async function check(shape: [number, number, number, number], o: RefOptions, what: string, atol = 1e-6) {
  const [b, c, h, w] = shape;
  const pixels = randomPixels(b * c * h * w);
  const x = transformImages(pixels, shape, o);
  assert.equal(x.shape, [b, c, ...o.size], `${what}: shape`);
  const got = await x.toArray();
  x.dispose();
  const { values, ambiguous } = reference(pixels, shape, o);
  const skipped = ambiguous.reduce((s, v) => s + v, 0);
  assert.ok(skipped <= 0.02 * values.length, `${what}: ${skipped} ambiguous samples`);
  const keep = (_: number, i: number) => !ambiguous[i];
  assertClose(got.filter(keep), values.filter(keep), 1e-6, atol, what);
  return { got, values };
}

const seed = () => Math.floor(rand() * 2 ** 32);

test('no augmentation: zero-pad 28 x 28 to 32 x 32 and normalize', async () => {
  const o = { size: [32, 32] as [number, number], mean: [0.286], std: [0.353], augment: null, seed: 0, offset: 0 };
  const { got } = await check([5, 1, 28, 28], o, 'pad + normalize');
  // The 2-pixel border is -mean/std, as a zero-padded raw image becomes after Normalize.
  assert.ok(Math.abs(got[0]! + 0.286 / 0.353) < 1e-6 && Math.abs(got[32 * 32 - 1]! + 0.286 / 0.353) < 1e-6);
  // Odd sizes, two channels, a batch not a multiple of anything: 5 x 7 into 9 x 12.
  await check([3, 2, 5, 7], { ...o, size: [9, 12], mean: [0.3, 0.6], std: [0.2, 0.5] }, 'odd pad');
});

test('flip and random crop match the reference exactly', async () => {
  const base = { size: [32, 32] as [number, number], mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.243, 0.261] };
  for (const augment of [{ flip: true }, { cropPadding: 4 }, { flip: true, cropPadding: 4 }, { flip: true, cropPadding: 3 }]) {
    await check([9, 3, 32, 32], { ...base, augment, seed: seed(), offset: Math.floor(rand() * 1000) }, JSON.stringify(augment));
  }
  // A source smaller than the output, cropped and flipped: canvas then crop compose.
  await check([7, 2, 5, 6], { ...base, size: [9, 11], mean: [0.5, 0.5], std: [0.25, 0.5], augment: { flip: true, cropPadding: 2 }, seed: seed(), offset: 4 }, 'odd crop');
});

test('rotation (nearest and bilinear) and the full CIFAR pipeline match the reference', async () => {
  const base = { size: [32, 32] as [number, number], mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.243, 0.261] };
  await check([6, 3, 32, 32], { ...base, augment: { degrees: 15 }, seed: seed(), offset: 0 }, 'rotation nearest');
  await check([6, 3, 32, 32], { ...base, augment: { ...CIFAR_AUGMENT }, seed: seed(), offset: 40 }, 'CIFAR augment');
  // Bilinear: a coordinate error e moves a value by at most e * 255 raw units, e / std normalized;
  // float32 cos/sin give e ~ 1e-5 px (llvmpipe matches to 2e-5 normalized), so 1e-3 allows for
  // GPUs' approximate sin/cos.
  await check([5, 3, 32, 32], { ...base, augment: { degrees: 15, interpolation: 'bilinear' }, seed: seed(), offset: 0 }, 'rotation bilinear', 1e-3);
  await check([3, 1, 28, 28], { ...base, mean: [0.3], std: [0.3], augment: { degrees: 30, flip: true, cropPadding: 4, interpolation: 'bilinear' }, seed: seed(), offset: 8 }, 'padded bilinear', 1e-3);
});

test('augmentation draws: flips about half, crop offsets span 0..8, angles span +-15 degrees', () => {
  const s = seed();
  let flips = 0;
  const crops = new Set<number>();
  let lo = 0, hi = 0;
  const n = 4000;
  for (let i = 0; i < n; i++) {
    if (hash(s, 4 * i + 1) >>> 8 < 0x800000) flips++;
    crops.add(Math.floor(((hash(s, 4 * i + 2) >>> 8) * 9) / 2 ** 24));
    const a = 15 * (2 * ((hash(s, 4 * i) >>> 8) / 2 ** 24) - 1);
    lo = Math.min(lo, a);
    hi = Math.max(hi, a);
  }
  assert.ok(Math.abs(flips / n - 0.5) < 0.04, `flip fraction ${flips / n}`);
  assert.equal([...crops].sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.ok(lo < -14.9 && hi > 14.9 && lo >= -15 && hi <= 15);
});

test('loader: batch count, dropLast, each index once per epoch, seeded shuffles', () => {
  const ds = syntheticDataset({ n: 37, classes: 4, shape: [1, 5, 5], seed: 2 });
  const keep = new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 11 });
  const drop = new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 11, dropLast: true });
  assert.is(keep.length, 5);
  assert.is(drop.length, 4);
  const order = keep.order(0);
  assert.equal([...order].sort((a, b) => a - b), Array.from({ length: 37 }, (_, i) => i));
  assert.equal([...order], [...permutation(37, deriveSeed(11, 0))]);
  assert.equal([...new DataLoader(ds, { batchSize: 3, shuffle: true, seed: 11 }).order(0)], [...order], 'order depends on seed and epoch only');
  assert.not.equal([...keep.order(1)], [...order], 'a new order each epoch');
  assert.not.equal([...new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 12 }).order(0)], [...order]);
  assert.equal([...new DataLoader(ds, { batchSize: 8 }).order(3)], Array.from({ length: 37 }, (_, i) => i), 'no shuffle');
  let sizes: number[] = [];
  for (const { x, y } of keep.epoch(0)) {
    sizes.push(y.shape[0]!);
    assert.equal(x.shape, [y.shape[0]!, 1, 32, 32]);
    x.dispose();
    y.dispose();
  }
  assert.equal(sizes, [8, 8, 8, 8, 5]);
  sizes = [];
  for (const { x, y } of drop.epoch(0)) {
    sizes.push(y.shape[0]!);
    x.dispose();
    y.dispose();
  }
  assert.equal(sizes, [8, 8, 8, 8]);
});

test('loader batches equal the reference transform of the shuffled images, and repeat exactly', async () => {
  const ds = syntheticDataset({ n: 21, classes: 3, shape: [3, 32, 32], seed: 5 });
  for (const augment of [null, CIFAR_AUGMENT]) {
    const loader = new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 77, augment });
    const epoch = 2;
    const order = loader.order(epoch);
    for (const index of [2, 0]) {
      const { x, y } = loader.batch(epoch, index);
      const idx = [...order.subarray(index * 8, index * 8 + 8)];
      const b = idx.length;
      const pixels = new Uint8Array(b * 3072);
      idx.forEach((k, i) => pixels.set(ds.images.subarray(k * 3072, (k + 1) * 3072), i * 3072));
      const { values, ambiguous } = reference(pixels, [b, 3, 32, 32], {
        size: [32, 32], mean: [...ds.mean], std: [...ds.std], augment, seed: deriveSeed(77, 2 * epoch + 1), offset: index * 8 * 4,
      });
      const [gx, gy] = await Promise.all([x.toArray(), y.toArray()]);
      assert.is(y.dtype, 'i32');
      assert.equal([...gy], idx.map((k) => ds.labels[k]!));
      const keep = (_: number, i: number) => !ambiguous[i];
      assertClose(gx.filter(keep), values.filter(keep), 1e-6, 1e-6, `batch ${index} ${augment ? 'augmented' : 'plain'}`);
      // Asking again gives the same bits.
      const again = loader.batch(epoch, index);
      const gx2 = await again.x.toArray();
      assert.ok(gx2.every((v, i) => v === gx[i]), 'repeatable');
      for (const t of [x, y, again.x, again.y]) t.dispose();
    }
  }
});

test('loader holds GPU memory flat over an epoch when batches are disposed', async () => {
  const ds = syntheticDataset({ n: 50, classes: 2, shape: [3, 32, 32], seed: 1 });
  const loader = new DataLoader(ds, { batchSize: 16, shuffle: true, seed: 3, augment: CIFAR_AUGMENT });
  const pool = E.runtime().pool;
  const run = async (epoch: number) => {
    for (const { x, y } of loader.epoch(epoch)) {
      await y.toArray(); // a read-back per step submits, as a training step's logging would
      x.dispose();
      y.dispose();
    }
  };
  await run(0);
  const before = pool.getStats();
  await run(1);
  await run(2);
  const after = pool.getStats();
  assert.is(after.inUse, before.inUse);
  assert.is(after.allocated, before.allocated);
});

test('transform input errors are one-line DataErrors', () => {
  const px = new Uint8Array(2 * 5 * 3 * 3);
  const o = { mean: [0, 0, 0, 0, 0], std: [1, 1, 1, 1, 1] };
  assert.throws(() => transformImages(px, [2, 5, 3, 3], o), /1 to 4/);
  assert.throws(() => transformImages(px, [2, 1, 3, 3], { mean: [0, 0], std: [1] }), /mean and std need 1/);
  assert.throws(() => transformImages(px, [1, 1, 40, 3], { mean: [0], std: [1] }), /do not fit/);
  assert.throws(() => transformImages(px, [1, 1, 3, 3], { mean: [0], std: [1], augment: { cropPadding: 1.5 } }), /crop padding/);
  assert.throws(() => new DataLoader(syntheticDataset({ n: 3 }), { batchSize: 0 }), /batch size 0/);
});

test.run();
