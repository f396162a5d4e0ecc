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
// requestAdapter() does that discovery synchronously, so the one call can be wrapped. Two ways,
// by what descriptor 2 is (its flags from /proc/self/fdinfo/2):
//
// 1. Point fd 2 at /dev/null for the call and then back. Node has no dup2, so "back" means
//    opening /proc/self/fd/N of a saved second descriptor, which makes a new open file
//    description of the same object; that is exact only where a description carries nothing of
//    its own that matters:
//      a terminal          (settings belong to the device),
//      a pipe              (a pipe has no offset; reopened with O_NONBLOCK, so the open
//                          cannot wait for a reader, as libuv leaves stdio pipes anyway),
//      a file in append mode (2>>: every write goes to the end whatever the description).
// 2. A regular file without O_APPEND (2> file, > log 2>&1): a second description would get an
//    offset of its own, and whoever shares the first (stdout through 2>&1, the shell that runs
//    the next command into the same file) would write over ours. So fd 2 stays as it is, Dawn
//    writes its lines, and those bytes, read back and checked to be nothing but Dawn's
//    "Warning: " lines, are overwritten in place (pwrite, which moves no offset) by spaces ending
//    in one newline: a blank line where the warnings were, every offset as it would have been.
//
// Left alone (the two lines stay): a socket (what Node's child_process gives a child as a "pipe":
// it cannot be opened through /proc at all), NEURALIGN_DEBUG set, off Linux.
// The window is one synchronous call at device start-up, before a command does any I/O; only a
// file opened on another thread in that instant could take descriptor 2.
import { closeSync, constants, fstatSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
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

/** Descriptor 2's open flags and file position, from /proc/self/fdinfo/2. */
function fdinfo2(): { flags: number; pos: number } | null {
  const text = readFileSync('/proc/self/fdinfo/2', 'utf8');
  const flags = /^flags:\s*([0-7]+)$/m.exec(text);
  const pos = /^pos:\s*(\d+)$/m.exec(text);
  return flags && pos ? { flags: parseInt(flags[1]!, 8), pos: Number(pos[1]) } : null;
}

/** How `fn`'s native writes to descriptor 2 are kept out (see the file comment), or null for not at all. */
function plan(): { swap: number } | { blankFrom: number } | null {
  const info = fdinfo2();
  if (!info) return null;
  const kept = info.flags & (3 /* O_ACCMODE */ | constants.O_APPEND | constants.O_NONBLOCK);
  const st = fstatSync(2);
  if (isatty(2)) return { swap: kept };
  // A pipe is reopened non-blocking even where it is blocking now: a blocking open of a pipe
  // waits for a reader, and libuv makes stdio pipes non-blocking anyway (uv_pipe_open). Blocking
  // is common: spawning a child with stdio 'inherit' clears O_NONBLOCK on the description this
  // process shares with it (libuv does so for fds 0-2 before exec), so `npm test`, and any
  // process that ran a child before opening the device, finds its stderr pipe blocking.
  if (st.isFIFO()) return { swap: kept | constants.O_NONBLOCK };
  if (st.isFile()) return info.flags & constants.O_APPEND ? { swap: kept } : { blankFrom: info.pos };
  return null;
}

/** Dawn's log lines as LogMessage prints them ("Warning: ...\n"), and nothing else. */
const NATIVE_LINES = /^(?:Warning: [^\n]*\n)+$/;

/**
 * Overwrites bytes [from, descriptor 2's position now) of the file behind descriptor 2 with spaces
 * and a final newline, if they are Dawn's warning lines and nothing else; positioned writes, so no
 * file offset moves.
 */
function blankNativeLines(from: number): void {
  const info = fdinfo2();
  const n = info ? info.pos - from : 0;
  if (n <= 0 || n > 4096) return;
  const bytes = Buffer.alloc(n);
  let reader: number;
  try {
    reader = openSync('/proc/self/fd/2', 'r');
  } catch {
    return; // a file we may write but not read: the lines stay
  }
  try {
    if (readSync(reader, bytes, 0, n, from) !== n || !NATIVE_LINES.test(bytes.toString('latin1'))) return;
  } finally {
    closeSync(reader);
  }
  const blank = Buffer.alloc(n, 0x20);
  blank[n - 1] = 0x0a;
  writeSync(2, blank, 0, n, from);
}

/**
 * Runs the synchronous `fn` with native writes to stderr kept out of the output (see the file
 * comment for how and where) on Linux when NEURALIGN_DEBUG is unset; otherwise simply runs it.
 * Writes from JavaScript are not affected (they are not made inside `fn`).
 */
export function withoutNativeStderr<T>(fn: () => T): T {
  if (process.platform !== 'linux' || process.env.NEURALIGN_DEBUG || !stdioOpen()) return fn();
  let how: ReturnType<typeof plan> = null;
  try {
    how = plan();
  } catch {
    // no /proc: run it plainly
  }
  if (how === null) return fn();
  if ('blankFrom' in how) {
    try {
      return fn();
    } finally {
      try {
        blankNativeLines(how.blankFrom);
      } catch {
        // the lines stay
      }
    }
  }
  let saved: number;
  try {
    saved = openSync('/proc/self/fd/2', how.swap); // the same object, through a new descriptor
  } catch {
    return fn();
  }
  const flags = how.swap;
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
