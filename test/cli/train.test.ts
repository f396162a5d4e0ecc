// `neuralign train` and `neuralign eval` in-process through runCli: a run writes its files and
// log, eval of its checkpoint repeats the run's last test evaluation exactly, --resume continues
// it, and every error (missing data, corrupt or truncated checkpoint, another architecture, a
// different recipe on resume, divergence) is one line and a non-zero exit code, never a stack.
// Also the progress reporter's two modes. Each runCli call opens and destroys its own device.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ProgressReporter, formatDuration } from '../../src/cli/progress.js';
import { loadSafetensors, writeSafetensors } from '../../src/nn/checkpoint/index.js';
import type { EpochLog } from '../../src/nn/train.js';
import { setupEngine } from '../helpers.js';
import { cli, type Result } from './run-cli.js';

const test = suite('cli train/eval');
let dir = '';
test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-cli-train-'));
});
test.after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await setupEngine(); // runCli destroyed the device; later test files get a fresh one
});

/** The run failed with exit code 1 and one line 'neuralign CMD: ...' mentioning every part. */
function assertOneLineError(r: Result, cmd: string, ...parts: string[]): void {
  assert.is(r.code, 1, `exit code (stderr: ${r.err})`);
  const lines = r.err.trim().split('\n');
  const last = lines[lines.length - 1]!;
  assert.ok(last.startsWith(`neuralign ${cmd}: `), `'${last}' should be the error line`);
  assert.not.match(r.err, /\n\s+at /, 'no stack trace');
  for (const p of parts) assert.ok(last.includes(p), `'${last}' should mention '${p}'`);
}

