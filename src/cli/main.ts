// Command dispatch, help, and the one place errors become a one-line message and an exit code:
// 0 success, 1 failure, 2 no usable WebGPU adapter, 64 bad usage.
import { NoAdapterError, shutdown } from '../engine/index.js';
import { align, alignHelp } from './align.js';
import { UsageError } from './args.js';
import { bench, benchHelp } from './bench.js';
import { demo, demoHelp } from './demo.js';
import { evalCommand, evalHelp } from './eval.js';
import { info, infoHelp } from './info.js';
import { interpolate, interpolateHelp } from './interpolate.js';
import { train, trainHelp } from './train.js';

interface Command {
  run: (argv: string[]) => Promise<number>;
  help: string;
  summary: string;
}

const commands: Record<string, Command> = {
  info: { run: info, help: infoHelp, summary: 'show the WebGPU device and limits in use' },
  demo: { run: demo, help: demoHelp, summary: 'check the engine end to end (what `npm start` runs)' },
  bench: { run: bench, help: benchHelp, summary: 'benchmark kernels (matmul), JSON output' },
  train: { run: train, help: trainHelp, summary: 'train a model (paper recipe), checkpoint every epoch, --resume' },
  eval: { run: evalCommand, help: evalHelp, summary: 'test loss and accuracy of a checkpoint' },
  align: { run: align, help: alignHelp, summary: "permute B's units to match A's (neuron alignment), report correlations" },
  interpolate: { run: interpolate, help: interpolateHelp, summary: 'loss and accuracy along (1-t) A + t B, BN re-estimated per t; barriers' },
};

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
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 64;
  }
  const command = commands[name];
  if (!command) {
    console.error(`neuralign: unknown command '${name}'\n\n${usage()}`);
    return 64;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    const err = e as Error;
    if (process.env.NEURALIGN_DEBUG) console.error(err.stack);
    if (err instanceof UsageError) {
      console.error(`neuralign ${name}: ${err.message}\n\n${command.help}`);
      return 64;
    }
    console.error(`neuralign ${name}: ${err.message}`);
    return err instanceof NoAdapterError ? 2 : 1;
  } finally {
    await shutdown().catch(() => undefined);
  }
}
