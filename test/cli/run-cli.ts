// Running `neuralign` in-process for the CLI tests: runCli with console output captured.
import { runCli } from '../../src/cli/main.js';

export interface Result {
  code: number;
  out: string;
  err: string;
}

/** runCli with console.log, console.error and process.stderr captured (Dawn's warnings dropped). */
export async function cli(...argv: string[]): Promise<Result> {
  const out: string[] = [];
  const err: string[] = [];
  const saved = { log: console.log, error: console.error, write: process.stderr.write };
  console.log = (...a: unknown[]) => void out.push(`${a.join(' ')}\n`);
  console.error = (...a: unknown[]) => void err.push(`${a.join(' ')}\n`);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await runCli(argv);
    return { code, out: out.join(''), err: err.join('').replace(/^Warning: .*\n/gm, '') };
  } finally {
    console.log = saved.log;
    console.error = saved.error;
    process.stderr.write = saved.write;
  }
}
