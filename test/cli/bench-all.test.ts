// bench all's Markdown summary (bench/all.ts) from fixed suite reports: each suite's table carries
// the report's numbers (the best matmul variant per shape, conv GFLOP/s, images/s, solver ratios).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { summarize } from '../../bench/all.js';

const test = suite('bench all');

test('summary tables hold the reports\' numbers', () => {
  const md = summarize({
    matmul: { rows: [{ shape: { name: 'square', M: 1024, N: 1024, K: 1024 }, results: [{ variant: 'naive', gflops: 3.25 }, { variant: 'subgroup', gflops: 61.46 }] }] },
    conv: { rows: [{ net: 'vgg16', layer: '64->64 3x3 32x32', kernel: 'default', forward: { gflops: 21.5 }, inputGrad: { gflops: 19.25 }, weightGrad: { gflops: 18 } }] },
    'train-step': { rows: [{ model: 'tinyten', width: 1, batch: 128, images_per_s: 192.04, peak_pool_mib: 255.4 }] },
    assignment: { rows: [{ kind: 'uniform', n: 1024, oursMs: 12.345, scipyMs: 25, ratio: 0.4938 }] },
  });
  assert.match(md, /\| square \| 1024 x 1024 x 1024 \| subgroup \| 61\.5 \|/);
  assert.match(md, /\| vgg16 \| 64->64 3x3 32x32 \| default \| 21\.50 \| 19\.25 \| 18\.00 \|/);
  assert.match(md, /\| tinyten \| 1 \| 128 \| 192\.0 \| 255 \|/);
  assert.match(md, /\| uniform \| 1024 \| 12\.35 \| 25\.00 \| 0\.49 \|/);
  assert.not.match(summarize({ matmul: { rows: [] } }), /## conv/);
});

test.run();
