// The live page (src/web/live.ts) in headless chromium on SwiftShader's WebGPU: two MLPs trained
// in the tab on the build's Fashion-MNIST subset (checked byte for byte against the installed data
// set) and on the synthetic task, B aligned to A, both lines evaluated and plotted. Small sizes
// (512 images, three epochs, three values of t) keep it to seconds; the property checked is the
// alignment's own: every hidden layer's matched correlation rises.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { testUnless } from '../helpers.js';
import { FASHION_MNIST_ROOT, loadFashionMnist, readIdx } from '../../src/nn/data/idx.js';
import { mnistLikeDataset } from '../../src/nn/data/idx-format.js';
import { browserSkipReason, browserSuite, webDir } from './browser.js';

const { test, session } = browserSuite('live page');


interface LiveState {
  state: string;
  error?: string;
  result?: {
    dataset: string;
    trainImages: number;
    endpoints: number[];
    layers: { layer: string; before: number; after: number }[];
    lines: { line: string; t: number; accuracy: number; loss: number }[];
  };
}

/** The Fashion-MNIST subset the build writes into web/data/ where the data set is installed. */
const subsetDir = () => join(webDir(), 'data', 'fashion-mnist');
const noFashion = existsSync(join(FASHION_MNIST_ROOT, 'train-images-idx3-ubyte.gz')) ? null : `no Fashion-MNIST at ${FASHION_MNIST_ROOT}: the build writes no subset for the live page`;

testUnless(test, noFashion, "the build's Fashion-MNIST subset: the first 4,000 training and 1,000 test images and labels, byte for byte", () => {
  for (const [split, n] of [['train', 4000], ['test', 1000]] as const) {
    const full = loadFashionMnist({ split });
    const where = { images: `${split}-images.idx`, labels: `${split}-labels.idx` };
    const part = mnistLikeDataset('fashion-mnist', split, readIdx(join(subsetDir(), where.images)), readIdx(join(subsetDir(), where.labels)), where);
    assert.equal(part.shape, [n, 1, 28, 28]);
    assert.ok(Buffer.from(part.images).equals(Buffer.from(full.images.subarray(0, n * 784))), `${split} images`);
    assert.equal([...part.labels], [...full.labels.subarray(0, n)], `${split} labels`);
  }
});

for (const data of ['fashion-mnist', 'synthetic'] as const) {
  const skip = browserSkipReason ?? (data === 'fashion-mnist' ? noFashion : null);
  testUnless(test, skip, `${data}: trains two MLPs, aligns them and plots A-B and A-P(B)`, () => livePage(data));
}

async function livePage(data: string): Promise<void> {
  const page = await session.browser!.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${session.server!.url}live.html?auto=1&data=${data}&n=512&epochs=3&points=3&test=250&width=0.125`);
  await page.waitForFunction(() => ['done', 'error'].includes((window as unknown as { neuralign?: LiveState }).neuralign?.state ?? ''), null, { timeout: 120_000 });
  const state = await page.evaluate(() => (window as unknown as { neuralign: LiveState }).neuralign);
  assert.equal(errors, []);
  assert.is(state.error, undefined);
  const r = state.result!;
  assert.equal(r.layers.map((l) => l.layer), ['layers.0', 'layers.2'], 'both hidden layers aligned');
  for (const l of r.layers) assert.ok(l.after > l.before, `${l.layer}: correlation ${l.before} -> ${l.after}`);
  assert.equal(r.lines.map((p) => `${p.line} ${p.t}`), ['A-B 0', 'A-B 0.5', 'A-B 1', 'A-P(B) 0', 'A-P(B) 0.5', 'A-P(B) 1']);
  // Both lines start at A, and A-P(B) ends at P(B), which computes what B does.
  assert.is(r.lines[0]!.accuracy, r.lines[3]!.accuracy);
  assert.ok(Math.abs(r.lines[2]!.accuracy - r.lines[5]!.accuracy) <= 100 / 250 + 1e-9, 'P(B) is B up to float rounding');
  assert.ok(r.endpoints.every((a) => a > 0.2), `the endpoints learned (${r.endpoints})`);
  assert.is(await page.locator('#plot svg').count(), 1);
  assert.is(r.dataset, data);
  assert.is(r.trainImages, 512);
  await page.close();
}

test.run();
