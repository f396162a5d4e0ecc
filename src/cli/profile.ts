// `neuralign profile`: where a training step's time goes, kernel by kernel (torch.profiler's
// key_averages as the model). Runs the training step of bench/train-step.ts: a warm-up step (it
// compiles the pipelines; not counted), then --steps profiled steps (src/engine/profiler.ts), then
// as many unprofiled steps for the wall time and the dispatch and submit counts.
import { trainStep } from '../../bench/train-step.js';
import {
  PHASES, aggregate, defaultTimingMethod, init, runtime, startProfiling, stopProfiling, tuneMatmul,
  type DispatchRecord, type ProfileRow, type TimingMethod,
} from '../engine/index.js';
import { median } from '../engine/tune.js';
import { MODEL_NAMES, type ModelName } from '../nn/models/index.js';
import { describeTuning, tuneKernels } from '../nn/tune-kernels.js';
import { UsageError, choice, positiveInteger, type FlagSpec } from './args.js';
import { defineCommand } from './command.js';
import { claimOutputs, writeJson } from './output.js';

const METHODS: readonly TimingMethod[] = ['timestamp-query', 'isolated-submits'];

const spec = {
  model: { type: 'string', help: `the model: ${MODEL_NAMES.join(', ')} (required)` },
  batch: { type: 'number', help: 'images per step (random 3x32x32 inputs, 10 classes)', default: 128 },
  steps: { type: 'number', help: 'profiled steps, after one warm-up step; as many unprofiled steps give the wall time', default: 3 },
  width: { type: 'number', help: 'width multiplier of the model', default: 1 },
  method: { type: 'string', help: `timing: ${METHODS.join(' or ')} (default: timestamp-query where the adapter has it)` },
  top: { type: 'number', help: 'rows of the per-op table (every row goes to --json)', default: 30 },
  json: { type: 'string', help: 'also write the profile to this JSON file' },
} satisfies FlagSpec;

const METHOD_NOTE: Record<TimingMethod, string> = {
  'timestamp-query': 'timestamp queries: each dispatch in a compute pass of its own, its begin and end timestamps, inside the real step',
  'isolated-submits': 'isolated submits (no timestamp-query on this adapter): each recorded dispatch replayed alone in a submit of its own, timed to onSubmittedWorkDone, minus an empty submit',
};

/** A row per step: the totals of all profiled steps divided by their number. */
interface Row extends ProfileRow {
  callsPerStep: number;
  msPerStep: number;
  meanUs: number;
  share: number;
}

function perStep(rows: ProfileRow[], steps: number, totalNs: number): Row[] {
  return rows.map((r) => ({
    ...r,
    callsPerStep: r.calls / steps,
    msPerStep: r.totalNs / steps / 1e6,
    meanUs: r.totalNs / r.calls / 1e3,
    share: totalNs > 0 ? r.totalNs / totalNs : 0,
  }));
}

/** Left-aligned text columns, right-aligned numbers, two spaces between. */
function table(header: string[], rows: (string | number)[][], numeric: boolean[]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => r[c]!.length)));
  return cells
    .map((r) => r.map((v, c) => (numeric[c] ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join('  ').trimEnd())
    .join('\n');
}

const count = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));
const pct = (x: number) => `${(100 * x).toFixed(1)}`;

