// `neuralign bench train-step` with --models, --batch and --torch: flag errors are one line and exit
// 64; a Python without torch is one line and exit 1 before anything is measured; our rows joined
// with PyTorch's (bench/torch-train-step.ts) give ours / PyTorch per model and show a model one side
// lacks as missing. Fake "python" scripts stand in for PyTorch; nothing is timed against a bound.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { comparisonTable, joinTorch, type OurStep, type TorchStep } from '../../bench/torch-train-step.js';
import { setupEngine } from '../helpers.js';
import { cli } from './run-cli.js';

const test = suite('bench train-step --models, --torch');
let dir = '';
const savedPython = process.env.NEURALIGN_PYTHON;
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'neuralign-bench-torch-'));
});
test.after.each(() => {
  if (savedPython === undefined) delete process.env.NEURALIGN_PYTHON;
  else process.env.NEURALIGN_PYTHON = savedPython;
});
test.after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await setupEngine(); // runCli destroyed the device; later test files get a fresh one
});

/** An executable "python" (a Node script) that logs its arguments, one call a line, then runs `body`. */
function fakePython(name: string, body: string): { path: string; calls: () => string[][] } {
  const path = join(dir, name);
  const log = join(dir, `${name}.calls`);
  writeFileSync(
    path,
    `#!${process.execPath}\nconst fs = require('fs');\nconst args = process.argv.slice(2);\n` +
      `fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(args) + '\\n');\n${body}\n`,
  );
  chmodSync(path, 0o755);
  return { path, calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[]) : []) };
}

const firstLine = (s: string) => s.split('\n')[0]!;

test('bad --models, --models with --variants, --torch elsewhere: one line, exit 64', async () => {
  for (const [args, message] of [
    [['--models', 'tinyten,nope'], /^neuralign bench: unknown model 'nope' \(mlp, tinyten, resnet32, googlenet, vgg16\)$/],
    [['--variants', 'nope'], /^neuralign bench: unknown model 'nope'/],
    [['--models', 'tinyten', '--variants', 'tinyten'], /^neuralign bench: --models and --variants name the same thing/],
    [['--models', 'mlp', '--torch'], /^neuralign bench: --torch: bench\/torch_baseline\.py has no model 'mlp'/],
    [['--batch', '0'], /^neuralign bench: --batch needs a positive integer, got 0$/],
  ] as const) {
    const r = await cli('bench', 'train-step', ...args, '--json', join(dir, 'never.json'));
    assert.is(r.code, 64, `${args.join(' ')}: ${r.err}`);
    assert.match(firstLine(r.err), message);
    assert.not.match(r.out, /training step on/);
  }
  const conv = await cli('bench', 'conv', '--torch');
  assert.is(conv.code, 64);
  assert.match(firstLine(conv.err), /^neuralign bench: --torch is for train-step$/);
  const matmul = await cli('bench', 'matmul', '--models', 'tinyten');
  assert.match(firstLine(matmul.err), /^neuralign bench: --models and --batch are for train-step and curve-step$/);
  assert.ok(!existsSync(join(dir, 'never.json')));
});

test('without torch: one line, exit 1, and neither our step nor PyTorch\'s ran', async () => {
  const python = fakePython('no-torch', `process.stderr.write("Traceback\\nModuleNotFoundError: No module named 'torch'\\n"); process.exit(1);`);
  process.env.NEURALIGN_PYTHON = python.path;
  for (const flag of ['--models', '--variants']) { // --variants names the models as before
    const json = join(dir, `no-torch${flag}.json`);
    const r = await cli('bench', 'train-step', flag, 'tinyten', '--batch', '2', '--reps', '1', '--torch', '--json', json);
    assert.is(r.code, 1, r.err);
    assert.is(
      r.err.trim(),
      `neuralign bench: bench train-step --torch: PyTorch not found (${python.path} -c 'import torch' failed: ModuleNotFoundError: No module named 'torch'); apt-get install python3-torch`,
    );
    assert.is(r.out, '', 'nothing printed: the device was not started, no step was timed');
    assert.ok(!existsSync(json), 'no report written');
  }
  assert.equal(python.calls(), [['-c', 'import torch'], ['-c', 'import torch']], 'the check only, never bench/torch_baseline.py');
  process.env.NEURALIGN_PYTHON = join(dir, 'no-such-python');
  const r = await cli('bench', 'train-step', '--models', 'tinyten', '--torch', '--json', join(dir, 'absent.json'));
  assert.is(r.code, 1);
  assert.match(r.err.trim(), /^neuralign bench: bench train-step --torch: PyTorch not found \(.*no-such-python -c 'import torch' failed: ENOENT\); apt-get install python3-torch$/);
});

