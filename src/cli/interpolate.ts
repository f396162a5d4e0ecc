// `neuralign interpolate`: test loss and accuracy along the straight line (1 - t) A + t B at
// equally spaced t (the paper's evaluation protocol uses 65), batch-norm statistics re-estimated
// at every t on one pass of the training loader (src/align/interpolate.ts), and the barrier
// metrics of the literature (src/align/barrier.ts). Run it on A, B and on A, P(B) (the output of
// `neuralign align`) to see what alignment does to the barrier.
import { barrierSummary, type BarrierSummary } from '../align/barrier.js';
import { batchNormLayers, evaluatePath, interpolateInto, linspace, type PathPoint } from '../align/interpolate.js';
import { disposeStateDict } from '../align/permute.js';
import { repairInterpolation, repairableLayers } from '../align/repair.js';
import { CIFAR_AUGMENT, DataLoader, firstImages } from '../nn/data/index.js';
import { paperDefaults } from '../nn/train-run.js';
import { UsageError, positiveInteger, type FlagSpec, type Flags } from './args.js';
import { checkSamePair, checkpointData, openCheckpoint, type OpenCheckpoint } from './checkpoints.js';
import { defineCommand } from './command.js';
import { claimOutputs, writeJson } from './output.js';

const spec = {
  a: { type: 'string', help: 'checkpoint at t = 0 (required)' },
  b: { type: 'string', help: 'checkpoint at t = 1, e.g. the output of `neuralign align` (required)' },
  points: { type: 'number', help: 'equally spaced values of t in [0, 1], as many as the paper', default: 65 },
  json: { type: 'string', help: 'write the points and barrier metrics to this JSON file' },
  'bn-batches': { type: 'number', help: 're-estimate batch norm on the first N training batches only (default: one full pass)' },
  'train-subset': { type: 'number', help: 're-estimate batch norm on the first N training images' },
  'test-subset': { type: 'number', help: 'evaluate on the first N test images' },
  'batch-size': { type: 'number', help: "batch size (default: checkpoint A's training batch size)" },
  'no-augment': { type: 'boolean', help: "re-estimate batch norm on unaugmented images (default: augmented as A was trained, the paper's train loader)" },
  repair: { type: 'boolean', help: 'REPAIR (Jordan et al. 2023) at every t: rescale each layer\'s channel statistics to the endpoints\' interpolation (for networks without batch norm; replaces BN re-estimation)' },
  'repair-samples': { type: 'number', help: 'training images REPAIR measures statistics on', default: 5000 },
  'no-bn-reset': { type: 'boolean', help: 'keep the interpolated running statistics instead of re-estimating them (the naive baseline)' },
  'data-dir': { type: 'string', help: "data folder (default: checkpoint A's training data folder)" },
} satisfies FlagSpec;

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

function summaryLines(s: BarrierSummary): string[] {
  const at = (t: number | undefined) => (t === undefined ? '' : ` at t = ${t.toFixed(3)}`);
  return [
    `endpoints: loss ${s.endpoints.loss.map((l) => l.toFixed(4)).join(' / ')}, accuracy ${s.endpoints.accuracy.map(pct).join(' / ')}`,
    `loss barrier ${s.lossBarrierLinear.value.toFixed(4)}${at(s.lossBarrierLinear.t)}    [${s.lossBarrierLinear.source}]`,
    `loss barrier ${s.lossBarrierMean.value.toFixed(4)}${at(s.lossBarrierMean.t)}    [${s.lossBarrierMean.source}]`,
    `midpoint loss barrier ${s.midpointLossBarrier.value.toFixed(4)}    [${s.midpointLossBarrier.source}]`,
    `midpoint accuracy drop ${(100 * s.midpointAccuracyDrop.value).toFixed(2)} points    [${s.midpointAccuracyDrop.source}]`,
    `min accuracy ${pct(s.minAccuracy.value)}${at(s.minAccuracy.t)}    [${s.minAccuracy.source}]`,
    `mean accuracy ${pct(s.meanAccuracy.value)}    [${s.meanAccuracy.source}]`,
    `mean loss ${s.meanLoss.value.toFixed(4)}    [${s.meanLoss.source}]`,
  ];
}

