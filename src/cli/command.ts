// One wrapper for the preamble every command shares, so a command file holds only its own flags
// and its own output: parse the flags (unknown ones are a UsageError), print the help on --help,
// refuse stray positionals, and start the device and pick the matmul kernel by timing before the
// command body runs. main.ts turns a UsageError into a message, the help and exit 64.
import { init, tuneMatmul } from '../engine/index.js';
import { UsageError, helpText, parseArgs, type FlagSpec, type Flags } from './args.js';

export interface CommandDefinition<S extends FlagSpec> {
  /** The usage line, e.g. 'neuralign eval --checkpoint FILE [options]'. */
  usage: string;
  /** What the command does, shown under the usage line. */
  description: string;
  /** The command's own flags; --help is added here. */
  spec: S;
  /**
   * Start the WebGPU device (init) and tune matmul before `run` (default true). Commands that
   * must answer without a device (info --no-tune) or whose library call does it (train) say false.
   */
  device?: boolean;
  /** Accept positional arguments and pass them to `run` (default: any positional is a UsageError). */
  positionals?: boolean;
  /** Text printed after the options in the help (e.g. bench's list of suites). */
  epilog?: string;
  /** The command body: the parsed flags in, the exit code out. */
  run: (flags: Flags<S>, positionals: string[]) => Promise<number>;
}

export interface Command {
  run(argv: string[]): Promise<number>;
  help: string;
}

const HELP_FLAG = { help: { type: 'boolean', help: 'show this help' } } satisfies FlagSpec;

export function defineCommand<S extends FlagSpec>(def: CommandDefinition<S>): Command {
  const spec = { ...def.spec, ...HELP_FLAG };
  const help = helpText(def.usage, def.description, spec) + (def.epilog ? `\n\n${def.epilog}` : '');
  return {
    help,
    async run(argv: string[]): Promise<number> {
      const { flags, positionals } = parseArgs(argv, spec);
      if (flags.help) {
        console.log(help);
        return 0;
      }
      if (!def.positionals && positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
      if (def.device ?? true) {
        await init();
        await tuneMatmul();
      }
      return def.run(flags as Flags<S>, positionals);
    },
  };
}
