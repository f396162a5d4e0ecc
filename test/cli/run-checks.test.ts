// What commands check before they work, in-process through runCli: output paths that cannot be
// written (train --out, align --out / --json, interpolate / eval-curve / plane --json, bench --json
// and --dir, reproduce --out) fail at
// once in one line and leave nothing behind; a checkpoint holding NaN is refused by eval,
// interpolate and align naming the file and the tensor; and issue 16's small things (-h, `help
// train`, demo --steps 0, align --samples too small or above the data set, --resume with fewer
// --epochs than done). A model too wide for the adapter fails in one line naming the tensor and the
// limit, with a hint.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadSafetensors, writeSafetensors } from '../../src/nn/checkpoint/index.js';
import { checkWritableFolder } from '../../src/nn/writable.js';
import { setupEngine } from '../helpers.js';
import { cli, type Result } from './run-cli.js';

const test = suite('cli checks before the work');
let dir = '';
const SMALL = ['--model', 'mlp', '--dataset', 'synthetic', '--width', '0.0625', '--train-subset', '96', '--test-subset', '64', '--batch-size', '32'];
test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-cli-checks-'));
});
test.after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await setupEngine(); // runCli destroyed the device; later test files get a fresh one
});

/** Exit `code` and the error as the last line of stderr, starting 'neuralign CMD: ' and containing every part. */
function assertError(r: Result, code: number, cmd: string, ...parts: string[]): void {
  assert.is(r.code, code, `exit code (stderr: ${r.err})`);
  const last = r.err.trim().split('\n').filter((l) => l.startsWith(`neuralign ${cmd}: `))[0] ?? '';
  assert.ok(last, `an error line for ${cmd} in: ${r.err}`);
  assert.not.match(r.err, /\n\s+at /, 'no stack trace');
  for (const p of parts) assert.ok(last.includes(p), `'${last}' should mention '${p}'`);
}

test('-h is --help; `neuralign help train` is train --help; demo --steps 0 is bad usage', async () => {
  const h = await cli('train', '-h');
  assert.is(h.code, 0);
  assert.match(h.out, /^usage: neuralign train /);
  const help = await cli('help', 'train');
  assert.is(help.code, 0);
  assert.is(help.out, h.out);
  const demo = await cli('demo', '--steps', '0');
  assert.is(demo.code, 64);
  assert.ok(demo.err.startsWith('neuralign demo: --steps needs a positive integer, got 0'), demo.err);
});

let good = '';
let nan = '';
test('train: --out a file or under one fails before any work; --resume with fewer --epochs says only that nothing is left', async () => {
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  assertError(await cli('train', ...SMALL, '--out', file), 1, 'train', `${file}: is a file, not a folder`);
  assertError(await cli('train', ...SMALL, '--out', join(file, 'run')), 1, 'train', `${join(file, 'run')}: cannot create the folder (ENOTDIR`);
  const out = join(dir, 'run');
  assert.is((await cli('train', ...SMALL, '--epochs', '2', '--out', out)).code, 0);
  const again = await cli('train', '--resume', '--epochs', '1', '--out', out);
  assert.is(again.code, 0, again.err);
  assert.not.match(again.err, 'resuming at');
  assert.is(again.out, `${out}: already trained for 2 epochs (--epochs 1); nothing to do\n`);
  good = join(out, 'checkpoint.safetensors');

  // The same checkpoint with one NaN in the first layer's weights.
  const f = await loadSafetensors(good);
  const w = f.tensors.get('layers.0.weight')!;
  (w.data as Float32Array)[5] = NaN;
  nan = join(dir, 'nan.safetensors');
  await writeSafetensors(nan, f.tensors, f.metadata);
});

test('a checkpoint with NaN weights is refused on load, naming the file and the tensor', async () => {
  const what = `${nan}: tensor 'layers.0.weight' holds NaN or infinite values`;
  assertError(await cli('eval', '--checkpoint', nan), 1, 'eval', what);
  assertError(await cli('interpolate', '--a', good, '--b', nan, '--points', '2'), 1, 'interpolate', what);
  assertError(await cli('align', '--a', nan, '--b', good, '--out', join(dir, 'never.safetensors')), 1, 'align', what);
  assert.not.ok(existsSync(join(dir, 'never.safetensors')));
});

test('align, interpolate, eval-curve, plane: unwritable --out / --json fail before the work and leave nothing', async () => {
  const before = readdirSync(dir).sort();
  const missing = join(dir, 'no-such-folder', 'report.json');
  const aligned = join(dir, 'aligned.safetensors');
  assertError(await cli('align', '--a', good, '--b', good, '--out', dir), 1, 'align', `--out ${dir}: is a folder, not a file`);
  assertError(await cli('align', '--a', good, '--b', good, '--out', aligned, '--json', missing), 1, 'align', `--json ${missing}: its folder`, 'does not exist');
  assertError(await cli('interpolate', '--a', good, '--b', good, '--json', missing), 1, 'interpolate', `--json ${missing}`);
  for (const cmd of ['eval-curve', 'plane']) assertError(await cli(cmd, '--curve', join(dir, 'none.safetensors'), '--json', dir), 1, cmd, `--json ${dir}: is a folder, not a file`);
  assert.equal(readdirSync(dir).sort(), before, 'nothing written, no lock or temporary file left');
});

test('align: --samples below a few images is bad usage; above the data set it says so and uses all of it', async () => {
  const r = await cli('align', '--a', good, '--b', good, '--out', join(dir, 'x.safetensors'), '--samples', '1');
  assert.is(r.code, 64);
  assert.ok(r.err.startsWith('neuralign align: --samples needs at least 10 images'), r.err);
  const all = await cli('align', '--a', good, '--b', good, '--out', join(dir, 'all.safetensors'), '--samples', '1000000000', '--test-subset', '64');
  assert.is(all.code, 0, all.err);
  assert.match(all.err, '--samples 1000000000: synthetic-train has 2000 images; aligning on all of them');
  assert.equal(readdirSync(dir).filter((n) => n.startsWith('.')), [], 'no lock left');
});

test('train: a tensor over the adapter\'s limits (--width 1e9) fails in one line naming the limit, and leaves no run behind', async () => {
  const out = join(dir, 'too-wide');
  const r = await cli('train', '--model', 'tinyten', '--dataset', 'synthetic', '--width', '1e9', '--epochs', '1', '--out', out);
  assertError(r, 1, 'train', 'needs', 'more than this adapter\'s', 'bytes', '--batch-size');
  assert.is(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
  assert.equal(existsSync(out) ? readdirSync(out) : [], [], 'nothing written');
});

test('bench --json in a missing folder, bench all --dir a file and reproduce --out a file fail before the work in one line', async () => {
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  assertError(await cli('bench', 'matmul', '--json', join(dir, 'missing', 'm.json')), 1, 'bench', '--json', 'does not exist');
  assertError(await cli('bench', 'all', '--dir', file), 1, 'bench', '--dir', 'is a file');
  assertError(await cli('reproduce', '--preset', 'tiny', '--out', file), 1, 'reproduce', '--out', 'is a file');
  assert.not.ok(existsSync(join(dir, 'missing')), 'bench made no folder for --json');
});

test('an --out under /proc is an error, not a hang (Node\'s recursive mkdirSync loops there)', () => {
  if (!existsSync('/proc/self')) return; // not Linux: no /proc to try
  assert.throws(() => checkWritableFolder('/proc/neuralign-no-such/run', '--out'), /--out \/proc\/neuralign-no-such\/run: cannot create the folder/);
});

test.run();