async function run(flags: Flags<typeof spec>): Promise<number> {
  for (const name of ['a', 'b'] as const) if (!flags[name]) throw new UsageError(`--${name} FILE is required`);
  const points = flags.points;
  if (!(Number.isInteger(points) && points >= 2)) throw new UsageError(`--points needs an integer >= 2, got ${points}`);
  const bnBatches = positiveInteger(flags['bn-batches'], 'bn-batches');
  const trainSubset = positiveInteger(flags['train-subset'], 'train-subset');
  const testSubset = positiveInteger(flags['test-subset'], 'test-subset');
  const batchFlag = positiveInteger(flags['batch-size'], 'batch-size');
  const repair = flags.repair;
  const bnReset = !flags['no-bn-reset'] && !repair;
  const repairSamples = positiveInteger(flags['repair-samples'], 'repair-samples')!;

  claimOutputs({ '--json': flags.json }); // can be written, checked before the work
  const start = performance.now();
  const opened: OpenCheckpoint[] = [];
  try {
    const a = await openCheckpoint(flags.a!);
    opened.push(a);
    const b = await openCheckpoint(flags.b!);
    opened.push(b);
    checkSamePair(a, b, 'interpolate');
    // The point of the path lives in a third network; A's and B's hold the endpoints.
    const net = (await openCheckpoint(flags.a!)).model;
    opened.push({ ...a, model: net });

    const training = a.meta.training as { batchSize?: number; augment?: boolean };
    const batchSize = batchFlag ?? training.batchSize ?? 128;
    const augment = !flags['no-augment'] && (training.augment ?? paperDefaults(a.meta.model, a.meta.dataset).augment);
    const hasBatchNorm = batchNormLayers(net).length > 0;
    const train = hasBatchNorm && bnReset ? firstImages(checkpointData(a.meta, 'train', flags['data-dir']), trainSubset, 'train-subset') : null;
    const test = firstImages(checkpointData(a.meta, 'test', flags['data-dir']), testSubset, 'test-subset');
    // The paper's train loader: shuffled, augmented as in training; the same images at every t.
    const bnLoader = train ? new DataLoader(train, { batchSize, shuffle: true, augment: augment ? CIFAR_AUGMENT : null, seed: 0 }) : null;

    if (repair && repairableLayers(net).length === 0) throw new UsageError(`--repair: no layer of ${a.meta.model} can be repaired`);
    // REPAIR's statistics: the first training images, test transform, the same at every t.
    const repairLoader = repair
      ? new DataLoader(firstImages(checkpointData(a.meta, 'train', flags['data-dir']), repairSamples, 'repair-samples'), { batchSize })
      : null;
    const stateA = a.model.stateDict();
    const stateB = b.model.stateDict();
    const load = repairLoader
      ? async (t: number) => disposeStateDict(await repairInterpolation(a.model, b.model, t, repairLoader, { workspace: net }))
      : (t: number) => interpolateInto(net, stateA, stateB, t);

    const bnWhat = repair
      ? `REPAIR at each t on the first ${repairLoader!.dataset.shape[0]} training images`
      : !hasBatchNorm
      ? 'no batch norm'
      : !bnReset
        ? 'batch norm: interpolated running statistics (no re-estimation)'
        : `batch norm re-estimated at each t on ${train!.name} (${Math.min(bnLoader!.length, bnBatches ?? Infinity)} batches of ${batchSize}, ${augment ? 'augmented' : 'not augmented'})`;
    console.log(`interpolating ${a.path} -> ${b.path} (${a.meta.model} on ${a.meta.dataset}) at ${points} points; ${bnWhat}; test on ${test.name}`);
    console.log(`${'t'.padStart(6)}  ${'loss'.padStart(8)}  ${'accuracy'.padStart(8)}  ${'seconds'.padStart(7)}`);
    const path: PathPoint[] = await evaluatePath(net, linspace(points), load, {
      bn: bnLoader,
      bnBatches,
      test: new DataLoader(test, { batchSize }),
      onPoint: (p) => console.log(`${p.t.toFixed(4).padStart(6)}  ${p.loss.toFixed(4).padStart(8)}  ${pct(p.accuracy).padStart(8)}  ${p.seconds.toFixed(1).padStart(7)}`),
    });
    const ts = path.map((p) => p.t);
    const barriers = barrierSummary(ts, path.map((p) => p.loss), path.map((p) => p.accuracy));
    for (const line of summaryLines(barriers)) console.log(line);
    if (flags.json) {
      await writeJson(flags.json, {
        command: 'interpolate',
        a: a.path,
        b: b.path,
        model: a.meta.model,
        config: { inChannels: a.meta.config.inChannels, numClasses: a.meta.config.numClasses, width: a.meta.config.width },
        dataset: a.meta.dataset,
        path: 'line',
        repair: repair ? { images: repairLoader!.dataset.shape[0] } : null,
        batchNorm: {
          present: hasBatchNorm,
          reset: hasBatchNorm && bnReset,
          trainImages: train?.shape[0] ?? 0,
          batches: bnLoader ? Math.min(bnLoader.length, bnBatches ?? Infinity) : 0,
          batchSize,
          augment: !!bnLoader && augment,
        },
        test: { name: test.name, images: test.shape[0] },
        points: path,
        barriers,
        seconds: (performance.now() - start) / 1000,
      });
      console.log(`wrote ${flags.json}`);
    }
    return 0;
  } finally {
    for (const c of opened) c.model.dispose();
  }
}

export const interpolate = defineCommand({
  usage: 'neuralign interpolate --a A.safetensors --b B.safetensors [--points 65] [--json out.json] [options]',
  description:
    'Test loss and accuracy along (1 - t) A + t B with batch-norm statistics re-estimated at every t (Tatro et al. 2020,\n' +
    'section 7), and the barrier metrics of Entezari et al., Git Re-Basin, REPAIR and Tatro et al.',
  spec,
  run,
});