const SMALL = ['--model', 'mlp', '--dataset', 'synthetic', '--width', '0.0625', '--train-subset', '160', '--batch-size', '32', '--log-every', '2'];
const readLog = (d: string): EpochLog[] => readFileSync(join(d, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

test('train writes checkpoint, optimizer file and log; eval repeats the last test evaluation exactly; --resume continues', async () => {
  const out = join(dir, 'run');
  const r = await cli('train', ...SMALL, '--epochs', '1', '--out', out);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /trained mlp on synthetic to epoch 1: test accuracy [\d.]+%/);
  // Not a terminal: plain lines, one per read of the loss window (batches 2 and 4 of 5) and one per epoch.
  assert.match(r.err, /^epoch 1\/1  batch 2\/5  loss \d+\.\d{4}/m);
  assert.match(r.err, /^epoch 1\/1  batch 4\/5/m);
  assert.match(r.err, /^epoch 1\/1  train loss .* test loss .* lr 0\.1000/m);
  assert.not.match(r.err, '\r');
  assert.ok(existsSync(join(out, 'optimizer-epoch1.safetensors')));

  const resumed = await cli('train', '--resume', '--epochs', '2', '--out', out, '--log-every', '50');
  assert.is(resumed.code, 0, resumed.err);
  assert.match(resumed.err, /^resuming at epoch 2: mlp/m);
  const log = readLog(out);
  assert.equal(log.map((l) => l.epoch), [1, 2]);

  const json = await cli('eval', '--checkpoint', join(out, 'checkpoint.safetensors'), '--json');
  assert.is(json.code, 0, json.err);
  const result = JSON.parse(json.out);
  assert.equal(
    { model: result.model, epoch: result.epoch, dataset: result.dataset, images: result.images, loss: result.loss, accuracy: result.accuracy },
    { model: 'mlp', epoch: 2, dataset: 'synthetic', images: 500, loss: log[1]!.test_loss, accuracy: log[1]!.test_acc },
  );
  const text = await cli('eval', '--checkpoint', join(out, 'checkpoint.safetensors'), '--test-subset', '100', '--batch-size', '64');
  assert.is(text.code, 0, text.err);
  assert.match(text.out, /\(mlp, epoch 2\) on synthetic-test\[0:100\], 100 images: loss \d+\.\d{4}, accuracy [\d.]+%/);

  // Nothing left to do, and the recipe of a checkpoint cannot change under --resume.
  const again = await cli('train', '--resume', '--epochs', '2', '--out', out);
  assert.is(again.code, 0);
  assert.match(again.out, 'already trained for 2 epochs');
  assertOneLineError(await cli('train', '--resume', '--out', out, '--model', 'tinyten'), 'train', 'cannot resume with model "tinyten"', '"mlp"');
  assertOneLineError(await cli('train', ...SMALL, '--epochs', '3', '--out', out), 'train', 'already holds a checkpoint', '--resume');
});

test('train: missing data, bad flags and divergence are one-line errors', async () => {
  const out = join(dir, 'errors');
  assertOneLineError(await cli('train', '--model', 'mlp', '--dataset', 'fashion-mnist', '--data-dir', join(dir, 'no-such-folder'), '--out', out), 'train', 'no-such-folder', 'folder not found');
  assertOneLineError(await cli('train', '--model', 'tinyten', '--dataset', 'cifar10', '--out', out), 'train', 'cifar10: no data folder given');
  assertOneLineError(await cli('train', '--resume', '--out', join(dir, 'empty')), 'train', 'no checkpoint.safetensors to resume from');
  assertOneLineError(await cli('train', ...SMALL, '--train-subset', '5000', '--out', out), 'train', '--train-subset 5000', '2000 images');
  const lr = await cli('train', ...SMALL, '--lr', '1e6', '--epochs', '2', '--out', out);
  assertOneLineError(lr, 'train', 'at epoch 1, step', 'diverged', 'no checkpoint was written');
  assert.not.ok(existsSync(join(out, 'checkpoint.safetensors')));

  for (const [args, what] of [
    [['--model', 'alexnet', '--dataset', 'synthetic', '--out', out], "--model 'alexnet' is not one of"],
    [['--model', 'mlp', '--out', out], '--dataset is required'],
    [['--model', 'mlp', '--dataset', 'synthetic'], '--out DIR is required'],
    [['--model', 'mlp', '--dataset', 'synthetic', '--out', out, '--epochs', '2.5'], '--epochs needs a positive integer'],
    [['--model', 'mlp', '--dataset', 'synthetic', '--out', out, '--schedule', 'linear'], "--schedule 'linear'"],
    [['--model', 'mlp', '--dataset', 'synthetic', '--out', out, '--nesterov', '--no-nesterov'], '--nesterov and --no-nesterov contradict'],
    [['--model', 'mlp', '--dataset', 'synthetic', '--out', out, '--bogus'], 'unknown flag --bogus'],
  ] as [string[], string][]) {
    const r = await cli('train', ...args);
    assert.is(r.code, 64, `${args.join(' ')}: ${r.err}`);
    assert.ok(r.err.startsWith(`neuralign train: ${what}`), `'${r.err.split('\n')[0]}' should start with '${what}'`);
  }
  const help = await cli('train', '--help');
  assert.is(help.code, 0);
  for (const flag of ['--model', '--dataset', '--epochs', '--batch-size', '--lr', '--wd', '--momentum', '--no-nesterov', '--schedule', '--seed', '--width', '--out', '--data-dir', '--train-subset', '--test-subset', '--no-augment', '--resume', '--log-every']) {
    assert.ok(help.out.includes(flag), `help mentions ${flag}`);
  }
});

test('eval: corrupt and truncated files, another architecture, mismatched shapes are one-line errors', async () => {
  const out = join(dir, 'eval');
  assert.is((await cli('train', ...SMALL, '--epochs', '1', '--out', out)).code, 0);
  const good = join(out, 'checkpoint.safetensors');
  const bytes = readFileSync(good);

  const garbage = join(dir, 'garbage.safetensors');
  writeFileSync(garbage, Buffer.from('this is not a checkpoint at all'));
  assertOneLineError(await cli('eval', '--checkpoint', garbage), 'eval', garbage, 'header length');
  const truncated = join(dir, 'truncated.safetensors');
  writeFileSync(truncated, bytes.subarray(0, bytes.length - 100));
  assertOneLineError(await cli('eval', '--checkpoint', truncated), 'eval', truncated, 'truncated');
  assertOneLineError(await cli('eval', '--checkpoint', join(dir, 'absent.safetensors')), 'eval', 'absent.safetensors: file not found');

  // The same tensors, relabelled: another architecture (names differ), another width (shapes differ).
  const file = await loadSafetensors(good);
  const relabel = async (name: string, edit: Record<string, string>) => {
    const path = join(dir, name);
    await writeSafetensors(path, file.tensors, { ...file.metadata, ...edit });
    return path;
  };
  const config = JSON.parse(file.metadata.config!);
  assertOneLineError(await cli('eval', '--checkpoint', await relabel('tinyten.safetensors', { model: 'tinyten' })), 'eval', 'does not fit tinyten', "'layers.0.conv.weight'");
  assertOneLineError(
    await cli('eval', '--checkpoint', await relabel('wide.safetensors', { config: JSON.stringify({ ...config, width: 0.125 }) })),
    'eval',
    "'layers.0.weight': expected f32[64, 3072], got f32[32, 3072]",
  );
  assertOneLineError(await cli('eval', '--checkpoint', await relabel('resnet.safetensors', { model: 'resnet50' })), 'eval', "unknown model 'resnet50'");
  const plain = join(dir, 'plain.safetensors');
  await writeSafetensors(plain, file.tensors, {});
  assertOneLineError(await cli('eval', '--checkpoint', plain), 'eval', 'not a neuralign checkpoint');
  assertOneLineError(await cli('eval', '--checkpoint', good, '--dataset', 'fashion-mnist', '--data-dir', join(dir, 'nowhere')), 'eval', 'nowhere', 'folder not found');
  const usage = await cli('eval');
  assert.is(usage.code, 64);
  assert.match(usage.err, '--checkpoint FILE is required');
});

test('progress: one line redrawn on a terminal, plain lines otherwise', () => {
  const p = { epoch: 1, epochs: 3, step: 10, steps: 40, loss: 1.23456, accuracy: 0.5, images: 1280, seconds: 2 };
  const log: EpochLog = { epoch: 1, train_loss: 1, train_acc: 0.5, test_loss: 0.9, test_acc: 0.6, lr: 0.1, seconds: 10, images_per_s: 640 };
  for (const isTTY of [true, false]) {
    const chunks: string[] = [];
    const reporter = new ProgressReporter({ isTTY, write: (s: string) => chunks.push(s) });
    reporter.step(p);
    reporter.step({ ...p, step: 20, images: 2560, seconds: 4 });
    reporter.epoch(log, 3);
    const text = chunks.join('');
    if (isTTY) {
      assert.ok(chunks[0]!.startsWith('\r') && chunks[1]!.startsWith('\r'), 'redrawn in place');
      assert.is(text.split('\n').length, 2, 'one finished line per epoch');
    } else {
      assert.not.match(text, '\r');
      assert.is(text.split('\n').length, 4, 'two progress lines and the epoch line');
    }
    // 640 img/s; 0.2 s a step: 20 steps left in this epoch, then 2 epochs of 40 steps.
    assert.match(chunks[1]!, 'epoch 1/3  batch 20/40  loss 1.2346  acc 50.00%  640 img/s  ETA 0:20');
    assert.match(text, 'epoch 1/3  train loss 1.0000 acc 50.00%  test loss 0.9000 acc 60.00%  lr 0.1000');
  }
  assert.is(formatDuration(75), '1:15');
  assert.is(formatDuration(3725), '1:02:05');
});

test.run();
