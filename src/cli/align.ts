// `neuralign align`: aligns checkpoint B to checkpoint A (Tatro et al. 2020, "Neuron alignment";
// or Git Re-Basin weight matching with --method weights) and writes the permuted B, a checkpoint
// computing B's function with its units in A's order.
// The correlations come from the first --samples training images of the checkpoints' data set,
// in order, with the test transform (NeuronAlignment's `align` loader); the mean matched
// correlation of every layer before and after is also measured on the test set, as the paper
// reports it. Units silent on the alignment data (dead or constant) are matched by their weights
// after the correlation assignment (--dead-units weights, the default; src/align/dead-units.ts),
// and the report counts them per layer and gives the mean correlation over signalling units
// beside the mean over all units (a silent unit counts 0 in the latter, however it is matched).
import {
  DEAD_UNIT_METHODS, SILENT_STD, alignModels, disposeStateDict, layerCorrelations, layerReports, permutationSpec,
  type AlignResult, type DeadUnitMethod, type LayerReport, type Permutations,
} from '../align/index.js';
import { weightMatching } from '../align/weight-matching.js';
import { unlink } from 'node:fs/promises';
import { saveSafetensors } from '../nn/checkpoint/safetensors.js';
import { DataLoader, firstImages, subset } from '../nn/data/index.js';
import type { StateDict } from '../nn/module.js';
import { UsageError, positiveInteger, type FlagSpec, type Flags } from './args.js';
import { checkSamePair, checkpointData, describeCheckpoint, openCheckpoint, type OpenCheckpoint } from './checkpoints.js';
import { defineCommand } from './command.js';
import { claimOutputs, writeJson } from './output.js';

export const ALIGN_METHODS = ['correlation', 'weights'] as const;
/** Fewest alignment images accepted: with fewer, every unit's correlation is noise. */
const MIN_ALIGN_SAMPLES = 10;

const spec = {
  a: { type: 'string', help: 'reference checkpoint A (required)' },
  b: { type: 'string', help: 'checkpoint B to permute into A\'s unit order (required)' },
  out: { type: 'string', help: 'where to write the aligned B checkpoint (required)' },
  method: { type: 'string', help: "correlation (of activations, the paper's) or weights (Git Re-Basin weight matching, no data)", default: 'correlation' },
  samples: { type: 'number', help: 'align on the first N training images, as many as the paper', default: 10000 },
  'batch-size': { type: 'number', help: 'images per batch', default: 512 },
  'dead-units': {
    type: 'string',
    help: `units silent on the data (std < ${SILENT_STD} in A or B): matched by weight similarity after the correlation assignment (weights), or as the assignment left them (arbitrary, the paper's code); --method correlation only`,
    default: 'weights',
  },
  'pre-activation': { type: 'boolean', help: 'correlate BN outputs before the ReLU (default: post-activations, as the official code)' },
  'test-subset': { type: 'number', help: 'measure the test-set correlations on the first N test images' },
  'data-dir': { type: 'string', help: "data folder (default: checkpoint A's training data folder)" },
  json: { type: 'string', help: 'write the report (permutations, per-layer correlations) to this JSON file' },
} satisfies FlagSpec;

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

interface LayerRow {
  layer: string;
  group: string;
  units: number;
  train: Omit<LayerReport, 'layer' | 'group' | 'units'>;
  test: Omit<LayerReport, 'layer' | 'group' | 'units'>;
}

/** The mean of the numbers that are not NaN (a layer with no signalling pair has none). */
const meanOfDefined = (xs: number[]) => mean(xs.filter((x) => !Number.isNaN(x)));

/**
 * One line per layer: mean matched correlation before and after on train and test, the mean after
 * over signalling pairs alone ("signalling": both units' std >= the silent threshold), the units
 * silent in A and in B on the alignment (train) images, and how the pairs with a silent unit were
 * matched ("weights, k moved": k pairs re-paired by weight similarity; "-": no silent unit).
 */
