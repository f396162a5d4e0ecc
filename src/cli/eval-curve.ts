// `neuralign eval-curve`: test loss and accuracy along a trained curve at equally spaced t (65 in
// the paper), BN re-estimated at every t as `interpolate` does (or REPAIR with --repair), and with
// --line the straight line between the same endpoints in the same run; Tatro's Min and
// arc-length Avg, Garipov's statistics and every barrier of `interpolate` (src/align/curve-eval.ts).
// With --robust (section 4), BN is re-estimated on PGD examples of the training batches and the
// test set is evaluated clean and under PGD at every t, with the robust loss barrier and the
// robust summaries of the paper's plots.
import { closeCurve, openCurve } from '../align/curve-file.js';
import { evaluateCurve, evaluateCurveLine, type PathResult } from '../align/curve-eval.js';
import { batchNormLayers, linspace, type PathPoint } from '../align/interpolate.js';
import { repairableLayers } from '../align/repair.js';
import { createModel } from '../nn/models/index.js';
import { CIFAR_AUGMENT, DataLoader, firstImages } from '../nn/data/index.js';
import { UsageError, positiveInteger, type FlagSpec, type Flags } from './args.js';
import { checkpointData } from './checkpoints.js';
import { defineCommand } from './command.js';
import { inputSpace, pgdRecipe } from '../nn/pgd.js';
import { describeTuning, tuneKernels } from '../nn/tune-kernels.js';
import { PGD_FLAGS, describePgd, pgdFromFlags } from './pgd-flags.js';
import { claimOutputs, writeJson } from './output.js';

const spec = {
  curve: { type: 'string', help: 'a curve file written by `neuralign curve` (DIR/curve.safetensors; required)' },
  points: { type: 'number', help: 'equally spaced values of t in [0, 1], as many as the paper', default: 65 },
  line: { type: 'boolean', help: 'also evaluate the straight line between the same endpoints, with the same data and BN policy' },
  json: { type: 'string', help: 'write every point and summary to this JSON file' },
  'train-metrics': { type: 'boolean', help: 'also train loss (with and without the L2 term) and accuracy at every t, on unaugmented training images' },
  'train-subset': { type: 'number', help: 're-estimate batch norm (and measure train metrics) on the first N training images' },
  'test-subset': { type: 'number', help: 'evaluate on the first N test images' },
  'bn-batches': { type: 'number', help: 're-estimate batch norm on the first N training batches only (default: one full pass)' },
  'batch-size': { type: 'number', help: "batch size (default: the curve's training batch size)" },
  'no-augment': { type: 'boolean', help: 're-estimate batch norm on unaugmented images (default: augmented as the curve was trained)' },
  repair: { type: 'boolean', help: 'REPAIR (Jordan et al. 2023) at every t instead of BN re-estimation (for networks without batch norm)' },
  'repair-samples': { type: 'number', help: 'training images REPAIR measures statistics on', default: 5000 },
  'data-dir': { type: 'string', help: "data folder (default: the endpoints' training data folder)" },
  robust: { type: 'boolean', help: "clean and PGD test metrics at every t, BN re-estimated on PGD examples (Tatro et al. section 4); the attack defaults to the curve's (or endpoint A's) training attack, else 8/255, 2/255, 5 steps" },
  ...PGD_FLAGS,
  'pgd-seed': { type: 'number', help: 'PGD: seed of the random starts (default 0)', default: 0 },
} satisfies FlagSpec;

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

function summaryLines(r: PathResult): string[] {
  const b = r.barriers;
  const at = (t: number | undefined) => (t === undefined ? '' : ` at t = ${t.toFixed(3)}`);
  return [
    `${r.path}: min accuracy ${pct(b.minAccuracy.value)}${at(b.minAccuracy.t)}, arc-length mean accuracy ${pct(b.meanAccuracy.value)} (Tatro et al.), ` +
      `endpoints ${pct(b.endpoints.meanAccuracy)}, length ${r.length.toPrecision(4)}`,
    `${r.path}: loss barrier ${b.lossBarrierLinear.value.toFixed(4)}${at(b.lossBarrierLinear.t)} (Entezari), ${b.lossBarrierMean.value.toFixed(4)} (Git Re-Basin), ` +
      `midpoint ${b.midpointLossBarrier.value.toFixed(4)} / accuracy drop ${(100 * b.midpointAccuracyDrop.value).toFixed(2)} points (REPAIR)`,
    `${r.path}: test loss min ${r.garipov.testLoss.min.toFixed(4)} max ${r.garipov.testLoss.max.toFixed(4)} int ${r.garipov.testLoss.int.toFixed(4)}, ` +
      `test error min ${pct(r.garipov.testError.min)} max ${pct(r.garipov.testError.max)} int ${pct(r.garipov.testError.int)} (Garipov et al.)`,
    ...(r.robust
      ? [
          `${r.path}: robust loss barrier ${r.robust.robustLossBarrier.value.toFixed(4)}${at(r.robust.robustLossBarrier.t)} (Entezari on the PGD loss), ` +
            `arc-length mean PGD loss ${r.robust.meanRobustLoss.value.toFixed(4)}`,
          `${r.path}: min PGD accuracy ${pct(r.robust.minRobustAccuracy.value)}${at(r.robust.minRobustAccuracy.t)} (clean there ${pct(r.robust.cleanAccuracyAtMinRobust)}), ` +
            `max clean accuracy ${pct(r.robust.maxCleanAccuracy.value)}, max PGD accuracy ${pct(r.robust.maxRobustAccuracy.value)}, ` +
            `endpoints PGD ${pct(r.robust.endpoints.robustAccuracy[0])} / ${pct(r.robust.endpoints.robustAccuracy[1])}`,
        ]
      : []),
  ];
}

