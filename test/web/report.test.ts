// The report viewer (src/web/report.ts) in headless chromium: a results.json written here (and a
// plane's JSON beside it) is found under /runs/, its tables are shown and every plot is drawn
// as SVG from the report's vega-lite specs.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { meanStd, type PathSummary, type Results } from '../../src/report/index.js';
import { PRESETS } from '../../src/reproduce/presets.js';
import { testUnless } from '../helpers.js';
import { browserSkipReason, browserSuite } from './browser.js';


function pathOf(pair: number, accs: number[]): PathSummary {
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

function variant(name: string, pairs: PathSummary[]) {
  const m = (f: (p: PathSummary) => number) => meanStd(pairs.map(f));
  return { variant: name, pairs, endpoints: m((p) => (p.endpoints[0] + p.endpoints[1]) / 2), avg: m((p) => p.avgAccuracy), min: m((p) => p.minAccuracy) };
}

/** A run folder with results.json and planes/pair1-aligned.json. */
function runFolder(): string {
  const runs = mkdtempSync(join(tmpdir(), 'neuralign-viewer-'));
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
  mkdirSync(join(runs, 'empty')); // a folder without results.json is not offered
  return runs;
}

const { test, session } = browserSuite('report viewer', runFolder);

testUnless(test, browserSkipReason, 'a run folder: its tables and every plot as SVG', async () => {
  const page = await session.browser!.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${session.server!.url}report.html`);
  await page.waitForFunction(() => ['done', 'error'].includes((window as unknown as { neuralign?: { state: string } }).neuralign?.state ?? ''), null, { timeout: 60_000 });
  const state = await page.evaluate(() => (window as unknown as { neuralign: { state: string; error?: string; plots?: string[] } }).neuralign);
  assert.equal(errors, []);
  assert.is(state.error, undefined);
  assert.equal(await page.locator('#run option').allInnerTexts(), ['quick'], 'only folders with results.json');
  assert.equal(state.plots, ['paths', 'correlation', 'plane-aligned']);
  for (const name of state.plots!) {
    const svg = page.locator(`figure[data-plot="${name}"] svg`);
    assert.is(await svg.count(), 1, `${name} is drawn as SVG`);
    assert.ok((await svg.locator('path').count()) > 0, `${name} has marks`);
  }
  assert.match(await page.locator('figure[data-plot="paths"] svg').innerHTML(), /line A-P\(B\)/);
  // Interactive: a legend click shows one path alone (the others fade), in both panels.
  const paths = page.locator('figure[data-plot="paths"] svg');
  const faded = () => paths.locator('[opacity="0.12"]').count();
  assert.is(await faded(), 0, 'every path shown at first');
  await paths.locator('.role-legend-entry .role-legend-symbol path').first().click();
  await page.waitForFunction(() => document.querySelectorAll('figure[data-plot="paths"] svg [opacity="0.12"]').length > 0, null, { timeout: 10_000 });
  assert.ok((await faded()) > 0, 'the other paths fade');
  // Hovering a point shows its values (vega's default tooltip: the container's title attribute).
  await paths.locator('.mark-symbol path').first().hover({ force: true });
  await page.waitForFunction(() => /t: /.test(document.querySelector('figure[data-plot="paths"] > div')?.getAttribute('title') ?? ''), null, { timeout: 10_000 });
  const report = await page.locator('#report').innerText();
  assert.match(report, /Main table/);
  assert.match(report, /A-B/);
  assert.ok((await page.locator('#report table').count()) >= 2, 'the main table and the lines table');
  await page.close();
});

test.run();
