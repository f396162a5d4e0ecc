// `neuralign info`: which device the engine runs on, and the limits it asked for.
import { init, runtime, tuneMatmul } from '../engine/index.js';
import type { FlagSpec } from './args.js';
import { defineCommand } from './command.js';

const spec = {
  json: { type: 'boolean', help: 'print JSON instead of text' },
  'no-tune': { type: 'boolean', help: 'skip timing the matmul kernels (faster; the set-up script uses it)' },
} satisfies FlagSpec;

export const info = defineCommand({
  usage: 'neuralign info [--json] [--no-tune]',
  description: 'Prints the WebGPU backend, adapter, feature level, device limits, and the matmul kernel chosen by timing.',
  spec,
  device: false, // --no-tune starts the device without timing matmul
  async run(flags) {
    await init();
    const i = runtime().info;
    const matmul = flags['no-tune'] ? null : await tuneMatmul();
    if (flags.json) {
      console.log(JSON.stringify({ ...i, matmul }, null, 2));
      return 0;
    }
    console.log(`backend        ${i.backend} (${i.featureLevel} feature level)`);
    console.log(`adapter        ${i.description} [${i.vendor || 'unknown vendor'}${i.architecture ? ', ' + i.architecture : ''}]`);
    console.log(`device type    ${i.isCPU ? 'CPU (software rasterizer)' : 'GPU'}`);
    console.log(`features       ${i.features.join(', ') || 'none'}`);
    if (matmul) {
      const timings = Object.entries(matmul.ms).map(([v, ms]) => `${v} ${ms!.toFixed(1)} ms`).join(', ');
      console.log(`matmul kernel  ${matmul.choice}${timings ? ` (timed at 512^3: ${timings})` : ' (forced)'}`);
    }
    console.log('limits');
    for (const [name, value] of Object.entries(i.limits)) console.log(`  ${name.padEnd(34)} ${value}`);
    return 0;
  },
});
