// The kernel lab (src/web/lab.ts) in headless chromium on SwiftShader's WebGPU: with ?auto=1 it
// runs a small sweep, and each timed matmul variant and conv pass has been checked against the
// float64 reference; without WebGPU the page says what to do instead of staying blank.
import * as assert from 'uvu/assert';
import type { ConvBenchReport } from '../../bench/conv.js';
import type { MatmulBenchReport } from '../../bench/matmul.js';
import { testUnless } from '../helpers.js';
import { browserSkipReason, browserSuite } from './browser.js';

const { test, session } = browserSuite('kernel lab');


interface LabState {
  state: string;
  error?: string;
  report?: MatmulBenchReport;
  conv?: ConvBenchReport;
}

testUnless(test, browserSkipReason, 'auto sweep: every timed matmul variant and conv pass matches the float64 reference', async () => {
  const page = await session.browser!.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Small shapes and a small tuning size keep this to seconds on a CPU adapter.
  await page.goto(`${session.server!.url}lab.html?auto=1&sizes=32,96&tune=64&reps=1&variants=naive,tiled,regblock&conv=1&nets=resnet32&batch=1`);
  await page.waitForFunction(() => {
    const s = (window as unknown as { neuralign?: LabState }).neuralign;
    return s && (s.report || s.state === 'error');
  }, null, { timeout: 120_000 });
  const state = await page.evaluate(() => (window as unknown as { neuralign: LabState }).neuralign);
  assert.equal(errors, [], 'page errors');
  assert.is(state.error, undefined, 'the page reported an error');
  const report = state.report!;
  assert.is(report.suite, 'matmul');
  assert.is(report.device.backend, 'browser');
  assert.equal(report.rows.map((r) => r.shape.M), [32, 96]);
  assert.ok(['naive', 'tiled', 'tiled128', 'regblock', 'subgroup'].includes(report.tuned.choice), `the engine's pick: ${report.tuned.choice}`);
  for (const row of report.rows) {
    for (const r of row.results) {
      assert.ok(r.maxRelError !== undefined && r.maxRelError <= r.errorBound!, `${r.variant} on ${row.shape.name}: error ${r.maxRelError} (bound ${r.errorBound})`);
      assert.ok(r.gflops! > 0, `${r.variant} on ${row.shape.name} was timed`);
    }
  }
  // The table shows the same: a checked cell per variant and shape, none wrong; a JSON download.
  assert.is(await page.locator('#results-table td[data-check="correct"]').count(), 2 * 3);
  assert.is(await page.locator('#results-table td[data-check="wrong"]').count(), 0);
  assert.match((await page.locator('#download').getAttribute('download')) ?? '', /^matmul-browser-.*\.json$/);
  // The plot: one bar per checked and timed (shape, variant), drawn as SVG.
  assert.is(await page.locator('#gflops-plot svg').count(), 1);
  assert.is(await page.locator('#gflops-plot svg .mark-rect path').count(), 2 * 3, 'one bar per shape and variant');
  // Conv: the quick ResNet32 layers, every kernel the adapter has (registers and tiled always),
  // each pass checked and timed, or n/a where the direct kernel does not apply.
  const conv = state.conv!;
  assert.is(conv.suite, 'conv');
  const kernels = [...new Set(conv.rows.map((r) => r.kernel))];
  assert.ok(kernels.includes('registers') && kernels.includes('tiled'), `kernels ${kernels}`);
  assert.is(conv.rows.length, kernels.length * 3);
  let checked = 0;
  for (const row of conv.rows) {
    for (const [pass, p] of Object.entries({ forward: row.forward, inputGrad: row.inputGrad, weightGrad: row.weightGrad })) {
      if (p.notApplicable) {
        assert.is(row.kernel, 'direct', `only the direct kernel leaves a pass out (${row.kernel} ${pass} of ${row.layer})`);
        continue;
      }
      assert.ok(p.maxRelError <= p.errorBound && p.gflops! > 0, `conv ${row.kernel} ${pass} of ${row.layer}: error ${p.maxRelError} (bound ${p.errorBound})`);
      checked++;
    }
  }
  assert.ok(checked >= 6 * 3, `${checked} passes checked`);
  assert.is(await page.locator('#conv-table td[data-check="correct"]').count(), checked);
  assert.match((await page.locator('#conv-download').getAttribute('download')) ?? '', /^conv-browser-.*\.json$/);
  assert.match(await page.locator('#adapter').innerText(), /maxComputeInvocationsPerWorkgroup/);
  await page.close();
});

testUnless(test, browserSkipReason, 'without WebGPU the page explains which browsers have it', async () => {
  const page = await session.browser!.newPage();
  await page.addInitScript(() => delete (Navigator.prototype as { gpu?: unknown }).gpu);
  await page.goto(`${session.server!.url}lab.html?auto=1`);
  await page.waitForFunction(() => (window as unknown as { neuralign?: LabState }).neuralign?.state === 'error', null, { timeout: 30_000 });
  const text = await page.locator('#error').innerText();
  assert.match(text, /no WebGPU/);
  assert.match(text, /Chrome or Edge 113/);
  await page.close();
});

test.run();
