// `bench train-step --torch`: PyTorch's training step on the same models, batch and reps
// (bench/torch_baseline.py train-step, one process per model so that its peak RSS is that model's
// alone), run after ours, never beside it, and one table of the two.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchScript } from './python.js';

/** The models bench/torch_baseline.py builds (its MODELS), by our names. */
export const TORCH_MODELS = ['tinyten', 'resnet32', 'googlenet', 'vgg16'] as const;

/** One row of our train-step report, as far as the comparison reads it. */
export interface OurStep {
  model: string;
  width: number;
  batch: number;
  images_per_s: number;
  peak_pool_mib: number;
}

/** One row of torch_baseline.py's train-step section. */
export interface TorchStep {
  model: string;
  batch: number;
  params?: number;
  ms_per_step: number;
  images_per_s: number;
  /** torch.cuda.max_memory_allocated (CUDA only). */
  peak_mib?: number | null;
  /** Peak RSS minus the RSS before the first step (null when the process's peak was set earlier). */
  peak_rss_growth_mib?: number | null;
}

/** What torch_baseline.py reported, with the command's view of it. */
export interface TorchRun {
  source: string;
  python: string;
  rows: TorchStep[];
}

/** One line of the comparison; a side without the model has `undefined` there. */
export interface Compared {
  model: string;
  ours?: OurStep;
  torch?: TorchStep;
  /** ours / PyTorch images/s, when both ran the same problem (same batch, ours at full width). */
  ratio?: number;
  /** PyTorch's peak memory: CUDA's allocator peak, else the peak RSS growth. */
  torchMib?: number;
  /** Why a ratio is absent although both sides have the model. */
  note?: string;
}

/** Throws the one line a user needs when `python` cannot import torch; runs nothing else. */
export function checkTorch(python: string): void {
  const r = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status === 0) return;
  const why = r.error ? (r.error as NodeJS.ErrnoException).code ?? r.error.message : r.stderr.trim().split('\n').pop() || `exit ${r.status ?? r.signal}`;
  throw new Error(`bench train-step --torch: PyTorch not found (${python} -c 'import torch' failed: ${why}); apt-get install python3-torch`);
}

/** torch_baseline.py train-step for each model in turn (its output passed through). */
export async function runTorchTrainStep(python: string, models: readonly string[], batch: number, reps: number): Promise<TorchRun> {
  const script = benchScript('torch_baseline.py');
  if (!script) throw new Error('bench train-step --torch: bench/torch_baseline.py not found');
  const dir = mkdtempSync(join(tmpdir(), 'neuralign-torch-'));
  try {
    const run: TorchRun = { source: '', python, rows: [] };
    for (const model of models) {
      const out = join(dir, `${model}.json`);
      const args = [script, 'train-step', '--models', model, '--batch', String(batch), '--reps', String(reps), '--out', out];
      const code = await new Promise<number | string>((done, fail) => {
        const child = spawn(python, args, { stdio: ['ignore', 'inherit', 'inherit'] });
        child.on('error', fail);
        child.on('exit', (status, signal) => done(status ?? signal ?? 'no status'));
      });
      if (code !== 0) throw new Error(`bench train-step --torch: ${python} ${args.join(' ')} failed (${code})`);
      const report = JSON.parse(readFileSync(out, 'utf8')) as { source: string; 'train-step': { rows: TorchStep[] } };
      run.source = report.source;
      run.rows.push(...report['train-step'].rows);
    }
    return run;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const known = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

/** Our rows beside PyTorch's by model: ours in their order, then models only PyTorch has. */
export function joinTorch(ours: readonly OurStep[], torch: readonly TorchStep[]): Compared[] {
  const byModel = new Map(torch.map((t) => [t.model, t]));
  const rows: Compared[] = ours.map((o) => ({ model: o.model, ours: o, torch: byModel.get(o.model) }));
  for (const t of torch) if (!ours.some((o) => o.model === t.model)) rows.push({ model: t.model, torch: t });
  for (const r of rows) {
    const t = r.torch;
    if (t) r.torchMib = known(t.peak_mib) ? t.peak_mib : known(t.peak_rss_growth_mib) ? t.peak_rss_growth_mib : undefined;
    if (!r.ours || !t) continue;
    if (r.ours.width !== 1) r.note = `ours at width ${r.ours.width}: not comparable`;
    else if (r.ours.batch !== t.batch) r.note = `PyTorch at batch ${t.batch}, ours ${r.ours.batch}`;
    else if (known(t.images_per_s) && t.images_per_s > 0) r.ratio = r.ours.images_per_s / t.images_per_s;
  }
  return rows;
}

/** The comparison as printed lines: model, images/s both sides, ratio in %, peak MiB both sides. */
export function comparisonTable(rows: readonly Compared[], source: string): string[] {
  const cell = (v: number | undefined, digits: number, width: number) => (v === undefined ? '-' : v.toFixed(digits)).padStart(width);
  const side = (present: boolean, v: number | undefined, digits: number, width: number) => (present ? cell(v, digits, width) : 'missing'.padStart(width));
  return [
    `PyTorch: ${source}. ratio = our images/s / PyTorch's; MiB: our pool's peak, PyTorch's CUDA peak allocated or (CPU) peak RSS growth`,
    `${'model'.padEnd(10)} ${'ours img/s'.padStart(11)} ${'torch img/s'.padStart(11)} ${'ratio'.padStart(7)} ${'ours MiB'.padStart(9)} ${'torch MiB'.padStart(9)}`,
    ...rows.map(
      (r) =>
        `${r.model.padEnd(10)} ${side(!!r.ours, r.ours?.images_per_s, 1, 11)} ${side(!!r.torch, r.torch?.images_per_s, 1, 11)} ` +
        `${(r.ratio === undefined ? '-' : `${(100 * r.ratio).toFixed(1)}%`).padStart(7)} ` +
        `${side(!!r.ours, r.ours?.peak_pool_mib, 0, 9)} ${side(!!r.torch, r.torchMib, 0, 9)}${r.note ? `  (${r.note})` : ''}`,
    ),
  ];
}
