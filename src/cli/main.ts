// Command dispatch, help, and the one place errors become a one-line message and an exit code:
// 0 success, 1 failure, 2 no usable WebGPU adapter, 64 bad usage, 130 / 143 stopped by SIGINT /
// SIGTERM (signals.ts).
import { DeviceLimitError, NoAdapterError, shutdown } from '../engine/index.js';
import { useDawn } from '../engine/dawn.js';
import { align } from './align.js';
import { UsageError } from './args.js';
import { bench } from './bench.js';
import type { Command } from './command.js';
import { curve } from './curve.js';
import { demo } from './demo.js';
import { evalCurve } from './eval-curve.js';
import { evalCommand } from './eval.js';
import { info } from './info.js';
import { interpolate } from './interpolate.js';
import { RunStoppedError } from '../nn/train.js';
import { SIGNAL_EXIT_CODES, installStopHandlers, type StopSignalName } from './signals.js';
import { plane } from './plane.js';
import { profile } from './profile.js';
import { reproduce } from './reproduce.js';
import { serve } from './serve.js';
import { train } from './train.js';

const commands: Record<string, Command & { summary: string }> = {
  reproduce: { ...reproduce, summary: "the paper's experiments end to end for a preset, resumable, with a report (what `npm start` runs)" },
  info: { ...info, summary: 'show the WebGPU device and limits in use' },
  demo: { ...demo, summary: 'check the engine end to end (what `npm start` runs)' },
  bench: { ...bench, summary: 'benchmark matmul, conv, a training step per model, the assignment solver; JSON output' },
  profile: { ...profile, summary: 'per-kernel and per-op time of a training step (forward, backward, optimizer), dispatches and submits' },
  train: { ...train, summary: 'train a model (paper recipe), checkpoint every epoch, --resume' },
  eval: { ...evalCommand, summary: 'test loss and accuracy of a checkpoint' },
  align: { ...align, summary: "permute B's units to match A's (neuron alignment), report correlations" },
  interpolate: { ...interpolate, summary: 'loss and accuracy along (1-t) A + t B, BN re-estimated per t; barriers' },
  curve: { ...curve, summary: 'train a Bezier or polychain curve from A to B (or to B aligned to A), --resume' },
  'eval-curve': { ...evalCurve, summary: 'loss and accuracy along a trained curve (and the line), BN re-estimated per t; Min, Avg, barriers' },
  plane: { ...plane, summary: 'loss and accuracy on the plane through A, P(B) and the bend; JSON for a heatmap' },
  serve: { ...serve, summary: 'the browser pages (kernel lab, report viewer, live alignment) and the run folders on localhost' },
};

/** The commands by name (for `reproduce`, which runs them as its stages). */
export function commandTable(): Record<string, Command> {
  return commands;
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  return [
    'usage: neuralign <command> [options]',
    '',
    'Reproduces "Optimizing Mode Connectivity via Neuron Alignment" (Tatro et al., 2020) on a WebGPU engine.',
    '',
    'commands:',
    ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`),
    '',
    'Run `neuralign <command> --help` for its options. Environment: NEURALIGN_BACKEND=vulkan|opengles|...',
    'forces a Dawn backend; NEURALIGN_DEBUG=1 shows stack traces and Dawn messages.',
  ].join('\n');
}

export async function runCli(argv: string[]): Promise<number> {
  useDawn(); // the CLI's WebGPU is Dawn's Node bindings (src/engine/device.ts, DevicePlatform)
  let [name, ...rest] = argv;
  // `neuralign help train` is `neuralign train --help`.
  if (name === 'help' && rest.length) [name, ...rest] = [rest[0]!, '--help'];
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 64;
  }
  const command = commands[name];
  if (!command) {
    console.error(`neuralign: unknown command '${name}'\n\n${usage()}`);
    return 64;
  }
  const removeStopHandlers = installStopHandlers();
  try {
    return await command.run(rest);
  } catch (e) {
    const err = e as Error;
    if (process.env.NEURALIGN_DEBUG) console.error(err.stack);
    if (err instanceof UsageError) {
      console.error(`neuralign ${name}: ${err.message}\n\n${command.help}`);
      return 64;
    }
    // A tensor over the adapter's limits: say which knobs make tensors smaller.
    const hint = err instanceof DeviceLimitError ? '; a smaller --batch-size (or --width) needs less' : '';
    console.error(`neuralign ${name}: ${err.message}${hint}`);
    if (err instanceof RunStoppedError) return SIGNAL_EXIT_CODES[err.signal as StopSignalName] ?? 1;
    return err instanceof NoAdapterError ? 2 : 1;
  } finally {
    removeStopHandlers();
    await shutdown().catch(() => undefined);
  }
}
