// RunFolder and what it is made of, in-process: the lock (a second writer refused naming the
// holder, a stale lock of a dead pid taken over with a message, another host's lock never taken),
// temporary files of dead processes removed when the lock is taken and those of live ones kept, a
// log without checkpoint cleared for a new run, resume dropping what is past the checkpoint,
// output paths checked before any work, and the stop controller's first and second signal.
// The same rules with real processes killed and signalled: test/cli/run-folder.test.ts.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { StopController } from '../../src/cli/signals.js';
import { LockHeldError, acquireLock } from '../../src/nn/lock.js';
import { LOCK_FILE, RunFolder, truncateLog } from '../../src/nn/run-folder.js';
import { checkWritableFile, checkWritableFolder } from '../../src/nn/writable.js';

const test = suite('run folder');
let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'neuralign-run-folder-'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

const OPTIONS = { main: 'checkpoint.safetensors', what: 'a checkpoint', command: 'neuralign train --out X' };
/** The pid of a process that has exited (its number is not reused this quickly). */
const deadPid = (): number => spawnSync(process.execPath, ['-e', ''], { stdio: 'ignore' }).pid!;
const thrown = async (f: () => unknown): Promise<Error> => {
  try {
    await f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
};

test('one writer: the lock holds pid, host, start time and command; a second open fails naming them; close releases it', async () => {
  const d = join(dir, 'one-writer');
  const first = await RunFolder.open(d, { ...OPTIONS, resume: false });
  const info = JSON.parse(readFileSync(join(d, LOCK_FILE), 'utf8'));
  assert.equal({ pid: info.pid, host: info.host, command: info.command }, { pid: process.pid, host: hostname(), command: OPTIONS.command });
  assert.ok(!Number.isNaN(Date.parse(info.started)), 'start time');
  const e = await thrown(() => RunFolder.open(d, { ...OPTIONS, resume: false }));
  assert.instance(e, LockHeldError);
  assert.is(e.message, `${d} is in use by pid ${process.pid} on ${hostname()} since ${info.started} (${OPTIONS.command}); wait for it to finish or choose another output`);
  first.close();
  assert.equal(readdirSync(d), [], 'no lock left');
  (await RunFolder.open(d, { ...OPTIONS, resume: false })).close();
});

test('a stale lock (dead pid on this host) is taken over with a message; another host\'s lock is refused', async () => {
  const d = join(dir, 'stale');
  mkdirSync(d);
  const pid = deadPid();
  writeFileSync(join(d, LOCK_FILE), JSON.stringify({ pid, host: hostname(), started: '2024-01-01T00:00:00.000Z', command: 'neuralign train' }));
  const said: string[] = [];
  const folder = await RunFolder.open(d, { ...OPTIONS, resume: false, onMessage: (l) => said.push(l) });
  assert.equal(said, [`${d}: taking over the lock of pid ${pid} on ${hostname()} since 2024-01-01T00:00:00.000Z (neuralign train), which is no longer running`]);
  assert.is(JSON.parse(readFileSync(join(d, LOCK_FILE), 'utf8')).pid, process.pid);
  folder.close();

  writeFileSync(join(d, LOCK_FILE), JSON.stringify({ pid, host: 'elsewhere', started: 'then', command: 'neuralign train' }));
  const e = await thrown(() => RunFolder.open(d, { ...OPTIONS, resume: false }));
  assert.is(e.message, `${d} is in use by pid ${pid} on elsewhere since then (neuralign train); if that run is gone, remove ${join(d, LOCK_FILE)}`);
  writeFileSync(join(d, LOCK_FILE), 'garbage');
  assert.match((await thrown(() => acquireLock(join(d, LOCK_FILE), d, 'x'))).message, 'not a lock neuralign can read');
});

test('taking the lock removes the temporary files of dead processes and keeps those of live ones', async () => {
  const d = join(dir, 'temps');
  mkdirSync(d);
  const dead = deadPid();
  const names = [`.checkpoint.safetensors.${dead}.ab12cd34.tmp`, `.optimizer-epoch2.safetensors.${dead}.0x9y8z7w.tmp`, `.log.jsonl.${process.ppid}.abcdefgh.tmp`, 'notes.txt'];
  for (const n of names) writeFileSync(join(d, n), 'x');
  const said: string[] = [];
  const folder = await RunFolder.open(d, { ...OPTIONS, resume: false, onMessage: (l) => said.push(l) });
  folder.close();
  assert.equal(readdirSync(d).sort(), [names[2], 'notes.txt'].sort(), 'the live parent\'s temporary file and other files stay');
  assert.equal(said, [`${d}: removed 2 temporary file(s) of killed runs (${names.slice(0, 2).sort().join(', ')})`]);
});

test('a new run into a folder with a log but no checkpoint starts clean with a message; one with a checkpoint is refused', async () => {
  const d = join(dir, 'log-only');
  mkdirSync(d);
  writeFileSync(join(d, 'log.jsonl'), '{"epoch":1}\n');
  writeFileSync(join(d, 'optimizer-epoch1.safetensors'), 'x');
  writeFileSync(join(d, 'alignment.json'), '{}');
  const said: string[] = [];
  (await RunFolder.open(d, { ...OPTIONS, resume: false, onMessage: (l) => said.push(l) })).close();
  assert.equal(said, [`${d}: log.jsonl without checkpoint.safetensors (a run stopped before its first epoch was saved): starting clean`]);
  assert.equal(readdirSync(d), ['alignment.json']);
  writeFileSync(join(d, 'checkpoint.safetensors'), 'x');
  const e = await thrown(() => RunFolder.open(d, { ...OPTIONS, resume: false }));
  assert.is(e.message, `${d} already holds a checkpoint; pass --resume to continue it, or choose another --out`);
  assert.not.ok(existsSync(join(d, LOCK_FILE)), 'a refused open releases the lock');
});

test('resumeFrom drops optimizer files and log lines past the epoch (and a line cut short)', async () => {
  const d = join(dir, 'resume');
  mkdirSync(d);
  writeFileSync(join(d, 'log.jsonl'), '{"epoch":1}\n{"epoch":2}\n{"epoch":3}\n{"epoch":4,"tr');
  for (const e of [2, 3]) writeFileSync(join(d, `optimizer-epoch${e}.safetensors`), 'x');
  const folder = await RunFolder.open(d, { ...OPTIONS, resume: true });
  await folder.resumeFrom(2, null);
  folder.close();
  assert.is(readFileSync(join(d, 'log.jsonl'), 'utf8'), '{"epoch":1}\n{"epoch":2}\n');
  assert.equal(readdirSync(d).sort(), ['log.jsonl', 'optimizer-epoch2.safetensors']);
  await truncateLog(join(d, 'log.jsonl'), 0);
  assert.is(readFileSync(join(d, 'log.jsonl'), 'utf8'), '');
});

test('output paths are checked before any work, each failure one line', async () => {
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  assert.is((await thrown(() => checkWritableFolder(file, '--out'))).message, `--out ${file}: is a file, not a folder`);
  assert.match((await thrown(() => checkWritableFolder(join(file, 'run'), '--out'))).message, new RegExp(`^--out ${file}/run: cannot create the folder \\(ENOTDIR: `));
  assert.match((await thrown(() => RunFolder.open(join(file, 'run'), { ...OPTIONS, resume: false }))).message, 'cannot create the folder (ENOTDIR');
  assert.is((await thrown(() => checkWritableFile(dir, '--json'))).message, `--json ${dir}: is a folder, not a file`);
  assert.is((await thrown(() => checkWritableFile(join(dir, 'no', 'r.json'), '--json'))).message, `--json ${join(dir, 'no', 'r.json')}: its folder ${join(dir, 'no')} does not exist`);
  checkWritableFile(join(dir, 'r.json'), '--json');
  checkWritableFolder(join(dir, 'new', 'deep'));
  assert.equal(readdirSync(join(dir, 'new', 'deep')), [], 'the probe leaves nothing');
  assert.not.ok(existsSync(join(dir, 'r.json')));
});

test('signals: the first stops at a safe point, a second (or one without safe points) exits at once with 128 + signal', () => {
  const exits: number[] = [];
  const said: string[] = [];
  const safe = new StopController((c) => exits.push(c), (l) => said.push(l));
  const signal = safe.signal;
  safe.handle('SIGINT');
  assert.ok(signal.aborted);
  assert.is(signal.reason, 'SIGINT');
  assert.equal(exits, []);
  safe.handle('SIGINT');
  assert.equal(exits, [130]);
  assert.equal(said, ['neuralign: SIGINT: stopping after the current step (Ctrl-C again to stop at once)', 'neuralign: SIGINT: stopping at once']);
  const plain = new StopController((c) => exits.push(c), () => {});
  plain.handle('SIGTERM');
  assert.equal(exits, [130, 143]);
});

test.run();
