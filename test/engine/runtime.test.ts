// The shader-module cache (runtime.ts, Kernel.pipeline): keyed by the WGSL source text, so a file
// with several entry points compiles one module, and two kernels that share a name but not a
// source never share a module (each computes its own result).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Kernel, Tensor, launch, runtime } from '../../src/engine/index.js';
import { setupEngine } from '../helpers.js';

const test = suite('runtime: shader cache');
test.before(setupEngine);

/** A one-buffer kernel writing `value` to out[0], with a second, unused entry point. */
const source = (value: number) => `
@group(0) @binding(0) var<uniform> params : vec4<u32>;
@group(0) @binding(1) var<storage, read_write> out : array<f32>;
@compute @workgroup_size(1)
fn write() { out[0] = ${value.toFixed(1)} + f32(params.x); }
@compute @workgroup_size(1)
fn other() { out[0] = -1.0 + f32(params.x); }
`;

async function run(kernel: Kernel): Promise<number> {
  const out = new Tensor([1], 'f32');
  launch(kernel, { op: 'cache test', params: (w) => w.u32(0, 0, 0, 0), buffers: [out.buffer], workgroups: [1, 1, 1] });
  const [v] = await out.toArray();
  out.dispose();
  return v!;
}

test('two kernels with one name and different sources keep their own modules', async () => {
  assert.is(await run(new Kernel('same_name', source(2), 'write')), 2);
  assert.is(await run(new Kernel('same_name', source(3), 'write')), 3);
  const shaders = runtime().shaders;
  assert.ok(shaders.get(source(2))!.module !== shaders.get(source(3))!.module);
});

test('entry points of one source compile one module', async () => {
  const text = source(5);
  assert.is(await run(new Kernel('entry_a', text, 'write')), 5);
  const shader = runtime().shaders.get(text)!;
  assert.is(await run(new Kernel('entry_b', text, 'other')), -1);
  assert.is(runtime().shaders.get(text), shader); // the same module, a second pipeline
  assert.equal([...shader.pipelines.keys()].sort(), ['other:{}', 'write:{}']);
});

test.run();
