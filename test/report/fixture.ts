// The made-up report data shared by the report tests (test/report/report.test.ts), the report
// viewer's browser test (test/web/report.test.ts) and scripts/screenshots.mjs (which bundles this
// file): path summaries from accuracies at evenly spaced t, variants as means over pairs, and a
// folder of run folders holding one small run with a loss plane.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { meanStd, type PathSummary, type Results } from '../../src/report/index.js';
import { PRESETS } from '../../src/reproduce/presets.js';

/** A path of pair `pair` with test accuracy accs[i] (and loss 1 - accs[i]) at t = i / (n - 1). */
export function pathOf(pair: number, accs: number[]): PathSummary {
  return {
    pair,
    points: accs.map((a, i) => ({ t: i / (accs.length - 1), accuracy: a, loss: 1 - a })),
    endpoints: [accs[0]!, accs[accs.length - 1]!],
    avgAccuracy: accs.reduce((s, a) => s + a, 0) / accs.length,
    minAccuracy: Math.min(...accs),
    minAt: 0.5,
    barriers: { entezari: 0.5, gitRebasin: 0.6, repairMidpointLoss: 0.4, repairMidpointAccuracyDrop: 0.1 },
  };
}

/** A variant's summary: its pairs, and mean and std over them of endpoints, Avg and Min. */
export function variant(name: string, pairs: PathSummary[]) {
  const m = (f: (p: PathSummary) => number) => meanStd(pairs.map(f));
  return { variant: name, pairs, endpoints: m((p) => (p.endpoints[0] + p.endpoints[1]) / 2), avg: m((p) => p.avgAccuracy), min: m((p) => p.minAccuracy) };
}

/**
 * Writes into `runs` a run folder "quick" (results.json of two pairs, and planes/pair1-aligned.json)
 * and a folder "empty" without results.json (which the viewer must not offer).
 */
export function writeViewerRuns(runs: string): void {
  const dir = join(runs, 'quick');
  mkdirSync(join(dir, 'planes'), { recursive: true });
  const unaligned = [pathOf(1, [0.9, 0.8, 0.9]), pathOf(2, [0.92, 0.78, 0.9])];
  const aligned = [pathOf(1, [0.9, 0.88, 0.9]), pathOf(2, [0.92, 0.87, 0.9])];
  const results: Results = {
    preset: PRESETS['cifar10-tinyten']!,
    pairs: 2,
    versions: { neuralign: '0.1.0' },
    batchNorm: 'BN re-estimated at every t',
    curves: [variant('unaligned', unaligned), variant('aligned', aligned)],
    lines: [variant('A-B', unaligned), variant('A-P(B)', aligned)],
    alignment: [{ layer: 'layers.0', units: 16, before: 0.1, after: 0.7 }],
    planes: [{ variant: 'aligned', file: join(dir, 'planes', 'pair1-aligned.json') }],
    stages: [{ name: 'train-s1', seconds: 30 }],
    paper: PRESETS['cifar10-tinyten']!.paper!,
    robust: null,
    effect: { alignedMinusUnalignedMin: meanStd([8, 9]), lineAlignedMinusUnalignedMin: meanStd([8, 9]) },
  };
  writeFileSync(join(dir, 'results.json'), JSON.stringify(results));
  writeFileSync(join(dir, 'planes', 'pair1-aligned.json'), JSON.stringify({
    grid: { xs: [0, 1, 2], ys: [0, 1] },
    loss: [[1, 2, 3], [4, 5, 6]],
    curveProjection: { t: [0, 0.5, 1], x: [0, 1, 2], y: [0, 0.5, 0] },
    lineProjection: { t: [0, 1], x: [0, 2], y: [0, 0] },
    controlPoints: [{ label: 'A', x: 0, y: 0 }, { label: 'B', x: 2, y: 0 }],
  }));
  mkdirSync(join(runs, 'empty'), { recursive: true });
}
