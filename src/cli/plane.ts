// `neuralign plane`: the loss plane of a trained curve (Tatro et al. 2020, section 7; Garipov's
// plane.py): test loss and accuracy on a G x G grid of the plane through theta_A, P theta_B and
// the bend, batch norm re-estimated at every grid point, the control points' coordinates and the
// curve's and the line's projections, as JSON ready for a heatmap (src/align/plane.ts).
import { openCurve, closeCurve } from '../align/curve-file.js';
import { batchNormLayers } from '../align/interpolate.js';
import { evaluatePlane, type PlanePoint } from '../align/plane.js';
import { CIFAR_AUGMENT, DataLoader, firstImages } from '../nn/data/index.js';
import { paperDefaults } from '../nn/train-run.js';
import { UsageError, positiveInteger, type FlagSpec, type Flags } from './args.js';
import { checkpointData } from './checkpoints.js';
import { defineCommand } from './command.js';
import { claimOutputs, writeJson } from './output.js';

const spec = {
  curve: { type: 'string', help: 'the curve file, DIR/curve.safetensors from `neuralign curve` (required)' },
  grid: { type: 'number', help: 'grid points per axis (Garipov uses 21)', default: 17 },
  margin: { type: 'number', help: "margin on each side, a fraction of the control points' span (Garipov's)", default: 0.2 },
  bend: { type: 'number', help: 'the bend the plane goes through, 1 .. n-2 (default: the middle one)' },
  'curve-points': { type: 'number', help: 'values of t at which the curve is projected into the plane', default: 65 },
  json: { type: 'string', help: 'write the grid, coordinates and projections to this JSON file' },
  'train-metrics': { type: 'boolean', help: 'also evaluate loss and accuracy on the training images (unaugmented) at every point' },
  'train-subset': { type: 'number', help: 're-estimate batch norm (and train metrics) on the first N training images' },
  'test-subset': { type: 'number', help: 'evaluate on the first N test images' },
  'batch-size': { type: 'number', help: "batch size (default: endpoint A's training batch size)" },
  'bn-batches': { type: 'number', help: 're-estimate batch norm on the first N training batches only (default: one full pass)' },
  'no-augment': { type: 'boolean', help: "re-estimate batch norm on unaugmented images (default: augmented as A was trained, the paper's train loader)" },
  'data-dir': { type: 'string', help: "data folder (default: endpoint A's training data folder)" },
} satisfies FlagSpec;

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

