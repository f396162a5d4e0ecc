// Choosing between kernel variants by measurement, once per adapter.
//
// The fastest kernel depends on the adapter more than on anything we can read from it: on a GPU a
// matmul tiled in workgroup memory wins, while on Mesa's llvmpipe (a CPU) barriers are so dear that
// a kernel without workgroup memory runs several times faster. So an op with variants times each
// candidate on a representative problem, waiting for the queue to finish, and keeps the fastest
// for the life of the runtime. Timing needs `await`, and ops are synchronous, so commands call the
// op's tune function (e.g. `tuneMatmul()`) once after `init()`; until then ops use a default.
import { runtime, type Runtime } from './runtime.js';

/**
 * Wall-clock milliseconds of `reps` runs of `run` (which records GPU work), each awaited to
 * completion by stream.finish(); `busyWait` lets dawn.node's polling loop spin meanwhile (see
 * CommandStream.sleepWhileWaiting) to measure what that costs.
 */
export async function timeGPU(
  run: () => void,
  opts: { warmup?: number; reps?: number; busyWait?: boolean } = {},
): Promise<number[]> {
  const { warmup = 1, reps = 3, busyWait = false } = opts;
  const stream = runtime().stream;
  const sleeping = stream.sleepWhileWaiting;
  stream.sleepWhileWaiting = !busyWait;
  try {
    for (let i = 0; i < warmup; i++) {
      run();
      await stream.finish();
    }
    const times: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      run();
      await stream.finish();
      times.push(performance.now() - t0);
    }
    return times;
  } finally {
    stream.sleepWhileWaiting = sleeping;
  }
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface TuneResult<T extends string> {
  choice: T;
  /** Median milliseconds per candidate; a candidate cut short after one timed run has one sample. */
  ms: Partial<Record<T, number>>;
}

const choices = new WeakMap<Runtime, Map<string, TuneResult<string>>>();

/** The choice made for `key` on the current runtime, if tuning ran. */
export function tunedChoice<T extends string>(key: string): TuneResult<T> | undefined {
  return choices.get(runtime())?.get(key) as TuneResult<T> | undefined;
}

/**
 * Times every candidate with `run(candidate)` and records the fastest under `key` for the current
 * runtime; a second call returns the recorded result. Each candidate runs once untimed (compiling
 * its pipeline), once timed, and, unless that run was more than `cutoff` times slower than the
 * best median so far, `reps - 1` more times; so a hopeless kernel costs two runs. Order
 * candidates best-guess first.
 */
export async function pickFastest<T extends string>(
  key: string,
  candidates: readonly T[],
  run: (candidate: T) => void,
  opts: { reps?: number; cutoff?: number } = {},
): Promise<TuneResult<T>> {
  const rt = runtime();
  let table = choices.get(rt);
  if (!table) choices.set(rt, (table = new Map()));
  const known = table.get(key);
  if (known) return known as TuneResult<T>;
  const { reps = 3, cutoff = 3 } = opts;
  const ms: Partial<Record<T, number>> = {};
  let best: T | undefined;
  for (const candidate of candidates) {
    const go = () => run(candidate);
    const [first] = await timeGPU(go, { warmup: 1, reps: 1 });
    if (best !== undefined && first! > cutoff * ms[best]!) {
      ms[candidate] = first;
      continue;
    }
    ms[candidate] = median([first!, ...(await timeGPU(go, { warmup: 0, reps: reps - 1 }))]);
    if (best === undefined || ms[candidate]! < ms[best]!) best = candidate;
  }
  if (best === undefined) throw new Error(`tuning ${key}: no candidates`);
  const result: TuneResult<T> = { choice: best, ms };
  table.set(key, result);
  return result;
}
