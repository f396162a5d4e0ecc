// `neuralign bench all`: the matmul, conv, train-step and assignment suites in one command, each
// writing DIR/<suite>.json (the names bench/torch_baseline.py's `compare --dir DIR` reads, so
// `torch_baseline.py all --out DIR/torch.json` then `compare --dir DIR` puts PyTorch beside us),
// and one DIR/all.json plus DIR/all.md: a Markdown summary table per suite.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A suite as the CLI runs it: its results, JSON written to `json`. */
export type SuiteRunner = (json: string) => Promise<unknown>;

type Report = { rows?: Record<string, unknown>[] } & Record<string, unknown>;

const num = (v: unknown, digits = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-');

/** One Markdown table per suite, with the numbers a reader compares (the JSON has the rest). */
export function summarize(reports: Record<string, Report>): string {
  const out: string[] = ['# neuralign bench all', ''];
  const table = (title: string, header: string[], rows: string[][]) => {
    out.push(`## ${title}`, '', `| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`), '');
  };
  const m = reports.matmul?.rows as { shape: { name: string; M: number; N: number; K: number }; results: { variant: string; gflops?: number }[] }[] | undefined;
  if (m) {
    table('matmul (GFLOP/s)', ['shape', 'M x N x K', 'best variant', 'GFLOP/s'], m.map((r) => {
      const best = [...r.results].sort((a, b) => (b.gflops ?? 0) - (a.gflops ?? 0))[0];
      return [r.shape.name, `${r.shape.M} x ${r.shape.N} x ${r.shape.K}`, best?.variant ?? '-', num(best?.gflops)];
    }));
  }
  const c = reports.conv?.rows as { net: string; layer: string; kernel: string; forward: { gflops: number }; inputGrad: { gflops: number }; weightGrad: { gflops: number } }[] | undefined;
  if (c) table('conv2d (GFLOP/s)', ['net', 'layer', 'kernel', 'forward', 'input grad', 'weight grad'], c.map((r) => [r.net, r.layer, r.kernel, num(r.forward.gflops, 2), num(r.inputGrad.gflops, 2), num(r.weightGrad.gflops, 2)]));
  const t = reports['train-step']?.rows as { model: string; width: number; batch: number; images_per_s: number; peak_pool_mib: number }[] | undefined;
  if (t) table('training step', ['model', 'width', 'batch', 'images/s', 'peak pool MiB'], t.map((r) => [r.model, String(r.width), String(r.batch), num(r.images_per_s), num(r.peak_pool_mib, 0)]));
  const a = reports.assignment?.rows as { kind: string; n: number; oursMs: number; scipyMs?: number; ratio?: number }[] | undefined;
  if (a) table('linear assignment (ms)', ['matrix', 'n', 'ours', 'scipy', 'ours / scipy'], a.map((r) => [r.kind, String(r.n), num(r.oursMs, 2), num(r.scipyMs, 2), num(r.ratio, 2)]));
  return out.join('\n');
}

/** Runs every suite into `dir` (one JSON each), then all.json and all.md. */
export async function benchAll(dir: string, suites: Record<string, SuiteRunner>): Promise<void> {
  const reports: Record<string, Report> = {};
  for (const [name, run] of Object.entries(suites)) {
    console.log(`\n=== ${name}`);
    reports[name] = (await run(join(dir, `${name}.json`))) as Report;
  }
  writeFileSync(join(dir, 'all.json'), `${JSON.stringify({ suite: 'all', suites: reports }, null, 1)}\n`);
  writeFileSync(join(dir, 'all.md'), summarize(reports));
  console.log(`\nwrote ${join(dir, 'all.json')} and ${join(dir, 'all.md')}; PyTorch beside it: bench/torch_baseline.py all --out ${join(dir, 'torch.json')} && bench/torch_baseline.py compare --dir ${dir}`);
}
