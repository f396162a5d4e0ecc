// The live page (src/web/live.ts) in headless chromium on SwiftShader's WebGPU: two MLPs trained
// in the tab on the synthetic task, B aligned to A, both lines evaluated and plotted. Small sizes
// (512 images, three epochs, three values of t) keep it to seconds; the property checked is the
// alignment's own: every hidden layer's matched correlation rises.
import * as assert from 'uvu/assert';
import { testUnless } from '../helpers.js';
import { browserSkipReason, browserSuite } from './browser.js';

const { test, session } = browserSuite('live page');


interface LiveState {
  state: string;
  error?: string;
  result?: {
    endpoints: number[];
    layers: { layer: string; before: number; after: number }[];
    lines: { line: string; t: number; accuracy: number; loss: number }[];
  };
}

testUnless(test, browserSkipReason, 'trains two MLPs, aligns them and plots A-B and A-P(B)', async () => {
  const page = await session.browser!.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${session.server!.url}live.html?auto=1&n=512&epochs=3&points=3&test=250&width=0.125`);
  await page.waitForFunction(() => ['done', 'error'].includes((window as unknown as { neuralign?: LiveState }).neuralign?.state ?? ''), null, { timeout: 120_000 });
  const state = await page.evaluate(() => (window as unknown as { neuralign: LiveState }).neuralign);
  assert.equal(errors, []);
  assert.is(state.error, undefined);
  const r = state.result!;
  assert.equal(r.layers.map((l) => l.layer), ['layers.0', 'layers.2'], 'both hidden layers aligned');
  for (const l of r.layers) assert.ok(l.after > l.before, `${l.layer}: correlation ${l.before} -> ${l.after}`);
  assert.equal(r.lines.map((p) => `${p.line} ${p.t}`), ['A-B 0', 'A-B 0.5', 'A-B 1', 'A-P(B) 0', 'A-P(B) 0.5', 'A-P(B) 1']);
  // Both lines start at A, and A-P(B) ends at P(B), which computes what B does.
  assert.is(r.lines[0]!.accuracy, r.lines[3]!.accuracy);
  assert.ok(Math.abs(r.lines[2]!.accuracy - r.lines[5]!.accuracy) <= 100 / 250 + 1e-9, 'P(B) is B up to float rounding');
  assert.ok(r.endpoints.every((a) => a > 0.2), `the endpoints learned (${r.endpoints})`);
  assert.is(await page.locator('#plot svg').count(), 1);
  await page.close();
});

test.run();
