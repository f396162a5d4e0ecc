// `neuralign bench <suite>`: placeholder until the matmul benchmark lands.
import { helpText, parseArgs, type FlagSpec } from './args.js';

const spec = { help: { type: 'boolean', help: 'show this help' } } satisfies FlagSpec;
export const benchHelp = helpText('neuralign bench matmul [options]', 'Benchmarks kernels.', spec);

export async function bench(argv: string[]): Promise<number> {
  const { flags } = parseArgs(argv, spec);
  if (flags.help) {
    console.log(benchHelp);
    return 0;
  }
  throw new Error('no benchmark suites yet');
}