async function run(flags: Flags<typeof spec>): Promise<number> {
  if (!flags.curve) throw new UsageError('--curve FILE is required');
  const points = flags.points;
  if (!(Number.isInteger(points) && points >= 2)) throw new UsageError(`--points needs an integer >= 2, got ${points}`);
  const trainSubset = positiveInteger(flags['train-subset'], 'train-subset');
  const testSubset = positiveInteger(flags['test-subset'], 'test-subset');
  const bnBatches = positiveInteger(flags['bn-batches'], 'bn-batches');
  const batchFlag = positiveInteger(flags['batch-size'], 'batch-size');
  const repairSamples = positiveInteger(flags['repair-samples'], 'repair-samples')!;

  if (!flags.robust && (flags.eps ?? flags.step ?? flags.steps) !== undefined) throw new UsageError('--eps, --step and --steps need --robust');
  if (flags.robust && flags.repair) throw new UsageError('--robust re-estimates batch norm on PGD examples; it does not combine with --repair');
  const attackFlags = pgdFromFlags(flags);
  claimOutputs({ '--json': flags.json }); // can be written, checked before the work
  const start = performance.now();
  const opened = await openCurve(flags.curve);
  const extra: { dispose(): void }[] = [];
  try {
    const { curve, model, meta, endpoints } = opened;
    const training = meta.training as { batchSize?: number; augment?: boolean; weightDecay?: number; dataDir?: string };
    const dataDir = flags['data-dir'] ?? training.dataDir;
    const batchSize = batchFlag ?? training.batchSize ?? 128;
    const augment = !flags['no-augment'] && !!training.augment;
    const hasBatchNorm = batchNormLayers(model).length > 0;
    const repair = flags.repair;
    if (repair && repairableLayers(model).length === 0) throw new UsageError(`--repair: no layer of ${meta.model} can be repaired`);
    const trainSet = firstImages(checkpointData(endpoints.a.meta, 'train', dataDir), trainSubset, 'train-subset');
    const testSet = firstImages(checkpointData(endpoints.a.meta, 'test', dataDir), testSubset, 'test-subset');
    // Evaluation runs forward passes only, unless PGD needs input gradients.
    console.error(describeTuning(await tuneKernels(model, [batchSize, ...testSet.shape.slice(1)], flags.robust ? {} : { passes: ['forward'] })));
    const bn = hasBatchNorm && !repair ? new DataLoader(trainSet, { batchSize, shuffle: true, augment: augment ? CIFAR_AUGMENT : null, seed: 0 }) : null;
    const test = new DataLoader(testSet, { batchSize });
    const train = flags['train-metrics'] ? new DataLoader(trainSet, { batchSize }) : undefined;
    let repairOption;
    if (repair) {
      // REPAIR needs the endpoint networks as the curve sees them: A, and P(B) in a network of its own.
      const pb = createModel(meta.model, meta.config);
      extra.push(pb);
      pb.loadStateDict(endpoints.stateB);
      pb.eval();
      repairOption = { a: endpoints.a.model, b: pb, data: new DataLoader(firstImages(trainSet, Math.min(repairSamples, trainSet.shape[0]), 'repair-samples'), { batchSize }) };
    }
    const bnWhat = repair
      ? `REPAIR at each t on the first ${repairOption!.data.dataset.shape[0]} training images`
      : !hasBatchNorm
        ? 'no batch norm'
        : `batch norm re-estimated at each t on ${trainSet.name} (${Math.min(bn!.length, bnBatches ?? Infinity)} batches of ${batchSize}, ${augment ? 'augmented' : 'not augmented'})`;
    const target = meta.permutation ? `P(B) (${meta.permutation.method})` : 'B';
    console.log(`evaluating the ${meta.curve} curve ${flags.curve} (${meta.points} control points, epoch ${meta.epoch}) from A to ${target}, ${meta.model} on ${meta.dataset}, at ${points} points; ${bnWhat}; test on ${testSet.name} (${testSet.shape[0]} images)`);
    const ts = linspace(points);
    // The attack: the flags, else the curve's training attack, else endpoint A's, else the defaults.
    const trained = (o: Record<string, unknown>) => ({ eps: o.pgdEps as number | undefined, step: o.pgdStep as number | undefined, steps: o.pgdSteps as number | undefined });
    const given = (r: Partial<ReturnType<typeof trained>>) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined));
    const attack = flags.robust ? pgdRecipe({ ...given(trained(endpoints.a.meta.training)), ...given(trained(meta.training)), ...given(attackFlags) }) : null;
    if (attack) console.log(`robust: ${describePgd(attack)} on every test batch (eval mode) and on the batch-norm batches (BN training mode), random starts from seed ${flags['pgd-seed']}`);
    const robust = attack ? { space: inputSpace(test), recipe: attack, seed: flags['pgd-seed'] } : undefined;
    const opts = { bn, test, train, bnBatches, weightDecay: training.weightDecay ?? 5e-4, repair: repairOption, robust };
    const results: PathResult[] = [];
    for (const evaluateOne of flags.line ? [evaluateCurve, evaluateCurveLine] : [evaluateCurve]) {
      const which = evaluateOne === evaluateCurve ? 'curve' : 'line';
      console.log(`${which.padEnd(5)}  ${'t'.padStart(6)}  ${'loss'.padStart(8)}  ${'accuracy'.padStart(8)}${robust ? `  ${'PGD loss'.padStart(8)}  ${'PGD acc'.padStart(8)}` : ''}${train ? `  ${'train loss'.padStart(10)}  ${'train acc'.padStart(9)}` : ''}  ${'seconds'.padStart(7)}`);
      const onPoint = (p: PathPoint & { robust?: { loss: number; accuracy: number } }) =>
        console.log(
          `${which.padEnd(5)}  ${p.t.toFixed(4).padStart(6)}  ${p.loss.toFixed(4).padStart(8)}  ${pct(p.accuracy).padStart(8)}` +
            `${p.robust ? `  ${p.robust.loss.toFixed(4).padStart(8)}  ${pct(p.robust.accuracy).padStart(8)}` : ''}` +
            `${p.train ? `  ${p.train.loss.toFixed(4).padStart(10)}  ${pct(p.train.accuracy).padStart(9)}` : ''}  ${p.seconds.toFixed(1).padStart(7)}`,
        );
      results.push(await evaluateOne(model, curve, ts, { ...opts, onPoint }));
    }
    for (const r of results) for (const line of summaryLines(r)) console.log(line);
    if (flags.json) {
      await writeJson(flags.json, {
        command: 'eval-curve',
        curveFile: flags.curve,
        curve: { kind: meta.curve, points: meta.points, epoch: meta.epoch },
        endpoints: meta.endpoints,
        permutation: meta.permutation ? { method: meta.permutation.method } : null,
        model: meta.model,
        config: meta.config,
        dataset: meta.dataset,
        batchNorm: {
          present: hasBatchNorm,
          policy: repair ? 'repair' : hasBatchNorm ? 'reestimated' : 'none',
          trainImages: bn ? trainSet.shape[0] : 0,
          batches: bn ? Math.min(bn.length, bnBatches ?? Infinity) : 0,
          batchSize,
          augment: !!bn && augment,
        },
        repair: repairOption ? { images: repairOption.data.dataset.shape[0] } : null,
        attack: attack ? { ...attack, seed: flags['pgd-seed'] } : null,
        images: { test: testSet.shape[0], train: train ? trainSet.shape[0] : 0 },
        paths: results,
        seconds: (performance.now() - start) / 1000,
      });
      console.log(`wrote ${flags.json}`);
    }
    return 0;
  } finally {
    for (const m of extra) m.dispose();
    closeCurve(opened);
  }
}

export const evalCurve = defineCommand({
  usage: 'neuralign eval-curve --curve DIR/curve.safetensors [--points 65] [--line] [--json out.json] [options]',
  description:
    'Test loss and accuracy along a trained curve with batch norm re-estimated at every t (Tatro et al. 2020, section 7), and with\n' +
    "--line along the straight line between the same endpoints: Tatro's Min and arc-length Avg, Garipov's statistics, and the\n" +
    'barriers of Entezari et al., Git Re-Basin and REPAIR.',
  spec,
  run,
});