async function run(flags: Flags<typeof spec>): Promise<number> {
  if (!flags.curve) throw new UsageError('--curve FILE is required');
  const grid = flags.grid;
  if (!(Number.isInteger(grid) && grid >= 2)) throw new UsageError(`--grid needs an integer >= 2, got ${grid}`);
  if (!(flags.margin >= 0)) throw new UsageError(`--margin needs a number >= 0, got ${flags.margin}`);
  const curvePoints = flags['curve-points'];
  if (!(Number.isInteger(curvePoints) && curvePoints >= 2)) throw new UsageError(`--curve-points needs an integer >= 2, got ${curvePoints}`);
  const bend = positiveInteger(flags.bend, 'bend');
  const bnBatches = positiveInteger(flags['bn-batches'], 'bn-batches');
  const trainSubset = positiveInteger(flags['train-subset'], 'train-subset');
  const testSubset = positiveInteger(flags['test-subset'], 'test-subset');
  const batchFlag = positiveInteger(flags['batch-size'], 'batch-size');

  claimOutputs({ '--json': flags.json }); // can be written, checked before the work
  const start = performance.now();
  const opened = await openCurve(flags.curve);
  try {
    const { curve, model, meta } = opened;
    if (bend !== undefined && bend > curve.bends.length) throw new UsageError(`--bend ${bend}: the curve has ${curve.bends.length} bend(s)`);
    const a = opened.endpoints.a;
    const training = a.meta.training as { batchSize?: number; augment?: boolean };
    const batchSize = batchFlag ?? training.batchSize ?? 128;
    const augment = !flags['no-augment'] && (training.augment ?? paperDefaults(a.meta.model, a.meta.dataset).augment);
    const hasBatchNorm = batchNormLayers(model).length > 0;
    const needTrain = hasBatchNorm || flags['train-metrics'];
    const train = needTrain ? firstImages(checkpointData(a.meta, 'train', flags['data-dir']), trainSubset, 'train-subset') : null;
    const test = firstImages(checkpointData(a.meta, 'test', flags['data-dir']), testSubset, 'test-subset');
    // The paper's train loader for BN (shuffled, augmented as in training; the same images at every
    // point); train metrics on the same images unaugmented, in order.
    const bnLoader = hasBatchNorm ? new DataLoader(train!, { batchSize, shuffle: true, augment: augment ? CIFAR_AUGMENT : null, seed: 0 }) : null;
    const trainLoader = flags['train-metrics'] ? new DataLoader(train!, { batchSize }) : undefined;

    const bnBatchCount = bnLoader ? Math.min(bnLoader.length, bnBatches ?? Infinity) : 0;
    const bnWhat = hasBatchNorm
      ? `batch norm re-estimated at each point on ${train!.name} (${bnBatchCount} batches of ${batchSize}, ${augment ? 'augmented' : 'not augmented'})`
      : 'no batch norm';
    const permuted = meta.permutation ? `P(B) (${meta.permutation.method})` : 'B';
    console.log(`plane of ${flags.curve} (${meta.curve}, ${meta.points} points; ${meta.model} on ${meta.dataset}): A, ${permuted} and the bend; ${grid} x ${grid} grid; ${bnWhat}; test on ${test.name}`);
    const line = (p: PlanePoint, done: number, total: number) => {
      const where = p.label ? p.label.padEnd(7) : `(${p.ix},${p.iy})`.padEnd(7);
      const tr = p.train ? `  train ${p.train.loss.toFixed(4)} ${pct(p.train.accuracy)}` : '';
      process.stderr.write(`[${String(done).padStart(String(total).length)}/${total}] ${where} x ${p.x.toFixed(3).padStart(8)}  y ${p.y.toFixed(3).padStart(8)}  loss ${p.loss.toFixed(4)}  accuracy ${pct(p.accuracy).padStart(7)}${tr}  ${p.seconds.toFixed(1)} s\n`);
    };
    const result = await evaluatePlane(model, curve, {
      grid,
      margin: flags.margin,
      bend,
      curvePoints,
      bn: bnLoader,
      bnBatches,
      test: new DataLoader(test, { batchSize }),
      train: trainLoader,
      onPoint: line,
    });

    console.log(`basis: |B - A| = ${result.basis.xLength.toPrecision(5)}, bend ${result.bend} at distance ${result.basis.yLength.toPrecision(5)} from the line A-B (${result.basis.parameters} parameters in ${result.basis.tensors} tensors)`);
    if (result.note) console.log(`note: ${result.note}`);
    for (const c of result.controlPoints) {
      const ev = c.eval ? `  test loss ${c.eval.loss.toFixed(4)}, accuracy ${pct(c.eval.accuracy)}` : `  (off the plane by ${c.distance.toPrecision(3)})`;
      console.log(`${c.label.padEnd(6)} at (${c.x.toFixed(3)}, ${c.y.toFixed(3)})${ev}`);
    }
    const m = result.minimum;
    console.log(`grid minimum: test loss ${m.loss.toFixed(4)} (accuracy ${pct(m.accuracy)}) at (${m.x.toFixed(3)}, ${m.y.toFixed(3)}), grid point (${m.ix},${m.iy})`);
    const maxLoss = Math.max(...result.loss.flat());
    console.log(`grid maximum: test loss ${maxLoss.toFixed(4)}; curve's largest distance from the plane ${Math.max(...result.curveProjection.distance).toExponential(2)}`);
    if (flags.json) {
      await writeJson(flags.json, {
        command: 'plane',
        curveFile: flags.curve,
        a: a.path,
        b: opened.endpoints.b.path,
        permutation: meta.permutation ? meta.permutation.method : null,
        model: meta.model,
        config: { inChannels: meta.config.inChannels, numClasses: meta.config.numClasses, width: meta.config.width },
        dataset: meta.dataset,
        ...result,
        batchNorm: { ...result.batchNorm, trainImages: hasBatchNorm ? train!.shape[0] : 0, batches: bnBatchCount, batchSize, augment: hasBatchNorm && augment },
        test: { name: test.name, images: test.shape[0] },
        seconds: (performance.now() - start) / 1000,
      });
      console.log(`wrote ${flags.json}`);
    }
    return 0;
  } finally {
    closeCurve(opened);
  }
}

export const plane = defineCommand({
  usage: 'neuralign plane --curve DIR/curve.safetensors [--grid 17] [--margin 0.2] [--json out.json] [options]',
  description:
    "Test loss and accuracy on a grid of the plane through A, P(B) and the curve's bend (Gram-Schmidt over all\n" +
    "weights, Tatro et al. 2020 section 7, Garipov et al.'s plane.py), batch norm re-estimated at every point, with\n" +
    "the control points' coordinates and the curve's and the line's projections (JSON: loss[iy][ix] for a heatmap).",
  spec,
  run,
});