function table(rows: LayerRow[], moved: Map<string, number> | null): string {
  const f = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(4));
  const header = ['layer', 'units', 'train before', 'train after', 'signalling', 'test before', 'test after', 'signalling', 'dead A/B', 'dead matched by'];
  const how = (r: LayerRow) => (r.train.deadA + r.train.deadB === 0 ? '-' : moved && r.train.deadMatching === 'weights' ? `weights, ${moved.get(r.group) ?? 0} moved` : r.train.deadMatching);
  const body = rows.map((r) => [
    r.layer, String(r.units),
    f(r.train.before), f(r.train.after), f(r.train.afterSignalling),
    f(r.test.before), f(r.test.after), f(r.test.afterSignalling),
    `${r.train.deadA}/${r.train.deadB}`, how(r),
  ]);
  const means = (s: 'train' | 'test') => [mean(rows.map((r) => r[s].before)), mean(rows.map((r) => r[s].after)), meanOfDefined(rows.map((r) => r[s].afterSignalling))].map(f);
  body.push(['mean', '', ...means('train'), ...means('test'), '', '']);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), ...body.map(line)].join('\n');
}

async function run(flags: Flags<typeof spec>): Promise<number> {
  for (const name of ['a', 'b', 'out'] as const) if (!flags[name]) throw new UsageError(`--${name} FILE is required`);
  const method = flags.method;
  if (!ALIGN_METHODS.includes(method as never)) throw new UsageError(`--method '${method}' is not one of ${ALIGN_METHODS.join(', ')}`);
  const samples = positiveInteger(flags.samples, 'samples')!;
  if (samples < MIN_ALIGN_SAMPLES) throw new UsageError(`--samples needs at least ${MIN_ALIGN_SAMPLES} images (a correlation from fewer is noise: every unit looks silent), got ${samples}`);
  const batchSize = positiveInteger(flags['batch-size'], 'batch-size')!;
  const testSubset = positiveInteger(flags['test-subset'], 'test-subset');
  const preActivation = flags['pre-activation'];
  const deadUnits = flags['dead-units'] as DeadUnitMethod;
  if (!DEAD_UNIT_METHODS.includes(deadUnits)) throw new UsageError(`--dead-units '${deadUnits}' is not one of ${DEAD_UNIT_METHODS.join(', ')}`);
  // Weight matching matches every unit by its weights, silent ones included.
  const deadMatching: DeadUnitMethod = method === 'correlation' ? deadUnits : 'weights';

  // Before any work: --out and --json can be written, and no other command is writing --out.
  const release = claimOutputs({ '--out': flags.out, '--json': flags.json }, ['--out']);
  const start = performance.now();
  const a = await openCheckpoint(flags.a!).catch((e) => {
    release();
    throw e;
  });
  let b: OpenCheckpoint | null = null;
  try {
    b = await openCheckpoint(flags.b!);
    checkSamePair(a, b, 'align');
    const train = checkpointData(a.meta, 'train', flags['data-dir']);
    if (samples > train.shape[0]) console.error(`--samples ${samples}: ${train.name} has ${train.shape[0]} images; aligning on all of them`);
    const alignSet = subset(train, 0, Math.min(samples, train.shape[0]));
    const test = firstImages(checkpointData(a.meta, 'test', flags['data-dir']), testSubset, 'test-subset');

    // Correlation: matchings from activations on the alignment images (their per-layer report
    // comes with them). Weights: matchings from the weights alone; the correlations before and
    // after are still measured on the same images, for comparison.
    let permutations: Permutations;
    let state: StateDict;
    let trainReports: LayerReport[] | null = null;
    let images = 0;
    let details: Record<string, unknown> = {};
    let dead: AlignResult['deadUnits'] | null = null;
    if (method === 'correlation') {
      let seconds: AlignResult['seconds'];
      ({ permutations, state, layers: trainReports, images, seconds, deadUnits: dead } = await alignModels(a.model, b.model, new DataLoader(alignSet, { batchSize }), { preActivation, deadUnits }));
      details = { timing: seconds, silentUnits: dead };
      console.log(`activation statistics ${seconds.statistics.toFixed(1)} s, assignment ${seconds.assignment.toFixed(2)} s, silent units ${seconds.deadUnits.toFixed(2)} s`);
    } else {
      const matched = await weightMatching(a.model.stateDict(), b.model.stateDict(), permutationSpec(a.model));
      ({ permutations, state } = matched);
      details = { weightMatching: { iterations: matched.iterations, converged: matched.converged, objective: matched.objective } };
    }
    try {
      if (!trainReports) {
        const correlations = await layerCorrelations(a.model, b.model, new DataLoader(alignSet, { batchSize }), { preActivation });
        trainReports = layerReports(correlations, permutations, { deadUnits: deadMatching });
        images = correlations.images;
      }
      const testCorrelations = await layerCorrelations(a.model, b.model, new DataLoader(test, { batchSize }), { preActivation });
      const testReports = layerReports(testCorrelations, permutations, { deadUnits: deadMatching });
      const rows: LayerRow[] = trainReports.map((l, i) => {
        const { layer, group, units, ...train } = l;
        const { layer: _l, group: _g, units: _u, ...onTest } = testReports[i]!;
        return { layer, group, units, train, test: onTest };
      });
      const perms = Object.fromEntries([...permutations].map(([g, p]) => [g, [...p]]));
      const alignment = { method, deadUnits: deadMatching, reference: a.path, referenceSeed: a.meta.seed, samples: images, preActivation, permutations: perms };
      await saveSafetensors(flags.out!, state, { ...b.raw, alignment: JSON.stringify(alignment) });

      const summary = (split: 'train' | 'test') => ({
        before: mean(rows.map((r) => r[split].before)),
        after: mean(rows.map((r) => r[split].after)),
        afterSignalling: meanOfDefined(rows.map((r) => r[split].afterSignalling)),
      });
      const how = method === 'correlation' ? `on ${alignSet.name}, ${images} images` : `by weight matching (${(details.weightMatching as { iterations: number }).iterations} sweeps); correlations on ${alignSet.name}, ${images} images`;
      console.log(`aligned ${b.path} to ${a.path} (${describeCheckpoint(a.meta)}) ${how}; test correlations on ${test.name}, ${testCorrelations.images} images`);
      const moved = dead ? new Map(dead.groups.map((g) => [g.group, g.changed])) : null;
      console.log(table(rows, moved));
      console.log(`dead: std < ${SILENT_STD} on the alignment images; "signalling": the mean over pairs of units that both signal`);
      console.log(`wrote ${flags.out}`);
      if (flags.json) {
        // A report that cannot be written fails the command: the aligned checkpoint goes with it.
        await writeJson(flags.json, {
          command: 'align',
          a: a.path,
          b: b.path,
          out: flags.out,
          model: a.meta.model,
          config: { inChannels: a.meta.config.inChannels, numClasses: a.meta.config.numClasses, width: a.meta.config.width },
          seeds: { a: a.meta.seed, b: b.meta.seed },
          dataset: a.meta.dataset,
          method,
          deadUnits: deadMatching,
          preActivation,
          images: { train: images, test: testCorrelations.images },
          summary: { train: summary('train'), test: summary('test') },
          layers: rows,
          permutations: perms,
          ...details,
          seconds: (performance.now() - start) / 1000,
        }).catch(async (e) => {
          await unlink(flags.out!).catch(() => undefined);
          throw new Error(`--json ${(e as Error).message}; ${flags.out} removed again`);
        });
        console.log(`wrote ${flags.json}`);
      }
    } finally {
      disposeStateDict(state);
    }
    return 0;
  } finally {
    a.model.dispose();
    b?.model.dispose();
    release();
  }
}

export const align = defineCommand({
  usage: 'neuralign align --a A.safetensors --b B.safetensors --out B_aligned.safetensors [options]',
  description:
    "Permutes B's hidden units into A's order: the matching that maximizes the correlation of matched activations\n" +
    '(Tatro et al. 2020), or Git Re-Basin weight matching. Reports per-layer correlations on train and test.\n' +
    "The aligned checkpoint computes B's function; interpolate A with it to see the barrier alignment removes.",
  spec,
  run,
});
