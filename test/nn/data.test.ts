// Dataset readers: IDX (plain and gzipped) and CIFAR-10/100 binary files written here in their
// exact formats and read back, the real Fashion-MNIST when installed, the synthetic set, the
// JavaScript mirror of the GPU hash, and one-line DataErrors for every kind of bad input.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import {
  DataError,
  DataLoader,
  FASHION_MNIST_ROOT,
  loadCifar10,
  loadCifar100,
  loadDataset,
  loadFashionMnist,
  loadMnist,
  parseIdx,
  subset,
  syntheticDataset,
} from '../../src/nn/data/index.js';
import { hash, normal, permutation, unit } from '../../src/nn/data/random.js';
import { TEST_SEED, rng, setupEngine, testUnless } from '../helpers.js';

const test = suite('data');
const rand = rng(TEST_SEED);
let dir = '';
test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-data-'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs fn, which must throw a one-line DataError containing every `parts` string. */
function expectDataError(fn: () => unknown, ...parts: string[]): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, DataError, `expected a DataError, got ${e}`);
    const msg = (e as Error).message;
    assert.not.match(msg, '\n', 'one line');
    for (const p of parts) assert.ok(msg.includes(p), `'${msg}' should mention '${p}'`);
    return;
  }
  assert.unreachable(`expected a DataError mentioning ${parts.join(', ')}`);
}

function idxBytes(dims: number[], data: Uint8Array, type = 0x08): Uint8Array {
  const head = new Uint8Array(4 + 4 * dims.length);
  const view = new DataView(head.buffer);
  head.set([0, 0, type, dims.length]);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  const out = new Uint8Array(head.length + data.length);
  out.set(head);
  out.set(data, head.length);
  return out;
}

function randomBytes(n: number, max = 256): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(rand() * max));
}

function folder(name: string): string {
  const p = join(dir, name);
  mkdirSync(p, { recursive: true });
  return p;
}

/** Writes the four MNIST IDX files of n train and m test images (gzipped or plain). */
function writeMnist(root: string, n: number, m: number, gz: boolean) {
  const made: Record<string, { images: Uint8Array; labels: Uint8Array }> = {};
  for (const [prefix, count] of [['train', n], ['t10k', m]] as const) {
    const images = randomBytes(count * 28 * 28);
    const labels = randomBytes(count, 10);
    const write = (file: string, bytes: Uint8Array) => writeFileSync(join(root, gz ? `${file}.gz` : file), gz ? gzipSync(bytes) : bytes);
    write(`${prefix}-images-idx3-ubyte`, idxBytes([count, 28, 28], images));
    write(`${prefix}-labels-idx1-ubyte`, idxBytes([count], labels));
    made[prefix] = { images, labels };
  }
  return made;
}

test('IDX files, gzipped and plain, read back exactly', () => {
  for (const gz of [true, false]) {
    const root = folder(`mnist-${gz}`);
    const made = writeMnist(root, 7, 5, gz);
    for (const split of ['train', 'test'] as const) {
      const ds = loadMnist({ root, split });
      const want = made[split === 'train' ? 'train' : 't10k']!;
      assert.equal(ds.shape, [want.labels.length, 1, 28, 28]);
      assert.equal([...ds.images], [...want.images]);
      assert.equal([...ds.labels], [...want.labels]);
      assert.is(ds.classes, 10);
      assert.is(ds.name, `mnist-${split}`);
    }
  }
});

test('IDX header errors: magic, element type, truncation, trailing bytes', () => {
  const data = randomBytes(2 * 3 * 4);
  const good = idxBytes([2, 3, 4], data);
  const parsed = parseIdx(good, 'x.idx');
  assert.equal(parsed.dims, [2, 3, 4]);
  assert.equal([...parsed.data], [...data]);
  expectDataError(() => parseIdx(good.subarray(0, 3), 'x.idx'), 'x.idx', 'too short');
  expectDataError(() => parseIdx(Uint8Array.from([1, 2, 8, 3, ...good.subarray(4)]), 'x.idx'), 'not an IDX file', '01 02 08 03');
  expectDataError(() => parseIdx(idxBytes([2, 3], new Uint8Array(24), 0x0d), 'x.idx'), '0x0d', 'float32', 'expected 0x08');
  expectDataError(() => parseIdx(good.subarray(0, 10), 'x.idx'), 'truncated IDX header');
  expectDataError(() => parseIdx(good.subarray(0, good.length - 1), 'x.idx'), 'truncated', 'needs 24', 'has 23');
  expectDataError(() => parseIdx(Uint8Array.from([...good, 0, 0]), 'x.idx'), '2 unexpected bytes');
  expectDataError(() => parseIdx(Uint8Array.from([0, 0, 8, 0]), 'x.idx'), '0 dimensions');
});

