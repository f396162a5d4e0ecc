// Linear assignment benchmark: src/align/assignment.ts against scipy.optimize.linear_sum_assignment
// on the same matrices (written to a temp folder as raw float64 for bench/assignment_scipy.py).
// Two kinds of n x n matrix:
// - uniform: costs uniform in [0, 1), minimized (the usual LAP benchmark);
// - corr: correlation-like scores, maximized (what alignment feeds the solver): a planted
//   permutation with signal 0.4 on top of Gaussian noise of sigma 0.15, clipped to [-1, 1].
// Median (and minimum) wall-clock ms of a few runs after warm-up, ours and scipy alternating run
// by run (scipy in a long-lived child process) so both see the same load; CPU only, no GPU.
// scipy runs under Debian's /usr/bin/python3 (apt-get install python3-scipy; bench/python.ts); without it the
// suite times ours alone and says so. Findings and numbers: bench/README-assignment.md.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { solveAssignment } from '../src/align/assignment.js';
import { benchScript, pythonPath } from './python.js';

export interface AssignmentBenchOptions {
  quick: boolean;
  /** Writes the results here as JSON. */
  json?: string;
  /** Matrix sizes (default 64, 256, 512, 1024, 4096; quick: up to 1024). */
  sizes?: number[];
  /** Timed runs per matrix (default by size). */
  reps?: number;
  /** Python with scipy (default pythonPath(): $NEURALIGN_PYTHON, else /usr/bin/python3). */
  python?: string;
}

type Kind = 'uniform' | 'corr';

interface Row {
  kind: Kind;
  n: number;
  reps: number;
  oursMs: number;
  oursMinMs: number;
  scipyMs?: number;
  scipyMinMs?: number;
  /** oursMs / scipyMs (medians). */
  ratio?: number;
  oursTotal: number;
  scipyTotal?: number;
  /** Rows whose column differs from scipy's (ties can make both optimal). */
  rowsDiffering?: number;
}

/** mulberry32: seeded uniform [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function makeMatrix(kind: Kind, n: number, seed: number): Float64Array {
  const rand = rng(seed);
  const a = new Float64Array(n * n);
  if (kind === 'uniform') {
    for (let k = 0; k < a.length; k++) a[k] = rand();
    return a;
  }
  // Box-Muller normals; a random planted permutation (Fisher-Yates).
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const x = (j === perm[i] ? 0.4 : 0) + 0.15 * normal();
      a[i * n + j] = Math.max(-1, Math.min(1, x));
    }
  }
  return a;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function defaultReps(n: number): number {
  if (n <= 64) return 101;
  if (n <= 256) return 21;
  if (n <= 1024) return 7;
  return 3;
}

interface ScipyResult {
  ms: number[];
  total: number;
  match: number[];
}

/** bench/assignment_scipy.py as a long-lived child speaking JSON lines (see that file). */
class Scipy {
  private pending: ((line: string | undefined) => void)[] = [];
  private queued: (string | undefined)[] = [];
  private stderr = '';

  private constructor(private readonly proc: ChildProcessWithoutNullStreams) {
    createInterface({ input: proc.stdout }).on('line', (line) => this.deliver(line));
    proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    proc.on('close', () => this.deliver(undefined));
    proc.on('error', (e) => {
      this.stderr += e.message;
      this.deliver(undefined);
    });
  }

  private deliver(line: string | undefined): void {
    const waiter = this.pending.shift();
    if (waiter) waiter(line);
    else this.queued.push(line);
  }

  private next(): Promise<string | undefined> {
    if (this.queued.length) return Promise.resolve(this.queued.shift());
    if (this.proc.exitCode !== null) return Promise.resolve(undefined);
    return new Promise((r) => this.pending.push(r));
  }

  /** Starts python; undefined (with the reason printed) when scipy cannot run. */
  static async start(python: string): Promise<{ scipy: Scipy; version: string } | undefined> {
    const script = benchScript('assignment_scipy.py');
    if (!script) {
      console.log('note: bench/assignment_scipy.py not found; timing ours only');
      return undefined;
    }
    const scipy = new Scipy(spawn(python, [script], { stdio: ['pipe', 'pipe', 'pipe'] }));
    const hello = await scipy.next();
    if (hello === undefined) {
      const why = scipy.stderr.trim().split('\n').pop() ?? 'no output';
      console.log(`note: scipy not run (${python}: ${why}); timing ours only. Debian: apt-get install -y python3-scipy`);
      return undefined;
    }
    const v = JSON.parse(hello) as { scipy: string; numpy: string };
    return { scipy, version: `scipy ${v.scipy}, numpy ${v.numpy}` };
  }

