// Keeping Dawn's native start-up warnings off a terminal.
//
// When Dawn discovers a Vulkan adapter it clamps two limits it does not support in full and says
// so from C++ with fprintf(stderr): "Warning: maxDynamicUniformBuffersPerPipelineLayout
// artificially reduced from 1000000 to 16 ..." and the same for storage buffers (Dawn's
// Limits.cpp, on lavapipe and on NVIDIA's driver alike). No runtime switch turns that off, and
// JavaScript's process.stderr.write never sees it: it goes to file descriptor 2 directly. The
// engine needs neither limit (it binds no dynamic-offset buffers), so the lines are noise before
// every command's output, and they make a one-line error two lines longer.
//
// requestAdapter() does that discovery synchronously, so for the length of that one call fd 2
// can point at /dev/null and then back. That is only exact when the original can be reopened
// with the same meaning: a terminal can (a second open of the same device; terminal settings
// belong to the device). A pipe or a file cannot without fcntl, which Node lacks (reopening a
// file loses a shared offset or O_APPEND, a pipe's open can block or come back non-blocking), so
// there the two lines stay, as they do with NEURALIGN_DEBUG set or off Linux. The window is one
// synchronous call at device start-up, before a command does any I/O; only a file opened on
// another thread in that instant could take descriptor 2.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { isatty } from 'node:tty';

/** Whether fd 0, 1 and 2 are open, so that the lowest free descriptor is 2 once 2 is closed. */
function stdioOpen(): boolean {
  try {
    for (const fd of [0, 1, 2]) fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs the synchronous `fn` with native writes to stderr discarded, when stderr is a terminal on
 * Linux and NEURALIGN_DEBUG is unset; otherwise simply runs it. Writes from JavaScript are not
 * affected (they are not made inside `fn`).
 */
export function withoutNativeStderr<T>(fn: () => T): T {
  if (process.platform !== 'linux' || process.env.NEURALIGN_DEBUG || !isatty(2) || !stdioOpen()) return fn();
  let terminal: number;
  try {
    terminal = openSync('/proc/self/fd/2', 'w'); // the same terminal, through a new descriptor
  } catch {
    return fn();
  }
  closeSync(2);
  const devnull = openSync('/dev/null', 'w'); // the lowest free descriptor: 2
  try {
    return fn();
  } finally {
    closeSync(devnull);
    openSync(`/proc/self/fd/${terminal}`, 'w'); // 2 again, the terminal
    closeSync(terminal);
  }
}