test('MNIST-like folders: missing folder or file, corrupt gzip, bad labels, mismatched counts', () => {
  expectDataError(() => loadMnist({ root: join(dir, 'nowhere') }), join(dir, 'nowhere'), 'folder not found', 'train-images-idx3-ubyte.gz');
  const root = folder('mnist-broken');
  writeMnist(root, 4, 3, true);
  rmSync(join(root, 't10k-labels-idx1-ubyte.gz'));
  expectDataError(() => loadMnist({ root, split: 'test' }), join(root, 't10k-labels-idx1-ubyte'), 'file not found');
  // Corrupt gzip: the magic, then garbage.
  writeFileSync(join(root, 't10k-labels-idx1-ubyte.gz'), Uint8Array.from([0x1f, 0x8b, 8, 0, 1, 2, 3]));
  expectDataError(() => loadMnist({ root, split: 'test' }), 't10k-labels-idx1-ubyte.gz', 'gzip');
  // Truncated gzip stream.
  const full = gzipSync(idxBytes([3], Uint8Array.from([1, 2, 3])));
  writeFileSync(join(root, 't10k-labels-idx1-ubyte.gz'), full.subarray(0, full.length - 6));
  expectDataError(() => loadMnist({ root, split: 'test' }), 'gzip');
  // A label of 10 with 10 classes.
  writeFileSync(join(root, 't10k-labels-idx1-ubyte.gz'), gzipSync(idxBytes([3], Uint8Array.from([1, 10, 3]))));
  expectDataError(() => loadMnist({ root, split: 'test' }), 't10k-labels-idx1-ubyte.gz', 'label 10 at index 1', '0..9');
  // 2 labels for 3 images.
  writeFileSync(join(root, 't10k-labels-idx1-ubyte.gz'), gzipSync(idxBytes([2], Uint8Array.from([1, 2]))));
  expectDataError(() => loadMnist({ root, split: 'test' }), '2 labels for 3 images');
  // An images file of the wrong rank.
  writeFileSync(join(root, 't10k-images-idx3-ubyte.gz'), gzipSync(idxBytes([3, 784], new Uint8Array(3 * 784))));
  expectDataError(() => loadMnist({ root, split: 'test' }), '3 dimensions', '[3, 784]');
});

const fashionMnistAbsent = existsSync(FASHION_MNIST_ROOT) ? null : `${FASHION_MNIST_ROOT} absent (Debian: apt-get install dataset-fashion-mnist)`;
testUnless(test, fashionMnistAbsent, 'real Fashion-MNIST: header, first images and labels, a padded batch', async () => {
  const ds = loadFashionMnist({ split: 'test' });
  assert.equal(ds.shape, [10000, 1, 28, 28]);
  assert.is(ds.name, 'fashion-mnist-test');
  assert.equal([...ds.labels.subarray(0, 10)], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
  const sums = [0, 1, 2].map((i) => ds.images.subarray(i * 784, (i + 1) * 784).reduce((s, v) => s + v, 0));
  assert.equal(sums, [33456, 100994, 51520]); // numpy over the same file
  assert.equal([...ds.images.subarray(14 * 28 + 10, 14 * 28 + 20)], [0, 0, 98, 136, 110, 109, 110, 162, 135, 144]);
  const counts = new Array(10).fill(0);
  for (const l of ds.labels) counts[l]++;
  assert.equal(counts, new Array(10).fill(1000));
  // Through the loader: 28 x 28 zero-padded to 32 x 32 (2 pixels each side), then normalized.
  const { x, y } = new DataLoader(ds, { batchSize: 3 }).batch(0, 0);
  const [gx, gy] = await Promise.all([x.toArray(), y.toArray()]);
  x.dispose();
  y.dispose();
  assert.equal(x.shape, [3, 1, 32, 32]);
  assert.equal([...gy], [9, 2, 1]);
  const norm = (v: number) => (v / 255 - 0.286) / 0.353;
  for (const [y0, x0] of [[0, 0], [1, 31], [31, 5], [30, 30]]) assert.ok(Math.abs(gx[y0 * 32 + x0]! - norm(0)) < 1e-6, `border (${y0}, ${x0})`);
  for (let k = 0; k < 10; k++) {
    const want = norm(ds.images[784 + (14 * 28 + 10 + k)]!);
    assert.ok(Math.abs(gx[1024 + (16 * 32 + 12 + k)]! - want) < 1e-6, `image 1, row 14, column ${10 + k}`);
  }
});

/** CIFAR records: label byte(s), then the R, G, B planes (each 32 x 32 row-major). */
function cifarRecords(n: number, labelBytes: number, labelMax: number[]) {
  const record = labelBytes + 3072;
  const bytes = new Uint8Array(n * record);
  const labels: number[][] = [];
  const planes: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const l = labelMax.map((m) => Math.floor(rand() * m));
    labels.push(l);
    const px = randomBytes(3072);
    planes.push(px);
    bytes.set(l, i * record);
    bytes.set(px, i * record + labelBytes);
  }
  return { bytes, labels, planes };
}

