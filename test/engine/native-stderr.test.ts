// Dawn's native start-up warnings ("max...artificially reduced", written by C++ straight to fd 2
// while requestAdapter discovers the Vulkan adapter) stay off a terminal: src/engine/native-stderr.ts.
// This file, run as a child process under a pseudo-terminal (util-linux `script`), opens the device
// and then writes a line to stderr. Without NEURALIGN_DEBUG the terminal shows the line and no
// warning; with NEURALIGN_DEBUG=1 it shows whatever Dawn prints (the control: on an adapter where
// Dawn clamps nothing there is no warning to hide, and only the restored stderr is checked). With
// stderr a pipe the descriptor is never touched and the line arrives as well.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { useDawn } from '../../src/engine/dawn.js';
import { openDevice } from '../../src/engine/device.js';
import { testUnless } from '../helpers.js';

const CHILD = process.env.NEURALIGN_TEST_NATIVE_STDERR_CHILD;
if (CHILD) {
  useDawn();
  const { device } = await openDevice();
  process.stderr.write('stderr after the device\n');
  device.destroy();
  process.exit(0);
}

const WARNING = /artificially reduced/;
const self = fileURLToPath(import.meta.url);
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The child's terminal output (stdout and stderr together, as a person sees them). */
function underTerminal(debug: boolean): string {
  const env: NodeJS.ProcessEnv = { ...process.env, NEURALIGN_TEST_NATIVE_STDERR_CHILD: '1' };
  if (debug) env.NEURALIGN_DEBUG = '1';
  else delete env.NEURALIGN_DEBUG;
  const r = spawnSync('script', ['-qec', `${quote(process.execPath)} ${quote(self)}`, '/dev/null'], { env, encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, `child under a terminal: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

const test = suite('native stderr');
const noScript = existsSync('/usr/bin/script') ? null : "util-linux's `script` (a pseudo-terminal for the child) is not installed";

/** The child with stderr a pipe: the descriptor is left alone, so Dawn's warnings (if any) are there. */
function throughPipe(): string {
  const r = spawnSync(process.execPath, [self], { env: { ...process.env, NEURALIGN_TEST_NATIVE_STDERR_CHILD: '1' }, encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, r.stderr);
  return r.stderr;
}

testUnless(test, noScript, "under a terminal: Dawn's native warnings are hidden, NEURALIGN_DEBUG shows them, and stderr works afterwards", () => {
  const dawnWarns = WARNING.test(throughPipe()); // true on lavapipe and NVIDIA's Vulkan driver
  const quiet = underTerminal(false);
  assert.match(quiet, /stderr after the device/);
  assert.not.match(quiet, WARNING, `no native warning on the terminal:\n${quiet}`);
  const control = underTerminal(true);
  assert.match(control, /stderr after the device/);
  if (dawnWarns) assert.match(control, WARNING, 'NEURALIGN_DEBUG=1 lets the warnings through');
});

test('with stderr a pipe, the descriptor is left alone and JavaScript writes arrive', () => {
  assert.match(throughPipe(), /stderr after the device\n$/);
});

test.run();
