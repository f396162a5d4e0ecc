// `neuralign bench <suite>`: runs a benchmark suite from bench/ and writes its results as JSON.
// The suites live in bench/ (not here) so they can be read and changed beside their READMEs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { benchAll } from '../../bench/all.js';
import { benchAssignment } from '../../bench/assignment.js';
import { benchConv } from '../../bench/conv.js';
import { CASES as ELEMENTWISE_CASES, benchElementwise } from '../../bench/elementwise.js';
import { benchMatmul } from '../../bench/matmul.js';
import { pythonPath } from '../../bench/python.js';
import { TORCH_MODELS } from '../../bench/torch-train-step.js';
import { benchTrainStep } from '../../bench/train-step.js';
import { CONV_KERNELS, MATMUL_VARIANTS, parseGridPolicy, type ConvKernel, type GridPolicy, type MatmulVariant } from '../engine/index.js';
import { MODEL_NAMES, type ModelName } from '../nn/models/index.js';
import { UsageError, positiveInteger, type FlagSpec, type Flags as ParsedFlags } from './args.js';
import { defineCommand } from './command.js';
import { claimOutputs } from './output.js';
import { checkWritableFolder } from '../nn/writable.js';

const spec = {
  quick: { type: 'boolean', help: 'fewer sizes and repetitions (for CPU adapters)' },
  json: { type: 'string', help: 'write results to this JSON file (default bench/results/<suite>-<backend>-<time>.json)' },
  variants: { type: 'string', help: `kernel variants to time, comma-separated (matmul: ${MATMUL_VARIANTS.join(', ')}; conv: ${CONV_KERNELS.join(', ')}; elementwise: case names; train-step, curve-step: models, which --models is the name for there)` },
  models: { type: 'string', help: `train-step, curve-step: the models, comma-separated (${MODEL_NAMES.join(', ')}; default: train-step all but mlp, curve-step all)` },
  batch: { type: 'number', help: 'train-step, curve-step: images per step (default 128; 16 with --quick)' },
  torch: { type: 'boolean', help: `train-step: then PyTorch's step on the same models, batch and reps (bench/torch_baseline.py under $NEURALIGN_PYTHON, else /usr/bin/python3, else python3) and one table of both` },
  reps: { type: 'number', help: 'timed runs per measurement (median reported)' },
  sizes: { type: 'string', help: 'sizes, comma-separated (matmul: square sizes only, no model shapes; assignment: n; elementwise: elements, multiples of 2048)' },
  grids: { type: 'string', help: 'elementwise: grid policies to compare side by side, comma-separated G:K (at most G workgroups, 0 = no cap; at least K elements per invocation; 0:1 = one element per invocation)' },
  dir: { type: 'string', help: 'bench all: the folder for every suite\'s JSON, all.json and all.md (default bench/results/all-<backend>-<time>/)' },
  'busy-wait': { type: 'boolean', help: "matmul: await Dawn's promise directly, whose polling spins a core (default: the stream's sleeping wait)" },
} satisfies FlagSpec;

type Flags = ParsedFlags<typeof spec>;

interface Suite {
  what: string;
  run: (flags: Flags, json: string) => Promise<unknown>;
}

function list(flags: Flags): string[] | undefined {
  return flags.variants?.split(',').map((v) => v.trim()).filter(Boolean);
}

/** train-step and curve-step: --models (or, as before it, --variants) names the models. */
function models(flags: Flags): ModelName[] | undefined {
  if (flags.models !== undefined && flags.variants !== undefined) throw new UsageError('--models and --variants name the same thing (the models); give one');
  const names = flags.models?.split(',').map((v) => v.trim()).filter(Boolean) ?? list(flags);
  for (const n of names ?? []) if (!(MODEL_NAMES as readonly string[]).includes(n)) throw new UsageError(`unknown model '${n}' (${MODEL_NAMES.join(', ')})`);
  return names as ModelName[] | undefined;
}

/** train-step's options from the flags; with --torch, only the models PyTorch's baseline has. */
function trainStepOptions(flags: Flags, json: string) {
  const names = models(flags);
  if (flags.torch) {
    const missing = (names ?? []).find((n) => !(TORCH_MODELS as readonly string[]).includes(n));
    if (missing) throw new UsageError(`--torch: bench/torch_baseline.py has no model '${missing}' (${TORCH_MODELS.join(', ')})`);
  }
  return { quick: flags.quick, json, reps: positiveInteger(flags.reps, 'reps'), batch: positiveInteger(flags.batch, 'batch'), models: names, torch: flags.torch ? pythonPath() : undefined };
}

function sizes(flags: Flags): number[] | undefined {
  const out = flags.sizes?.split(',').map(Number);
  if (out?.some((n) => !Number.isInteger(n) || n < 1)) throw new UsageError(`--sizes needs positive integers, got '${flags.sizes}'`);
  return out;
}

