// `neuralign train` as real processes killed and signalled at exact moments, then resumed or
// rerun: the final tensors are bit-identical to an uninterrupted run, the folder holds exactly
// its three files (no temporary file, no lock), and log.jsonl has epochs 1..N once each. Kills
// come from NEURALIGN_KILL_AT (checkpoint/atomic.ts crashPoint: SIGKILL at a named point of the
// writes); signals are sent while the child is held by SIGSTOP, so where it stops does not
// depend on timing. Every run is a child with the matmul kernel fixed, so all runs compute alike.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadSafetensors } from '../../src/nn/checkpoint/index.js';

const test = suite('cli run folder: kills, signals, two writers');
const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url)); // BUILD_DIR/cli.js beside BUILD_DIR/test/
let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'neuralign-cli-run-folder-'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

const RECIPE = ['--model', 'mlp', '--dataset', 'synthetic', '--width', '0.0625', '--train-subset', '192', '--batch-size', '32', '--test-subset', '64', '--log-every', '1', '--epochs', '2'];
const FILES = ['checkpoint.safetensors', 'log.jsonl', 'optimizer-epoch2.safetensors'];

interface Child {
  pid: number;
  /** Resolves when stderr has a line matching `re`. */
  waitFor(re: RegExp): Promise<void>;
  done: Promise<{ code: number | null; signal: string | null; err: string }>;
}

function start(args: string[], env: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NEURALIGN_MATMUL: 'naive', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const waiting: { re: RegExp; resolve: () => void }[] = [];
  child.stderr.on('data', (chunk) => {
    err += String(chunk);
    for (const w of [...waiting]) if (w.re.test(err)) (waiting.splice(waiting.indexOf(w), 1), w.resolve());
  });
  const done = new Promise<{ code: number | null; signal: string | null; err: string }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, err })));
  return {
    pid: child.pid!,
    waitFor: (re) => new Promise<void>((resolve, reject) => {
      if (re.test(err)) return resolve();
      waiting.push({ re, resolve });
      void done.then(() => reject(new Error(`exited before ${re}: ${err}`)));
    }),
    done,
  };
}
const train = (out: string, extra: string[] = [], env: Record<string, string> = {}) => start(['train', ...RECIPE, ...extra, '--out', out], env);
const resume = (out: string) => start(['train', '--resume', '--out', out]);
/** The file's tensors as one byte string per name (the metadata holds timings, so files differ). */
const tensorBytes = async (path: string) => [...(await loadSafetensors(path)).tensors].map(([name, t]) => `${name}:${Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64')}`);
const epochs = (out: string) => readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).epoch);
const lastLine = (err: string) => err.trim().split('\n').pop()!;

let straight = '';
test('an uninterrupted run (the reference)', async () => {
  straight = join(dir, 'straight');
  const r = await train(straight).done;
  assert.is(r.code, 0, r.err);
  assert.equal(readdirSync(straight).sort(), FILES);
});

/** The folder is the uninterrupted run's: the same weights and momentum bit for bit, its files alone, epochs 1, 2. */
async function assertLikeStraight(out: string, what: string): Promise<void> {
  assert.equal(readdirSync(out).sort(), FILES, `${what}: exactly the run's files`);
  for (const f of ['checkpoint.safetensors', 'optimizer-epoch2.safetensors']) {
    const [got, want] = [await tensorBytes(join(out, f)), await tensorBytes(join(straight, f))];
    assert.ok(got.length > 0 && got.length === want.length && got.every((t, i) => t === want[i]), `${what}: ${f} bit-identical`);
  }
  assert.equal(epochs(out), [1, 2], `${what}: log epochs`);
}

for (const [point, leavesTemp] of [
  ['rename:optimizer-epoch2.safetensors', true], // during the optimizer write
  ['pair:optimizer-written#2', false], // between the two files
  ['rename:checkpoint.safetensors#2', true], // during the checkpoint write
] as const) {
  test(`SIGKILL at ${point}, then --resume: the uninterrupted run's result, no stray files`, async () => {
    const out = join(dir, point.replace(/\W/g, '-'));
    const killed = await train(out, [], { NEURALIGN_KILL_AT: point }).done;
    assert.is(killed.signal, 'SIGKILL', killed.err);
    assert.is(readdirSync(out).some((n) => n.endsWith('.tmp')), leavesTemp, `a kill during a write leaves its temporary file: ${readdirSync(out)}`);
    assert.ok(existsSync(join(out, '.neuralign.lock')), 'and its lock');
    const r = await resume(out).done;
    assert.is(r.code, 0, r.err);
    assert.match(r.err, 'taking over the lock of pid');
    if (leavesTemp) assert.match(r.err, /removed 1 temporary file\(s\) of killed runs/);
    await assertLikeStraight(out, point);
  });
}