test('CIFAR-10: five train batches and the test batch, plane order and labels', () => {
  const parent = folder('c10');
  const root = folder('c10/cifar-10-batches-bin');
  const batches = [1, 2, 3, 4, 5].map((i) => {
    const r = cifarRecords(i === 3 ? 2 : 7, 1, [10]);
    writeFileSync(join(root, `data_batch_${i}.bin`), r.bytes);
    return r;
  });
  const testRecords = cifarRecords(5, 1, [10]);
  writeFileSync(join(root, 'test_batch.bin'), testRecords.bytes);

  for (const r of [parent, root]) {
    const train = loadCifar10({ root: r });
    assert.equal(train.shape, [30, 3, 32, 32]);
    assert.is(train.classes, 10);
    const all = batches.flatMap((b) => b.planes.map((p, i) => ({ p, l: b.labels[i]![0]! })));
    all.forEach(({ p, l }, i) => {
      assert.is(train.labels[i], l);
      // Pixel (c, y, x) of image i sits at ((i * 3 + c) * 32 + y) * 32 + x: the red plane first.
      for (const [c, y, x] of [[0, 0, 0], [1, 5, 7], [2, 31, 31], [0, 31, 0], [2, 3, 30]] as const) {
        assert.is(train.images[((i * 3 + c) * 32 + y) * 32 + x], p[(c * 32 + y) * 32 + x]);
      }
    });
    assert.equal([...train.images.subarray(3072 * 29)], [...batches[4]!.planes[6]!]);
  }
  const t = loadCifar10({ root: parent, split: 'test' });
  assert.equal(t.shape, [5, 3, 32, 32]);
  assert.equal([...t.labels], testRecords.labels.map((l) => l[0]!));
  assert.equal([...t.images.subarray(3072, 6144)], [...testRecords.planes[1]!]);
  assert.equal(t.mean, [0.4914, 0.4822, 0.4465]);
});

test('CIFAR-100: fine labels by default, coarse on request', () => {
  const root = folder('c100/cifar-100-binary');
  const train = cifarRecords(7, 2, [20, 100]);
  writeFileSync(join(root, 'train.bin'), train.bytes);
  writeFileSync(join(root, 'test.bin'), cifarRecords(3, 2, [20, 100]).bytes);
  const fine = loadCifar100({ root: join(dir, 'c100') });
  assert.is(fine.classes, 100);
  assert.equal([...fine.labels], train.labels.map((l) => l[1]!));
  assert.equal([...fine.images.subarray(3072 * 4, 3072 * 5)], [...train.planes[4]!]);
  const coarse = loadCifar100({ root, labels: 'coarse' });
  assert.is(coarse.classes, 20);
  assert.equal([...coarse.labels], train.labels.map((l) => l[0]!));
  assert.equal(loadCifar100({ root, split: 'test' }).shape, [3, 3, 32, 32]);
});

test('CIFAR errors: missing folder and files, truncated files, labels out of range', () => {
  expectDataError(() => loadCifar10({ root: join(dir, 'absent') }), join(dir, 'absent'), 'folder not found', 'cifar-10-batches-bin');
  const empty = folder('c10-empty');
  expectDataError(() => loadCifar10({ root: empty }), empty, 'cifar-10-batches-bin', 'data_batch_1.bin');
  const root = folder('c10-bad/cifar-10-batches-bin');
  writeFileSync(join(root, 'data_batch_1.bin'), cifarRecords(2, 1, [10]).bytes);
  expectDataError(() => loadCifar10({ root }), join(root, 'data_batch_2.bin'), 'file not found');
  const r = cifarRecords(7, 1, [10]);
  writeFileSync(join(root, 'test_batch.bin'), r.bytes.subarray(0, r.bytes.length - 5));
  expectDataError(() => loadCifar10({ root, split: 'test' }), 'test_batch.bin', `${7 * 3073 - 5} bytes`, '3073-byte');
  writeFileSync(join(root, 'test_batch.bin'), new Uint8Array(0));
  expectDataError(() => loadCifar10({ root, split: 'test' }), 'not a whole number');
  r.bytes[3 * 3073] = 10;
  writeFileSync(join(root, 'test_batch.bin'), r.bytes);
  expectDataError(() => loadCifar10({ root, split: 'test' }), 'test_batch.bin', 'label 10 at index 3', '0..9');

  const c100 = folder('c100-bad/cifar-100-binary');
  const t = cifarRecords(4, 2, [20, 100]);
  t.bytes[2 * 3074 + 1] = 100;
  writeFileSync(join(c100, 'test.bin'), t.bytes);
  expectDataError(() => loadCifar100({ root: c100, split: 'test' }), 'fine label 100 at index 2', '0..99');
  t.bytes[2 * 3074 + 1] = 5;
  t.bytes[1 * 3074] = 20;
  writeFileSync(join(c100, 'test.bin'), t.bytes);
  expectDataError(() => loadCifar100({ root: c100, split: 'test', labels: 'coarse' }), 'coarse label 20 at index 1', '0..19');
  writeFileSync(join(c100, 'test.bin'), t.bytes.subarray(0, 3073 * 2));
  expectDataError(() => loadCifar100({ root: c100, split: 'test' }), '3074-byte');
  expectDataError(() => loadDataset('cifar10', 'train'), 'no data folder');
  expectDataError(() => loadDataset('imagenet', 'train'), "unknown dataset 'imagenet'");
});

