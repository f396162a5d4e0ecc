// tuneKernels: the layer shapes come from one forward pass (the model's mode and running
// statistics untouched), a run too short to repay the timing keeps the defaults, and the log line
// says which happened.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { TUNE_MIN_IMAGES, createModel, describeTuning, tuneKernels } from '../../src/nn/index.js';
import { setupEngine } from '../helpers.js';

const test = suite('tune-kernels');
test.before(setupEngine);

test('a short run keeps the default conv kernels; a long one times every pass of every large layer', async () => {
  const model = createModel('tinyten', { inChannels: 1, numClasses: 10, width: 0.5, seed: 1 });
  const runningMean = () => model.stateDict().get('layers.0.bn.running_mean')!.toArray();
  const before = await runningMean();
  try {
    const short = await tuneKernels(model, [64, 1, 32, 32], { images: TUNE_MIN_IMAGES - 1 });
    assert.is(short.short, true);
    assert.equal(short.convs, []);
    assert.match(describeTuning(short), /^conv kernels: defaults \(a run of under 50,000 training images/);

    const long = await tuneKernels(model, [64, 1, 32, 32], { images: TUNE_MIN_IMAGES, passes: ['forward'] });
    assert.is(long.short, undefined);
    assert.ok(long.convs.length >= 2, `${long.convs.length} layers timed`);
    assert.ok(long.convs.every((c) => c.pass === 'forward' && c.geometry.batch === 64), 'forward passes of the batch asked for');
    assert.match(describeTuning(long), new RegExp(`^conv kernels by timing \\(\\d+\\.\\d s\\): ${long.convs.length} passes of ${long.convs.length} layer shapes: `));
    assert.is(model.training, true, 'the mode is restored');
    assert.equal(await runningMean(), before, 'running statistics untouched');
  } finally {
    model.dispose();
  }
});

test.run();