const suites: Record<string, Suite> = {
  matmul: {
    what: 'GFLOP/s of every matmul variant on square sizes and model shapes (bench/matmul.ts, bench/README.md)',
    run: async (flags, json) => {
      const variants = list(flags);
      for (const v of variants ?? []) {
        if (!(MATMUL_VARIANTS as readonly string[]).includes(v)) throw new UsageError(`unknown matmul variant '${v}'`);
      }
      const report = await benchMatmul({
        quick: flags.quick, reps: flags.reps, sizes: sizes(flags), busyWait: flags['busy-wait'],
        variants: variants as MatmulVariant[] | undefined,
      });
      // bench/matmul.ts has no file I/O (the browser's kernel lab runs it too); the report goes here.
      writeFileSync(json, JSON.stringify(report, null, 2) + '\n');
      console.log(`wrote ${json}`);
      return report;
    },
  },
  conv: {
    what: 'GFLOP/s of conv2d forward and gradients on VGG16/ResNet32 layers (bench/conv.ts)',
    run: async (flags, json) => {
      const kernels = list(flags);
      for (const k of kernels ?? []) if (!(CONV_KERNELS as readonly string[]).includes(k)) throw new UsageError(`unknown conv kernel '${k}' (${CONV_KERNELS.join(', ')})`);
      const report = await benchConv({ quick: flags.quick, runs: flags.reps, kernels: kernels as ConvKernel[] | undefined });
      writeFileSync(json, JSON.stringify(report, null, 2));
      console.log(`wrote ${json}`);
      return report;
    },
  },
  elementwise: {
    what: 'GB/s of the element-wise kernels (unary, binary, where, fill, copy, SGD, batch norm, dropout, random) at 4K..4M elements (bench/elementwise.ts)',
    run: (flags, json) => {
      const cases = list(flags);
      for (const c of cases ?? []) {
        if (!ELEMENTWISE_CASES.some((k) => k.name === c)) throw new UsageError(`unknown elementwise case '${c}' (${ELEMENTWISE_CASES.map((k) => k.name).join(', ')})`);
      }
      let grids: GridPolicy[] | undefined;
      try {
        grids = flags.grids?.split(',').map(parseGridPolicy);
      } catch (e) {
        throw new UsageError(`--grids: ${(e as Error).message}`);
      }
      return benchElementwise({ quick: flags.quick, json, reps: flags.reps, sizes: sizes(flags), cases, grids });
    },
  },
  'train-step': {
    what: 'a full training step of each model at batch 128: images/s and peak pool memory; --torch: beside PyTorch\'s (bench/train-step.ts)',
    run: (flags, json) => benchTrainStep(trainStepOptions(flags, json)),
  },
  'curve-step': {
    what: 'a curve training step (quadratic Bezier, w(t) on the GPU) beside the endpoint step of each model: the overhead (bench/train-step.ts)',
    run: (flags, json) => {
      const opts = trainStepOptions(flags, json);
      return benchTrainStep({ ...opts, curve: true, models: opts.models ?? [...MODEL_NAMES] });
    },
  },
  assignment: {
    what: 'linear assignment solver against scipy (bench/assignment.ts)',
    run: (flags, json) => benchAssignment({ quick: flags.quick, json, reps: flags.reps, sizes: sizes(flags) }),
  },
};

/** The suites `bench all` runs, in order (the ones bench/torch_baseline.py mirrors, and the solver). */
const ALL = ['matmul', 'conv', 'train-step', 'assignment'] as const;

async function run(flags: Flags, positionals: string[]): Promise<number> {
  const [name, ...extra] = positionals;
  if (!name) throw new UsageError('name a suite');
  if (extra.length) throw new UsageError(`unexpected argument '${extra[0]}'`);
  const backend = process.env.NEURALIGN_BACKEND?.trim() || 'default';
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  if (name === 'all') {
    if (flags.variants || flags.models || flags.sizes || flags.grids || flags.batch !== undefined) throw new UsageError('bench all runs every suite with its defaults: --variants, --models, --batch, --sizes and --grids are for one suite');
    if (flags.torch) throw new UsageError(`--torch is for train-step; for bench all, PyTorch beside it is bench/torch_baseline.py all and compare (printed at the end)`);
    const dir = flags.dir ?? join('bench', 'results', `all-${backend}-${stamp}`);
    checkWritableFolder(dir, flags.dir ? '--dir' : undefined); // creates it; before the work
    await benchAll(dir, Object.fromEntries(ALL.map((s) => [s, (json: string) => suites[s]!.run(flags, json)])));
    return 0;
  }
  if (flags.dir) throw new UsageError('--dir is for bench all (one suite takes --json)');
  const suite = suites[name];
  if (!suite) throw new UsageError(`unknown suite '${name}'`);
  if (flags.torch && name !== 'train-step') throw new UsageError('--torch is for train-step');
  if ((flags.models !== undefined || flags.batch !== undefined) && name !== 'train-step' && name !== 'curve-step') throw new UsageError('--models and --batch are for train-step and curve-step');
  const json = flags.json ?? join('bench', 'results', `${name}-${backend}-${stamp}.json`);
  if (!flags.json) mkdirSync(dirname(json), { recursive: true });
  claimOutputs({ '--json': json }); // can be written, checked before the work
  await suite.run(flags, json);
  return 0;
}

export const bench = defineCommand({
  usage: `neuralign bench ${Object.keys(suites).join('|')}|all [options]`,
  description: 'Benchmarks kernels and training steps: prints a table and writes JSON.',
  spec,
  // Each suite starts the device itself; the matmul suite times every variant, not the tuned one.
  device: false,
  positionals: true,
  epilog: [
    'suites:',
    ...Object.entries(suites).map(([name, s]) => `  ${name.padEnd(11)} ${s.what}`),
    `  ${'all'.padEnd(11)} ${ALL.join(', ')} in one run: DIR/<suite>.json, DIR/all.json and a Markdown summary DIR/all.md (--dir DIR)`,
    '',
    'Environment: NEURALIGN_BACKEND=vulkan|opengles picks the Dawn backend; NEURALIGN_MATMUL=<variant>',
    'forces the matmul kernel the engine uses (the matmul suite times every variant regardless);',
    'NEURALIGN_GRID=G:K sets the element-wise grid policy (0:1 = one element per invocation).',
  ].join('\n'),
  run,
});