test('synthetic data: deterministic from the seed, balanced, splits share the patterns', () => {
  const opts = { n: 23, classes: 5, shape: [2, 7, 9] as const, seed: 3 };
  const a = syntheticDataset(opts);
  const b = syntheticDataset(opts);
  assert.equal(a.shape, [23, 2, 7, 9]);
  assert.ok(a.images.every((v, i) => v === b.images[i]), 'same seed, same bytes');
  assert.ok(a.labels.every((v, i) => v === b.labels[i] && v >= 0 && v < 5));
  const other = syntheticDataset({ ...opts, seed: 4 });
  assert.ok(other.images.some((v, i) => v !== a.images[i]), 'another seed, other bytes');
  const testSplit = syntheticDataset({ ...opts, split: 'test' });
  assert.equal(testSplit.mean, a.mean);
  assert.ok(testSplit.images.some((v, i) => v !== a.images[i]), 'the test split draws other noise');
  // Noise-free images equal their class pattern in both splits: same task.
  const clean = syntheticDataset({ ...opts, noise: 0 });
  const cleanTest = syntheticDataset({ ...opts, noise: 0, split: 'test' });
  assert.ok(clean.images.every((v, i) => v === cleanTest.images[i]));
  // Normalized values have mean ~0 and std ~1 per channel.
  const big = syntheticDataset({ n: 200, classes: 10, seed: 9 });
  for (let c = 0; c < 3; c++) {
    let s = 0, s2 = 0, count = 0;
    for (let i = 0; i < 200; i++) {
      for (let j = 0; j < 1024; j++) {
        const v = (big.images[(i * 3 + c) * 1024 + j]! / 255 - big.mean[c]!) / big.std[c]!;
        s += v;
        s2 += v * v;
        count++;
      }
    }
    assert.ok(Math.abs(s / count) < 0.1 && Math.abs(Math.sqrt(s2 / count) - 1) < 0.1, `channel ${c}: mean ${s / count}, rms ${Math.sqrt(s2 / count)}`);
  }
  const sub = subset(big, 10, 17);
  assert.equal(sub.shape, [7, 3, 32, 32]);
  assert.is(sub.labels[0], big.labels[10]);
  assert.is(sub.images[0], big.images[10 * 3072]);
  expectDataError(() => subset(big, 5, 201), 'outside its 200 images');
});

test('the JavaScript hash reproduces the GPU generator bit for bit', async () => {
  const seed = Math.floor(rand() * 2 ** 32);
  const g = new E.Generator(seed, 12345);
  const u = await E.rand([1001], 0, 1, { generator: g }).toArray();
  for (let i = 0; i < u.length; i++) assert.is(u[i], unit(hash(seed, 12345 + i)), `element ${i}`);
  const g2 = new E.Generator(seed, 7);
  const z = await E.randn([301], 0, 1, { generator: g2 }).toArray();
  for (let i = 0; i < z.length; i++) assert.ok(Math.abs(z[i]! - normal(seed, 7 + i)) < 1e-4, `normal ${i}: ${z[i]} vs ${normal(seed, 7 + i)}`);
});

test('permutation: every index once, seeded, roughly uniform', () => {
  const p = permutation(1000, 5);
  assert.equal([...p].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  assert.equal([...permutation(1000, 5)], [...p]);
  assert.not.equal([...permutation(1000, 6)], [...p]);
  // Position of element 0 over many seeds: each of 4 quarters gets about a quarter.
  const quarters = [0, 0, 0, 0];
  for (let s = 0; s < 2000; s++) quarters[Math.floor(permutation(8, s).indexOf(0) / 2)]!++;
  for (const q of quarters) assert.ok(q > 400 && q < 600, `quarters ${quarters}`);
});

test.run();
