// What commands write besides their console output.
import { writeFileAtomic } from '../nn/checkpoint/atomic.js';

/** Writes `value` as indented JSON with a final newline, atomically (a reader never sees half a report). */
export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, [new TextEncoder().encode(`${JSON.stringify(value, null, 1)}\n`)]);
}
