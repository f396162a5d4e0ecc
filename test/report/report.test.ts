// The report builder on a fixed results.json made here: the main table's numbers are the JSON's
// (mean and sample std over pairs, ddof 1), the effect sentence follows the sign of the
// difference, and every plot is valid SVG carrying the expected series.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { collectResults, correlationSpec, effectSentences, meanStd, pathRows, pathsSpec, planeSpec, renderMarkdown, renderSvg, type Results } from '../../src/report/index.js';
import { pathOf, variant } from './fixture.js';
import { PRESETS } from '../../src/reproduce/presets.js';

const test = suite('report');

const unaligned = [pathOf(1, [0.9, 0.8, 0.9]), pathOf(2, [0.92, 0.78, 0.9]), pathOf(3, [0.9, 0.83, 0.88])];
const aligned = [pathOf(1, [0.9, 0.88, 0.9]), pathOf(2, [0.92, 0.87, 0.9]), pathOf(3, [0.9, 0.89, 0.88])];
const results: Results = {
  preset: PRESETS['cifar10-tinyten']!,
  pairs: 3,
  versions: { neuralign: '0.1.0' },
  batchNorm: 'BN re-estimated at every t',
  curves: [variant('unaligned', unaligned), variant('aligned', aligned)],
  lines: [variant('A-B', unaligned), variant('A-P(B)', aligned)],
  alignment: [{ layer: 'layers.0', units: 16, before: 0.1, after: 0.7 }, { layer: 'layers.1', units: 16, before: 0.05, after: 0.6 }],
  planes: [],
  stages: [{ name: 'train-s1', seconds: 30 }],
  paper: PRESETS['cifar10-tinyten']!.paper!,
  robust: null,
  effect: { alignedMinusUnalignedMin: meanStd([8, 9, 6]), lineAlignedMinusUnalignedMin: meanStd([8, 9, 6]) },
};

test('meanStd: sample standard deviation (ddof 1); none for one value', () => {
  const m = meanStd([1, 2, 4]);
  assert.is(m.mean, 7 / 3);
  assert.ok(Math.abs(m.std! - Math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)) < 1e-15);
  assert.is(meanStd([5]).std, null);
});

test('the main table holds the JSON numbers, with the paper beside them', () => {
  const md = renderMarkdown(results, ['paths.svg']);
  const avg = meanStd(unaligned.map((p) => p.avgAccuracy));
  const min = meanStd(unaligned.map((p) => p.minAccuracy));
  const row = md.split('\n').find((l) => l.startsWith('| Unaligned'))!;
  const cells = row.split('|').map((c) => c.trim());
  assert.is(cells[2], `${(100 * avg.mean).toFixed(1)} +- ${(100 * avg.std!).toFixed(1)}`);
  assert.is(cells[3], `${(100 * min.mean).toFixed(1)} +- ${(100 * min.std!).toFixed(1)}`);
  assert.is(cells[4], '87.4 +- 0.1', "the paper's Avg for the unaligned CIFAR-10 TinyTen curve");
  assert.is(cells[7], (100 * min.mean - 82.8).toFixed(1), "our Min minus the paper's");
  assert.match(md, /\| \*\*tinyten\*\* endpoints \| 90\.0 \+- 1\.0 \|/);
  assert.match(md, /\| A-B \| 80\.3 \+- 2\.5 \|/);
  assert.match(md, /!\[paths\.svg\]\(plots\/paths\.svg\)/);
  assert.match(effectSentences(results)[0]!, /raised the minimum test accuracy along t by \+7\.7 points \(std 1\.5 over 3 pairs\): the paper's effect shows/);
  const worse = { ...results, effect: { alignedMinusUnalignedMin: meanStd([-2, -3]), lineAlignedMinusUnalignedMin: meanStd([0.1, 0]) } };
  assert.match(effectSentences(worse)[0]!, /does not show/);
  assert.match(effectSentences(worse)[1]!, /no clear effect/);
});

test('plots: valid SVG with one series per path; the plane heatmap with its grid and paths', async () => {
  const rows = pathRows(results);
  assert.equal([...new Set(rows.map((r) => r.path))], ['curve, unaligned', 'curve, aligned', 'line A-B', 'line A-P(B)']);
  const mid = rows.find((r) => r.path === 'curve, unaligned' && r.t === 0.5)!;
  assert.ok(Math.abs(mid.accuracy - (100 * (0.8 + 0.78 + 0.83)) / 3) < 1e-9, 'the mean over pairs');
  const paths = await renderSvg(pathsSpec(results));
  assert.ok(paths.startsWith('<svg') && paths.trimEnd().endsWith('</svg>'), 'an SVG document');
  for (const label of ['curve, unaligned', 'curve, aligned', 'line A-B', 'line A-P(B)', 'test accuracy (%)', 'test loss']) assert.ok(paths.includes(label), `the figure shows '${label}'`);
  const corr = await renderSvg(correlationSpec(results)!);
  assert.ok(corr.startsWith('<svg') && corr.includes('before alignment') && corr.includes('after alignment') && corr.includes('layers.1'));
  const plane = {
    grid: { xs: [0, 1, 2], ys: [0, 1] },
    loss: [[1, 2, 3], [4, 5, 6]],
    curveProjection: { t: [0, 0.5, 1], x: [0, 1, 2], y: [0, 0.5, 0] },
    lineProjection: { t: [0, 1], x: [0, 2], y: [0, 0] },
    controlPoints: [{ label: 'A', x: 0, y: 0 }, { label: 'bend1', x: 1, y: 1 }, { label: 'B', x: 2, y: 0 }],
  };
  const svg = await renderSvg(planeSpec('aligned', plane));
  assert.ok(svg.startsWith('<svg') && svg.includes('test loss'));
  assert.ok((svg.match(/<path /g) ?? []).length >= 6 + 2, 'six grid cells and two paths drawn');
});

test('collectResults on a folder without artifacts has no rows and no effect', () => {
  const r = collectResults('/nonexistent-neuralign', PRESETS.tiny!, 1, ['unaligned', 'aligned'], {}, []);
  assert.equal(r.curves, []);
  assert.is(r.effect, null);
});

test.run();