  async solve(file: string, n: number, maximize: boolean, reps: number): Promise<ScipyResult> {
    this.proc.stdin.write(JSON.stringify({ file, n, maximize, reps }) + '\n');
    const line = await this.next();
    if (line === undefined) throw new Error(`scipy process ended: ${this.stderr.trim()}`);
    return JSON.parse(line) as ScipyResult;
  }

  close(): void {
    this.proc.stdin.end();
  }
}

/** Times ours and scipy on one matrix, alternating run by run after warm-up. */
async function measure(kind: Kind, n: number, reps: number, dir: string, scipy: Scipy | undefined): Promise<Row> {
  const matrix = makeMatrix(kind, n, 1000 * n + (kind === 'corr' ? 1 : 0));
  const maximize = kind === 'corr';
  const file = join(dir, `${kind}-${n}.f64`);
  // Float64Array bytes are little-endian on every platform Node runs on.
  writeFileSync(file, new Uint8Array(matrix.buffer, matrix.byteOffset, matrix.byteLength));
  const solve = () => solveAssignment(matrix, { maximize });
  // Warm-up, untimed: JIT for ours, loading the file for scipy; also the answers to compare.
  for (let w = 0; w < (n <= 256 ? 20 : 1); w++) solve();
  const ours = solve();
  const theirs = await scipy?.solve(file, n, maximize, 1);
  const oursTimes: number[] = [];
  const scipyTimes: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    solve();
    oursTimes.push(performance.now() - t0);
    if (scipy) scipyTimes.push(...(await scipy.solve(file, n, maximize, 1)).ms);
  }
  rmSync(file);
  const row: Row = { kind, n, reps, oursMs: median(oursTimes), oursMinMs: Math.min(...oursTimes), oursTotal: ours.total };
  if (theirs) {
    row.scipyMs = median(scipyTimes);
    row.scipyMinMs = Math.min(...scipyTimes);
    row.ratio = row.oursMs / row.scipyMs;
    row.scipyTotal = theirs.total;
    row.rowsDiffering = theirs.match.reduce((count, j, i) => count + (j !== ours.match[i] ? 1 : 0), 0);
  }
  return row;
}

function formatRow(r: Row): string {
  const ms = (med?: number, min?: number) => (med === undefined ? '-' : `${med.toFixed(2)} (${min!.toFixed(2)})`).padEnd(22);
  const diff = r.scipyTotal === undefined ? '-' : Math.abs(r.oursTotal - r.scipyTotal).toExponential(1);
  return [
    r.kind.padEnd(9),
    String(r.n).padEnd(7),
    String(r.reps).padEnd(6),
    ms(r.oursMs, r.oursMinMs),
    ms(r.scipyMs, r.scipyMinMs),
    (r.ratio?.toFixed(2) ?? '-').padEnd(11),
    diff.padEnd(13),
    String(r.rowsDiffering ?? '-'),
  ].join(' ');
}

export async function benchAssignment(opts: AssignmentBenchOptions): Promise<unknown> {
  const sizes = opts.sizes ?? (opts.quick ? [64, 256, 512, 1024] : [64, 256, 512, 1024, 4096]);
  const python = opts.python ?? pythonPath();
  const dir = mkdtempSync(join(tmpdir(), 'neuralign-lap-'));
  const started = await Scipy.start(python);
  try {
    const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, loadavg: loadavg().map((x) => +x.toFixed(2)) };
    const versions = `Node ${process.version}${started ? `, ${started.version}` : ''}`;
    console.log(`linear assignment, n x n float64, median (min) ms; runs alternate ours/scipy; ${versions}`);
    console.log(`${machine.cpu}, ${machine.cores} cores, load average ${machine.loadavg.join(' ')}`);
    console.log('kind      n       reps   ours ms (min)          scipy ms (min)         ours/scipy  |total diff|  rows differing');
    const rows: Row[] = [];
    for (const n of sizes) {
      for (const kind of ['uniform', 'corr'] as const) {
        const row = await measure(kind, n, opts.reps ?? defaultReps(n), dir, started?.scipy);
        rows.push(row);
        console.log(formatRow(row));
      }
    }
    const result = { suite: 'assignment', node: process.version, scipy: started?.version ?? null, machine, rows };
    if (opts.json) writeFileSync(opts.json, JSON.stringify(result, null, 2));
    return result;
  } finally {
    started?.scipy.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
