// Keeping Dawn's native start-up warnings out of a command's output.
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
// can point at /dev/null and then back. Node has no dup2, so "back" means opening
// /proc/self/fd/N of a saved second descriptor, which makes a new open file description of the
// same object; that is exact only where a description carries nothing of its own that matters:
//   a terminal          (settings belong to the device),
//   a pipe, non-blocking as libuv leaves stdio pipes (a pipe has no offset; reopened with
//                       O_NONBLOCK, so the open cannot wait for a reader),
//   a file in append mode (2>>: every write goes to the end whatever the description).
// The flags come from /proc/self/fdinfo/2 and are reopened as they were. A file opened without
// O_APPEND (2> file, or 2>&1 sharing one offset with stdout) would get a second offset and
// writes would overwrite each other, and a socket (what Node's child_process gives a child as a
// "pipe") cannot be opened through /proc at all, so there the two lines stay, as they do with
// NEURALIGN_DEBUG set or off Linux. The window is one synchronous call at device start-up,
// before a command does any I/O; only a file opened on another thread in that instant could take
// descriptor 2.
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
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

/** The open flags to reopen descriptor 2 with (see the file comment), or null where that is not exact. */
function reopenFlags(): number | null {
  const m = /^flags:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/fdinfo/2', 'utf8'));
  if (!m) return null;
  const flags = parseInt(m[1]!, 8);
  const kept = flags & (3 /* O_ACCMODE */ | constants.O_APPEND | constants.O_NONBLOCK);
  const st = fstatSync(2);
  if (isatty(2)) return kept;
  if (st.isFIFO()) return flags & constants.O_NONBLOCK ? kept : null;
  if (st.isFile()) return flags & constants.O_APPEND ? kept : null;
  return null;
}

/**
 * Runs the synchronous `fn` with native writes to stderr discarded, where descriptor 2 can be put
 * back exactly (a terminal, a non-blocking pipe, a file in append mode) on Linux and
 * NEURALIGN_DEBUG is unset; otherwise simply runs it. Writes from JavaScript are not affected
 * (they are not made inside `fn`).
 */
export function withoutNativeStderr<T>(fn: () => T): T {
  if (process.platform !== 'linux' || process.env.NEURALIGN_DEBUG || !stdioOpen()) return fn();
  let flags: number | null;
  let saved: number;
  try {
    flags = reopenFlags();
    if (flags === null) return fn();
    saved = openSync('/proc/self/fd/2', flags); // the same object, through a new descriptor
  } catch {
    return fn();
  }
  closeSync(2);
  const devnull = openSync('/dev/null', 'w'); // the lowest free descriptor: 2
  try {
    return fn();
  } finally {
    closeSync(devnull);
    try {
      openSync(`/proc/self/fd/${saved}`, flags); // 2 again
    } catch {
      // The pipe's reader went away meanwhile: 2 holds /dev/null again (never left free, where
      // the next file opened would become stderr).
      openSync('/dev/null', 'w');
    }
    closeSync(saved);
  }
}
