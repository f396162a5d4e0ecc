// `neuralign info`: which device the engine runs on, and the limits it asked for.
import { CONV_KERNELS, convKernelAvailable, envVar, init, runtime, tuneMatmul, type ConvTuning } from '../engine/index.js';
import { MODEL_NAMES, createModel, type ModelName } from '../nn/models/index.js';
import { tuneKernels } from '../nn/tune-kernels.js';
import { choice, positiveInteger, type FlagSpec } from './args.js';
import { defineCommand } from './command.js';

const spec = {
  json: { type: 'boolean', help: 'print JSON instead of text' },
  'no-tune': { type: 'boolean', help: 'skip timing the matmul kernels (faster; the set-up script uses it)' },
  conv: { type: 'string', help: `also time the conv kernels on every layer shape of this model (${MODEL_NAMES.join(', ')}), as training does, and show the choices` },
  batch: { type: 'number', help: 'with --conv: the batch size (default 128)' },
} satisfies FlagSpec;

export const info = defineCommand({
  usage: 'neuralign info [--json] [--no-tune] [--conv MODEL [--batch N]]',
  description: 'Prints the WebGPU backend, adapter, feature level, device limits, the matmul kernel chosen by timing, and with --conv the conv kernel chosen for each layer of a model.',
  spec,
  device: false, // --no-tune starts the device without timing matmul
  async run(flags) {
    await init();
    const i = runtime().info;
    const model = choice(flags.conv, MODEL_NAMES, 'conv') ?? null;
    const batch = positiveInteger(flags.batch, 'batch') ?? 128;
    const matmul = flags['no-tune'] ? null : await tuneMatmul();
    const conv = model ? await convChoices(model, batch) : null;
    if (flags.json) {
      console.log(JSON.stringify({ ...i, matmul, conv }, null, 2));
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
    const kernels = CONV_KERNELS.filter(convKernelAvailable).join(', ');
    const forced = envVar('NEURALIGN_CONV')?.trim();
    console.log(`conv kernels   ${kernels}; ${forced ? `forced to ${forced} by NEURALIGN_CONV` : 'chosen per pass and layer shape by timing when training starts (info --conv MODEL shows them)'}`);
    if (conv) {
      console.log(`  ${model} at batch ${batch}:`);
      for (const c of conv) {
        const timings = Object.entries(c.ms).map(([k, ms]) => `${k} ${ms!.toFixed(1)}`).join(', ');
        console.log(`  ${`${c.pass} ${c.layer}`.padEnd(52)} ${c.choice.padEnd(10)} (ms: ${timings})`);
      }
      if (!conv.length) console.log('  (no layer large enough to time, or a kernel forced: every pass uses the default)');
    }
    console.log('limits');
    for (const [name, value] of Object.entries(i.limits)) console.log(`  ${name.padEnd(34)} ${value}`);
    return 0;
  },
});

/** The conv kernel tuneConv keeps for each pass of each layer shape of `name` on 3x32x32 images. */
async function convChoices(name: ModelName, batch: number): Promise<ConvTuning[]> {
  const model = createModel(name, { inChannels: 3, numClasses: 10, width: 1, seed: 1 });
  try {
    return (await tuneKernels(model, [batch, 3, 32, 32])).convs;
  } finally {
    model.dispose();
  }
}