export const profile = defineCommand({
  usage: 'neuralign profile --model M [--batch 128] [--steps 3] [--width 1] [--method timestamp-query|isolated-submits] [--top 30] [--json FILE]',
  description:
    'Profiles training steps of a model on random data: per kernel and per op (with its shapes), the calls, total time and share ' +
    'of the kernel time, forward, backward and optimizer separately, the dispatches and submits per step, and the step\'s wall time ' +
    'against the sum of its kernel times. The warm-up step is not counted.',
  spec,
  device: false, // the flags are checked before the device starts
  async run(flags) {
    if (!flags.model) throw new UsageError('--model is required');
    const model = choice(flags.model, MODEL_NAMES, 'model') as ModelName;
    const batch = positiveInteger(flags.batch, 'batch')!;
    const steps = positiveInteger(flags.steps, 'steps')!;
    const top = positiveInteger(flags.top, 'top')!;
    if (!(flags.width > 0)) throw new UsageError(`--width needs a number > 0, got ${flags.width}`);
    const requested = choice(flags.method, METHODS, 'method');
    claimOutputs({ json: flags.json });

    await init();
    const matmul = await tuneMatmul();
    const rt = runtime();
    const method = requested ?? defaultTimingMethod();
    const setup = trainStep(model, batch, flags.width);
    try {
      console.error(describeTuning(await tuneKernels(setup.model, setup.x.shape)));
      setup.step(); // warm-up: compiles every pipeline, creates the momentum buffers
      await rt.stream.finish();

      const records: DispatchRecord[] = [];
      const profiledMs: number[] = [];
      for (let s = 0; s < steps; s++) {
        const t0 = performance.now();
        startProfiling({ method });
        setup.step();
        const stepRecords = await stopProfiling();
        profiledMs.push(performance.now() - t0);
        records.push(...stepRecords);
      }

      const wallMs: number[] = [];
      const dispatches0 = rt.stream.dispatchCount;
      const submits0 = rt.stream.submitCount;
      for (let s = 0; s < steps; s++) {
        const t0 = performance.now();
        setup.step();
        await rt.stream.finish();
        wallMs.push(performance.now() - t0);
      }
      const dispatchesPerStep = (rt.stream.dispatchCount - dispatches0) / steps;
      const submitsPerStep = (rt.stream.submitCount - submits0) / steps;

      const totalNs = records.reduce((s, r) => s + r.ns, 0);
      const kernelMs = totalNs / steps / 1e6;
      const ops = perStep(aggregate(records), steps, totalNs);
      const kernels = perStep(aggregate(records, ['family']), steps, totalNs);
      const variants = perStep(aggregate(records, ['kernel']), steps, totalNs);
      const phases = PHASES.map((p) => {
        const own = records.filter((r) => r.phase === p);
        const ns = own.reduce((s, r) => s + r.ns, 0);
        return { phase: p, dispatchesPerStep: own.length / steps, msPerStep: ns / steps / 1e6, share: totalNs > 0 ? ns / totalNs : 0 };
      });
      const wall = median(wallMs);

      console.log(`profile of ${model} (width ${flags.width}), batch ${batch}: ${steps} step${steps > 1 ? 's' : ''} after 1 warm-up step; per step below`);
      console.log(`device: ${rt.info.description} (${rt.info.backend}); matmul kernel ${matmul.choice}`);
      console.log(`timing: ${METHOD_NOTE[method]}`);
      console.log(
        `per step: ${count(dispatchesPerStep)} dispatches in ${count(submitsPerStep)} submits; wall ${wall.toFixed(1)} ms unprofiled ` +
          `(median of ${steps}; ${median(profiledMs).toFixed(1)} ms profiled); kernels ${kernelMs.toFixed(1)} ms = ${pct(wall > 0 ? kernelMs / wall : 0)}% of the unprofiled wall`,
      );
      console.log('');
      console.log(table(
        ['phase', 'dispatches', 'ms', 'share %'],
        [...phases.map((p) => [p.phase, count(p.dispatchesPerStep), p.msPerStep.toFixed(2), pct(p.share)]), ['total', count(records.length / steps), kernelMs.toFixed(2), '100.0']],
        [false, true, true, true],
      ));
      console.log('');
      console.log('kernels (share % of the kernel time):');
      console.log(table(
        ['kernel', 'calls', 'total ms', 'mean us', 'share %'],
        kernels.map((k) => [k.kernel, count(k.callsPerStep), k.msPerStep.toFixed(2), k.meanUs.toFixed(1), pct(k.share)]),
        [false, true, true, true, true],
      ));
      console.log('');
      console.log(`ops by kernel, shapes and phase (top ${Math.min(top, ops.length)} of ${ops.length}):`);
      console.log(table(
        ['kernel', 'op', 'shapes', 'phase', 'calls', 'total ms', 'mean us', 'share %'],
        ops.slice(0, top).map((r) => [r.kernel, r.op, r.shapes, r.phase, count(r.callsPerStep), r.msPerStep.toFixed(2), r.meanUs.toFixed(1), pct(r.share)]),
        [false, false, false, false, true, true, true, true],
      ));

      if (flags.json) {
        await writeJson(flags.json, {
          command: 'profile', model, width: flags.width, batch, steps, warmupSteps: 1, method, device: rt.info, matmul: matmul.choice,
          perStep: { dispatches: dispatchesPerStep, submits: submitsPerStep, wallMs: wall, profiledWallMs: median(profiledMs), kernelMs },
          wallMs, profiledMs, phases, kernels: strip(kernels, ['op', 'shapes', 'phase']), variants: strip(variants, ['op', 'shapes', 'phase']), ops,
        });
        console.log(`\nwrote ${flags.json}`);
      }
      return 0;
    } finally {
      setup.dispose();
    }
  },
});

/** Rows without the fields they were not grouped by (empty strings in the JSON say nothing). */
function strip(rows: Row[], fields: (keyof ProfileRow)[]): Partial<Row>[] {
  return rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !fields.includes(k as keyof ProfileRow))));
}
