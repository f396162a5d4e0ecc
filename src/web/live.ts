// The live page (live.html): the paper's core effect in the tab. Two small MLPs trained from
// different seeds on a Fashion-MNIST subset (the first 4,000 training and 1,000 test images, which
// the build writes into dist/web/data/ from the installed data set; where it did not, a seeded
// synthetic image task, src/nn/data/synthetic.ts), B aligned to A by activation correlation
// (alignModels), and the straight lines A-B and A-P(B) evaluated on the test split and plotted;
// `neuralign demo` does the same in Node. URL parameters: auto=1 runs at once; data=fashion-mnist
// or synthetic (default: Fashion-MNIST where the build wrote it); n=2000 (training images);
// epochs=2; points=9 (values of t); width=0.25 (of the MLP's 512 + 512 hidden units); test=1000.
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { linearBarrier, minimum } from '../align/barrier.js';
import { alignModels, disposeStateDict } from '../align/index.js';
import { evaluateLine, linspace } from '../align/interpolate.js';
import { DataLoader } from '../nn/data/loader.js';
import { subset, type ImageDataset } from '../nn/data/dataset.js';
import { mnistLikeDataset, parseIdx } from '../nn/data/idx-format.js';
import { syntheticDataset } from '../nn/data/synthetic.js';
import { createModel } from '../nn/models/index.js';
import { SGD } from '../nn/optim.js';
import { trainLoop } from '../nn/train.js';
import { byId, catchUncaught, el, page, setStatus, showError, startEngine } from './ui.js';

const params = new URLSearchParams(location.search);
const num = (name: string, fallback: number) => Number(params.get(name)) || fallback;

const SHAPE = [1, 32, 32] as const;

async function train(seed: number, loader: DataLoader, epochs: number, width: number) {
  const model = createModel('mlp', { inChannels: 1, numClasses: 10, width, seed });
  const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  await trainLoop({
    model,
    optimizer,
    schedule: () => 0.05,
    train: loader,
    test: null, // the lines' ends evaluate A and B on the test split
    epochs,
    readEvery: 10,
    onProgress: (p) => setStatus(`training model ${seed === 1 ? 'A' : 'B'}: epoch ${p.epoch}/${p.epochs}, step ${p.step}/${p.steps}, accuracy ${(100 * p.accuracy).toFixed(1)}%`),
  });
  optimizer.dispose();
  return model;
}

/** One split of the Fashion-MNIST subset under data/, or null where the build wrote none. */
async function fashionSplit(split: 'train' | 'test'): Promise<ImageDataset | null> {
  const urls = { images: `data/fashion-mnist/${split}-images.idx`, labels: `data/fashion-mnist/${split}-labels.idx` };
  const [images, labels] = await Promise.all([urls.images, urls.labels].map((u) => fetch(u)));
  if (!images!.ok || !labels!.ok) return null;
  const parse = async (r: Response, url: string) => parseIdx(new Uint8Array(await r.arrayBuffer()), url);
  return mnistLikeDataset('fashion-mnist', split, await parse(images!, urls.images), await parse(labels!, urls.labels), urls);
}

/** The training and test sets: Fashion-MNIST where present (and not data=synthetic), else synthetic. */
async function dataSets(n: number, nTest: number): Promise<{ name: string; train: ImageDataset; test: ImageDataset }> {
  if (params.get('data') !== 'synthetic') {
    const [train, test] = await Promise.all([fashionSplit('train'), fashionSplit('test')]);
    if (train && test) return { name: 'fashion-mnist', train: subset(train, 0, Math.min(n, train.shape[0])), test: subset(test, 0, Math.min(nTest, test.shape[0])) };
    if (params.get('data') === 'fashion-mnist') throw new Error('no Fashion-MNIST subset under data/ (the build writes it where /usr/share/datasets/fashion-mnist is installed)');
  }
  const synthetic = (split: 'train' | 'test', size: number) => syntheticDataset({ n: size, shape: SHAPE, seed: 7, split, noise: 160, name: 'synthetic' });
  return { name: 'synthetic', train: synthetic('train', n), test: synthetic('test', nTest) };
}