test('SIGKILL after the first log line, before any checkpoint: the same command again starts clean', async () => {
  const out = join(dir, 'first-line');
  const killed = await train(out, [], { NEURALIGN_KILL_AT: 'log-appended#1' }).done;
  assert.is(killed.signal, 'SIGKILL');
  assert.equal(epochs(out), [1]);
  const refused = await resume(out).done;
  assert.is(refused.code, 1);
  assert.match(lastLine(refused.err), 'no checkpoint.safetensors to resume from (the run stopped before its first epoch was saved: rerun without --resume');
  const r = await train(out).done;
  assert.is(r.code, 0, r.err);
  assert.match(r.err, 'log.jsonl without checkpoint.safetensors (a run stopped before its first epoch was saved): starting clean');
  await assertLikeStraight(out, 'rerun');
});

test('two writers: the second stops at once naming the first, whose result is intact', async () => {
  const out = join(dir, 'two-writers');
  const first = train(out);
  await first.waitFor(/^epoch 1\/2  batch 1\/6/m);
  process.kill(first.pid, 'SIGSTOP'); // holds the lock, alive, for as long as the second needs
  try {
    const second = await train(out).done;
    assert.is(second.code, 1);
    const line = lastLine(second.err);
    assert.ok(line.startsWith(`neuralign train: ${out} is in use by pid ${first.pid} on `), line);
    assert.match(line, `(neuralign train ${RECIPE.join(' ')} --out ${out})`);
    assert.not.match(second.err, /\n\s+at /);
  } finally {
    process.kill(first.pid, 'SIGCONT');
  }
  const r = await first.done;
  assert.is(r.code, 0, r.err);
  await assertLikeStraight(out, 'the first writer');
});

test('SIGTERM in epoch 2: exit 143, where it stopped and how to resume; --resume then gives the uninterrupted result', async () => {
  const out = join(dir, 'sigterm');
  const child = train(out);
  await child.waitFor(/^epoch 2\/2  batch 1\/6/m);
  process.kill(child.pid, 'SIGSTOP');
  process.kill(child.pid, 'SIGTERM'); // pending until SIGCONT: handled at the child's next turn of its event loop
  process.kill(child.pid, 'SIGCONT');
  const r = await child.done;
  assert.is(r.code, 143, r.err);
  assert.match(r.err, 'neuralign: SIGTERM: stopping after the current step');
  assert.match(lastLine(r.err), new RegExp(`^neuralign train: stopped by SIGTERM at epoch 2, step \\d of 6; ${out} holds the checkpoint of epoch 1; continue with: neuralign train --resume --out ${out}$`));
  assert.equal(readdirSync(out).sort(), ['checkpoint.safetensors', 'log.jsonl', 'optimizer-epoch1.safetensors'], 'no temporary file, no lock');
  const resumed = await resume(out).done;
  assert.is(resumed.code, 0, resumed.err);
  await assertLikeStraight(out, 'resumed after SIGTERM');
});

test('SIGINT in epoch 1: exit 130, no checkpoint yet, the folder left empty', async () => {
  const out = join(dir, 'sigint');
  const child = train(out);
  await child.waitFor(/^epoch 1\/2  batch 1\/6/m);
  process.kill(child.pid, 'SIGSTOP');
  process.kill(child.pid, 'SIGINT');
  process.kill(child.pid, 'SIGCONT');
  const r = await child.done;
  assert.is(r.code, 130, r.err);
  assert.match(r.err, 'neuralign: SIGINT: stopping after the current step (Ctrl-C again to stop at once)');
  assert.match(lastLine(r.err), /^neuralign train: stopped by SIGINT at epoch 1, step \d of 6; no checkpoint was written; rerun the same command to start again$/);
  assert.equal(readdirSync(out), []);
});

test.run();
