// Dawn's native start-up warnings ("max...artificially reduced", written by C++ straight to fd 2
// while requestAdapter discovers the Vulkan adapter) stay out of a command's output where fd 2
// can be put back exactly: src/engine/native-stderr.ts. This file, run as a child process, opens
// the device and then writes a line to stderr from JavaScript. With stderr a pipe, a terminal
// (util-linux `script`) or a file in append mode the output is that line and no warning; with
// NEURALIGN_DEBUG=1 (the control) the warnings come through, where Dawn prints them at all (on an
// adapter where it clamps nothing only the restored stderr is checked). A file opened without
// O_APPEND keeps its descriptor, shared with the parent as a shell shares it, and Dawn's bytes
// become one blank line in place: the parent's writes before and after the child and the child's
// stdout through the same description (> log 2>&1) land where they would have. A socket (Node's
// own child pipes are socket pairs) is left alone: the warnings stay and the line follows them.
import { spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { useDawn } from '../../src/engine/dawn.js';
import { openDevice } from '../../src/engine/device.js';
import { testUnless } from '../helpers.js';

const CHILD = process.env.NEURALIGN_TEST_NATIVE_STDERR_CHILD;
if (CHILD) {
  useDawn();
  // Where asked, first what `npm test` does to a stderr pipe: a child run with stdio 'inherit'
  // (libuv clears O_NONBLOCK on the shared description before exec); then the flags of
  // descriptor 2 as the device finds it.
  const report = process.env.NEURALIGN_TEST_STDERR_FLAGS_TO;
  if (report) {
    void process.stderr; // made now, as in a test process that has printed: libuv sets O_NONBLOCK once
    spawnSync(process.execPath, ['-e', ''], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  if (report) writeFileSync(report, /^flags:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/fdinfo/2', 'utf8'))![1]!);
  const { device } = await openDevice();
  process.stderr.write('stderr after the device\n');
  process.stdout.write('stdout after the device\n');
  device.destroy();
  process.exit(0);
}

const WARNING = /artificially reduced/;
const LINE = 'stderr after the device\n';
const OUT_LINE = 'stdout after the device\n';
const self = fileURLToPath(import.meta.url);
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function childEnv(debug: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NEURALIGN_TEST_NATIVE_STDERR_CHILD: '1' };
  if (debug) env.NEURALIGN_DEBUG = '1';
  else delete env.NEURALIGN_DEBUG;
  return env;
}

/** The child's stderr through a pipe made by the shell (`2>&1 | cat`: a FIFO). */
function throughPipe(debug = false): string {
  const r = spawnSync('sh', ['-c', `${quote(process.execPath)} ${quote(self)} 2>&1 >/dev/null | cat`], { env: childEnv(debug), encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, r.stderr);
  return r.stdout;
}

/**
 * The child's stderr through a shell's pipe that is blocking when the child opens the device,
 * because the child ran a child of its own with stdio 'inherit' first (see the CHILD block).
 */
function throughBlockingPipe(): { text: string; flags: number } {
  const dir = mkdtempSync(join(tmpdir(), 'neuralign-stderr-'));
  try {
    const report = join(dir, 'flags');
    const env = { ...childEnv(false), NEURALIGN_TEST_STDERR_FLAGS_TO: report };
    const r = spawnSync('sh', ['-c', `${quote(process.execPath)} ${quote(self)} 2>&1 >/dev/null | cat`], { env, encoding: 'utf8', timeout: 120_000 });
    assert.is(r.status, 0, r.stderr);
    return { text: r.stdout, flags: parseInt(readFileSync(report, 'utf8'), 8) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The child's stderr through Node's own child pipe, which is a socket pair, not a FIFO. */
function throughSocket(): string {
  const r = spawnSync(process.execPath, [self], { env: childEnv(false), encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, r.stderr);
  return r.stderr;
}

/** The child's terminal output (stdout and stderr together, as a person sees them). */
function underTerminal(debug = false): string {
  const r = spawnSync('script', ['-qec', `${quote(process.execPath)} ${quote(self)}`, '/dev/null'], { env: childEnv(debug), encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, `child under a terminal: ${r.stdout}${r.stderr}`);
  return r.stdout.replace(/\r\n/g, '\n');
}

/**
 * The file the child's stderr (and with `stdout`, its stdout too: > log 2>&1) went to, opened by
 * this process with `mode` ('a': 2>>, 'w': 2>) and shared with the child as a shell shares it:
 * `before` is written through the descriptor first and `after` once the child has exited.
 */
function intoFile(mode: 'a' | 'w', o: { before?: string; after?: string; stdout?: boolean } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'neuralign-stderr-'));
  const path = join(dir, 'err.log');
  try {
    const out = openSync(path, mode);
    try {
      if (o.before) writeSync(out, o.before);
      const r = spawnSync(process.execPath, [self], { env: childEnv(false), stdio: ['ignore', o.stdout ? out : 'ignore', out], timeout: 120_000 });
      assert.is(r.status, 0, readFileSync(path, 'utf8'));
      if (o.after) writeSync(out, o.after);
    } finally {
      closeSync(out);
    }
    return readFileSync(path, 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const test = suite('native stderr');
/** Whether Dawn prints its warnings on this adapter at all (NEURALIGN_DEBUG=1 lets them through). */
let dawnWarns = false;
test.before(() => {
  dawnWarns = WARNING.test(throughPipe(true));
});

test('a pipe: no native warning, and the JavaScript line arrives; NEURALIGN_DEBUG=1 lets them through', () => {
  assert.is(throughPipe(), LINE);
  if (dawnWarns) assert.match(throughPipe(true), WARNING);
});

test('a pipe made blocking by running a child with inherited stdio (as under npm test): no native warning, and the line arrives', () => {
  const { text, flags } = throughBlockingPipe();
  assert.is(flags & constants.O_NONBLOCK, 0, 'the pipe was blocking when the device was opened');
  assert.is(text, LINE);
});

const noScript = existsSync('/usr/bin/script') ? null : "util-linux's `script` (a pseudo-terminal for the child) is not installed";
testUnless(test, noScript, 'a terminal: no native warning, and the line arrives; NEURALIGN_DEBUG=1 lets them through', () => {
  const quiet = underTerminal();
  assert.ok(quiet.includes(LINE), quiet);
  assert.not.match(quiet, WARNING, `no native warning on the terminal:\n${quiet}`);
  if (dawnWarns) assert.match(underTerminal(true), WARNING);
});

test("a socket (Node's spawn pipes): descriptor left alone, warnings and then the line", () => {
  const text = throughSocket();
  assert.ok(text.endsWith(LINE), text);
  if (dawnWarns) assert.match(text, WARNING);
});

test("a file in append mode (2>>): no native warning, the line after the file's old content", () => {
  assert.is(intoFile('a', { before: 'old\n' }), `old\n${LINE}`);
});

/** `text` with Dawn's bytes, if it printed any, as the one blank line they become (spaces, then a newline). */
function blanked(text: string, rest: string): void {
  assert.not.match(text, WARNING, text);
  assert.ok(text.endsWith(rest), text);
  const blank = text.slice(0, text.length - rest.length);
  if (dawnWarns) assert.match(blank, /^ {40,}\n$/, `one blank line where the warnings were: ${JSON.stringify(blank)}`);
  else assert.is(blank, '');
}

test('a file without O_APPEND (2>): the warnings become a blank line in place, every offset as it would have been', () => {
  const text = intoFile('w', { before: 'old\n', after: 'after\n' });
  assert.ok(text.startsWith('old\n'), text);
  blanked(text.slice(4), `${LINE}after\n`);
});

test('stdout and stderr into one file (> log 2>&1): a blank line, then both lines in order', () => {
  blanked(intoFile('w', { stdout: true }), `${LINE}${OUT_LINE}`);
});

test.run();