async function run(): Promise<void> {
  page.state = 'running';
  const n = num('n', 2000);
  const epochs = num('epochs', 2);
  const points = num('points', 9);
  const width = num('width', 0.25);
  setStatus('loading the data…');
  const data = await dataSets(n, num('test', 1000));
  const { train: trainSet, test: testSet } = data;
  const loader = (set: typeof trainSet, shuffle: boolean) => new DataLoader(set, { batchSize: 64, shuffle, seed: 1 });
  const testLoader = new DataLoader(testSet, { batchSize: 500 });
  const started = performance.now();
  const seconds: Record<string, number> = {};
  const lap = (name: string) => (seconds[name] = (performance.now() - started) / 1000 - Object.values(seconds).reduce((x, y) => x + y, 0));
  const a = await train(1, loader(trainSet, true), epochs, width);
  const b = await train(2, loader(trainSet, true), epochs, width);
  lap('train');
  setStatus('aligning B to A (activation correlation on the training images)…');
  const aligned = await alignModels(a, b, loader(trainSet, false));
  const layers = el('table');
  const head = el('tr');
  head.append(el('th', 'layer'), el('th', 'units'), el('th', 'correlation before'), el('th', 'after'));
  layers.append(head);
  for (const l of aligned.layers) {
    const tr = el('tr');
    tr.append(el('td', l.layer), el('td', String(l.units)), el('td', l.before.toFixed(3)), el('td', l.after.toFixed(3)));
    layers.append(tr);
  }
  byId('alignment').replaceChildren(layers);
  lap('align');

  setStatus('evaluating the straight lines A-B and A-P(B)…');
  const ts = linspace(points);
  const probe = createModel('mlp', { inChannels: 1, numClasses: 10, width, seed: 3 });
  probe.eval();
  const stateA = a.stateDict();
  const lines = {
    'A-B': await evaluateLine(probe, stateA, b.stateDict(), ts, { bn: null, test: testLoader }),
    'A-P(B)': await evaluateLine(probe, stateA, aligned.state, ts, { bn: null, test: testLoader }),
  };
  lap('lines');
  const ab = lines['A-B'];
  const endpoints = [ab[0]!.accuracy, ab[ab.length - 1]!.accuracy];
  const summary = Object.fromEntries(
    Object.entries(lines).map(([name, pts]) => [name, {
      barrier: linearBarrier(ts, pts.map((p) => p.loss)).value,
      minAccuracy: minimum(ts, pts.map((p) => p.accuracy)).value,
    }]),
  );
  const values = Object.entries(lines).flatMap(([line, pts]) => pts.map((p) => ({ line, t: p.t, accuracy: 100 * p.accuracy, loss: p.loss })));
  const panel = (field: string, title: string) => ({
    width: 300, height: 200, mark: { type: 'line', point: true, tooltip: true },
    encoding: { x: { field: 't', type: 'quantitative' }, y: { field, type: 'quantitative', title, scale: { zero: false } }, color: { field: 'line', type: 'nominal', title: null } },
  });
  const spec = { data: { values }, hconcat: [panel('accuracy', 'test accuracy (%)'), panel('loss', 'test loss')] };
  const view = new vega.View(vega.parse(vl.compile(spec as never).spec), { renderer: 'svg', container: byId('plot'), hover: true });
  await view.runAsync();
  byId('summary').textContent =
    `${data.name === 'fashion-mnist' ? 'Fashion-MNIST' : 'The synthetic task'}, ${trainSet.shape[0]} training and ${testSet.shape[0]} test images. ` +
    `Endpoints: A ${(100 * endpoints[0]!).toFixed(1)}%, B ${(100 * endpoints[1]!).toFixed(1)}% test accuracy. ` +
    `Loss barrier A-B ${summary['A-B']!.barrier.toFixed(3)}, A-P(B) ${summary['A-P(B)']!.barrier.toFixed(3)}; ` +
    `minimum accuracy on the line A-B ${(100 * summary['A-B']!.minAccuracy).toFixed(1)}%, A-P(B) ${(100 * summary['A-P(B)']!.minAccuracy).toFixed(1)}%.`;
  page.result = { dataset: data.name, trainImages: trainSet.shape[0], endpoints, layers: aligned.layers.map((l) => ({ layer: l.layer, before: l.before, after: l.after })), lines: values, summary, seconds };
  disposeStateDict(aligned.state);
  for (const m of [a, b, probe]) m.dispose();
  page.state = 'done';
  setStatus('done');
}

async function main(): Promise<void> {
  catchUncaught();
  setStatus('opening a WebGPU device…');
  const rt = await startEngine();
  if (!rt) return;
  const button = byId<HTMLButtonElement>('run');
  button.disabled = false;
  const go = () => {
    button.disabled = true;
    run().catch((e: Error) => showError('The run failed', e.message)).finally(() => (button.disabled = false));
  };
  button.addEventListener('click', go);
  page.state = 'ready';
  setStatus(`ready on ${rt.info.description}`);
  if (params.get('auto') === '1') go();
}

void main();