test('--models and --batch pick what is measured; --torch runs the baseline after ours and joins the two', async () => {
  // A stand-in for torch_baseline.py: batch / 4 images/s (1 step = 4 s), a peak RSS growth of 12.5 MiB.
  const python = fakePython(
    'fake-torch',
    `if (args[0] === '-c') process.exit(0);
const at = (f) => args[args.indexOf(f) + 1];
const batch = Number(at('--batch'));
fs.writeFileSync(at('--out'), JSON.stringify({ source: 'fake torch', 'train-step': { rows: [
  { model: at('--models'), batch, ms_per_step: 4000, images_per_s: batch / 4, peak_mib: null, peak_rss_growth_mib: 12.5 }] } }));
console.log('fake torch ran');`,
  );
  process.env.NEURALIGN_PYTHON = python.path;
  const json = join(dir, 'tinyten.json');
  const r = await cli('bench', 'train-step', '--models', 'tinyten', '--batch', '2', '--reps', '1', '--torch', '--json', json);
  assert.is(r.code, 0, r.err);
  const report = JSON.parse(readFileSync(json, 'utf8'));
  assert.equal(report.rows.map((row: { model: string; batch: number }) => [row.model, row.batch]), [['tinyten', 2]]);
  const row = report.rows[0];
  assert.ok(row.images_per_s > 0 && Number.isFinite(row.images_per_s));
  assert.equal(row.torch, { model: 'tinyten', batch: 2, ms_per_step: 4000, images_per_s: 0.5, peak_mib: null, peak_rss_growth_mib: 12.5 });
  assert.ok(Math.abs(row.ratio - row.images_per_s / 0.5) < 1e-9 * row.ratio);
  assert.equal(report.torch, { source: 'fake torch', python: python.path, batch: 2, reps: 1 });
  const [check, baseline, ...more] = python.calls();
  assert.equal(check, ['-c', 'import torch']);
  assert.equal(baseline!.slice(1, 8), ['train-step', '--models', 'tinyten', '--batch', '2', '--reps', '1']);
  assert.match(baseline![0]!, /bench\/torch_baseline\.py$/);
  assert.is(more.length, 0);
  // Ours printed, then the baseline's run, then the table.
  const ours = r.out.indexOf('training step on');
  const table = r.out.indexOf('PyTorch: fake torch');
  assert.ok(ours >= 0 && ours < table, r.out);
  const line = r.out.split('\n').find((l) => l.startsWith('tinyten ') && l.includes('%'));
  assert.match(line ?? '', new RegExp(`^tinyten\\s+${row.images_per_s.toFixed(1)}\\s+0\\.5\\s+${(100 * row.ratio).toFixed(1)}%\\s+\\d+\\s+13$`));
});

const ours = (model: string, images: number, o: Partial<OurStep> = {}): OurStep => ({ model, width: 1, batch: 16, images_per_s: images, peak_pool_mib: 30, ...o });
const torch = (model: string, images: number, o: Partial<TorchStep> = {}): TorchStep => ({ model, batch: 16, ms_per_step: 16000 / images, images_per_s: images, peak_mib: null, peak_rss_growth_mib: 40, ...o });

test('the join: ours / PyTorch per model; a model on one side only is missing, not 0', () => {
  const rows = joinTorch(
    [ours('tinyten', 100), ours('resnet32', 10), ours('vgg16', 90, { width: 0.25 }), ours('mlp', 500, { batch: 8 })],
    [torch('googlenet', 20, { peak_mib: 700 }), torch('tinyten', 400), torch('vgg16', 50, { peak_rss_growth_mib: null }), torch('mlp', 1000)],
  );
  assert.equal(rows.map((r) => r.model), ['tinyten', 'resnet32', 'vgg16', 'mlp', 'googlenet'], 'ours in order, then PyTorch-only models');
  const by = Object.fromEntries(rows.map((r) => [r.model, r]));
  assert.is(by.tinyten!.ratio, 0.25);
  assert.is(by.tinyten!.torchMib, 40, 'on CPU: the peak RSS growth');
  assert.is(by.googlenet!.torchMib, 700, "CUDA's peak allocated comes first");
  assert.is(by.vgg16!.torchMib, undefined, 'neither measure');
  for (const m of ['resnet32', 'googlenet', 'vgg16', 'mlp']) assert.is(by[m]!.ratio, undefined, m);
  assert.is(by.resnet32!.torch, undefined);
  assert.is(by.googlenet!.ours, undefined);
  assert.match(by.vgg16!.note ?? '', /width 0\.25/);
  assert.match(by.mlp!.note ?? '', /batch 16, ours 8/);

  const lines = comparisonTable(rows, 'torch 1.13, CPU, 2 threads');
  assert.match(lines[0]!, /^PyTorch: torch 1\.13, CPU, 2 threads\./);
  const line = (m: string) => lines.find((l) => l.startsWith(`${m} `))!.trim().split(/\s+/);
  assert.equal(line('tinyten'), ['tinyten', '100.0', '400.0', '25.0%', '30', '40']);
  assert.equal(line('resnet32'), ['resnet32', '10.0', 'missing', '-', '30', 'missing']);
  assert.equal(line('googlenet'), ['googlenet', 'missing', '20.0', '-', 'missing', '700']);
  assert.equal(line('vgg16').slice(0, 6), ['vgg16', '90.0', '50.0', '-', '30', '-']);
  const cells = lines.slice(2).flatMap((l) => l.trim().split(/\s+/));
  assert.ok(!cells.some((c) => /^0(\.0+)?%?$/.test(c)), 'no missing value shown as 0');
});

test.run();
