// The report viewer (src/web/report.ts) in headless chromium: a results.json written here (and a
// plane's JSON beside it) is found under /runs/, its tables are shown and every plot is drawn
// as SVG from the report's vega-lite specs.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { testUnless } from '../helpers.js';
import { writeViewerRuns } from '../report/fixture.js';
import { browserSkipReason, browserSuite } from './browser.js';


/** A folder of run folders: "quick" (results.json and a plane) and "empty" (test/report/fixture.ts). */
function runFolder(): string {
  const runs = mkdtempSync(join(tmpdir(), 'neuralign-viewer-'));
  writeViewerRuns(runs);
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
