// `neuralign profile` in-process through runCli: the JSON accounts for every dispatch of a step
// (the profiled rows add up to the unprofiled step's dispatch count, the phases to the total, one
// SGD update per parameter), every time is finite and non-negative, and bad flags are one line and
// exit 64. Nothing is timed against a bound.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { setupEngine } from '../helpers.js';
import { cli } from './run-cli.js';

const test = suite('cli profile');
let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'neuralign-cli-profile-'));
});
test.after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await setupEngine(); // runCli destroyed the device; later test files get a fresh one
});

interface Row {
  kernel?: string;
  callsPerStep: number;
  msPerStep: number;
  meanUs: number;
  share: number;
}

test('the profile of an MLP step accounts for every dispatch, phase by phase', async () => {
  const json = join(dir, 'mlp.json');
  const r = await cli('profile', '--model', 'mlp', '--batch', '8', '--steps', '2', '--json', json);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^timing: (timestamp queries|isolated submits)/m);
  assert.match(r.out, /^kernels \(share % of the kernel time\):/m);
  const p = JSON.parse(readFileSync(json, 'utf8'));
  assert.equal([p.model, p.batch, p.steps, p.warmupSteps], ['mlp', 8, 2, 1]);
  const dispatches = p.perStep.dispatches as number;
  assert.ok(dispatches > 0 && p.perStep.submits >= 1);
  for (const rows of [p.kernels, p.variants, p.ops] as Row[][]) {
    assert.is(rows.reduce((s, k) => s + k.callsPerStep, 0), dispatches, 'the profiled step dispatched what the unprofiled one did');
    assert.ok(Math.abs(rows.reduce((s, k) => s + k.share, 0) - 1) < 1e-9 || p.perStep.kernelMs === 0);
    for (const k of rows) assert.ok(Number.isFinite(k.msPerStep) && k.msPerStep >= 0 && Number.isFinite(k.meanUs) && k.meanUs >= 0, JSON.stringify(k));
  }
  const phases = Object.fromEntries((p.phases as { phase: string; dispatchesPerStep: number }[]).map((x) => [x.phase, x.dispatchesPerStep]));
  assert.is(phases.forward! + phases.backward! + phases.optimizer!, dispatches);
  assert.is(phases.optimizer, 6, 'MLP 3072-512-512-10: three weights and three biases, one fused SGD update each');
  assert.ok(phases.forward! > 0 && phases.backward! > phases.optimizer!);
  assert.ok((p.kernels as Row[]).some((k) => k.kernel === 'sgd_momentum' && k.callsPerStep === 6));
});

test('bad flags are one line and exit 64', async () => {
  for (const [args, message] of [
    [['--model', 'nope'], /--model 'nope' is not one of/],
    [['--model', 'mlp', '--steps', '0'], /--steps needs a positive integer/],
    [['--model', 'mlp', '--batch', 'x'], /--batch needs a number/],
    [['--model', 'mlp', '--method', 'stopwatch'], /--method 'stopwatch' is not one of/],
    [[], /--model is required/],
  ] as const) {
    const r = await cli('profile', ...args);
    assert.is(r.code, 64, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err.split('\n')[0]!, message);
  }
});

test.run();
