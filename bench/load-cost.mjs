// What one buffer load inside a loop costs on this adapter, by kind of address: the question
// every CPU kernel here turns on (bench/README.md, "What costs on llvmpipe").
//
//   node bench/load-cost.mjs [--json FILE] [--reps N]
//
// One kernel per case: 64 x 256 invocations, each running K = 2048 iterations of four
// independent fma's on a value v; the cases differ only in where v comes from: a constant (no
// load), a storage-buffer load at a compile-time constant index, at the loop counter (the same
// address in every invocation, "uniform"), at the counter plus the workgroup id (uniform, not a
// constant), at an index that differs per invocation ("divergent"), and the same from a uniform
// buffer. A load's cost is its case's time minus the no-load case's, per million loads. Process
// CPU time beside the wall clock: on a shared 2-core machine the wall clock flips between a
// one-core and a two-core level from run to run.
//
// Reading: llvmpipe (Mesa 25.0) turns a load into one scalar load plus a broadcast only when its
// address is a constant or built from push constants (nir_src_is_always_uniform); any address
// computed in a loop, uniform or not, is loaded lane by lane (a loop over the SIMD lanes with a
// mask test and a bounds check each). Later Mesa versions decide by divergence analysis instead,
// which would make the "uniform" rows as cheap as the "constant" one. The script uses Dawn
// directly (no engine code), so it runs on any checkout.
import { writeFileSync } from 'node:fs';
import { create, globals } from 'webgpu';

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: node bench/load-cost.mjs [--json FILE] [--reps N]\n\nThe cost of one buffer load inside a loop, by kind of address (see the file comment).');
  process.exit(0);
}
const reps = Number(flag('--reps') ?? 5);
const json = flag('--json');
if (!Number.isInteger(reps) || reps < 1) {
  console.error(`load-cost: --reps needs a positive integer, got ${flag('--reps')}`);
  process.exit(64);
}
if (args.includes('--json') && !json) {
  console.error('load-cost: --json needs a file name');
  process.exit(64);
}
// The output file is checked before anything is measured (it is created, then filled at the end).
if (json) {
  try {
    writeFileSync(json, '');
  } catch (e) {
    console.error(`load-cost: cannot write --json ${json}: ${e.code ?? e.message}`);
    process.exit(1);
  }
}

Object.assign(globalThis, globals);
const gpu = create([]); // held for the whole run: the adapter and device live only as long as it
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.error('load-cost: no WebGPU adapter (bash scripts/setup.sh installs Mesa\'s)');
  process.exit(1);
}
const device = await adapter.requestDevice();
const K = 2048;
const WG = 64;
const GROUPS = 256;

const kernel = (decl, load) => `
${decl}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(local_invocation_index) l: u32,
        @builtin(workgroup_id) w: vec3<u32>) {
  var s0 = 0.0; var s1 = 0.0; var s2 = 0.0; var s3 = 0.0;
  let x = f32(g.x);
  for (var k = 0u; k < ${K}u; k++) {
    let v = ${load};
    s0 = fma(v, x, s0); s1 = fma(v, x + 1.0, s1); s2 = fma(v, x + 2.0, s2); s3 = fma(v, x + 3.0, s3);
  }
  out[g.x] = s0 + s1 + s2 + s3;
}`;
const SSBO = '@group(0) @binding(0) var<storage, read> a: array<f32>;';
const UBO = '@group(0) @binding(0) var<uniform> a: array<vec4<f32>, 4096>;';
// [name, declaration, the value v, buffer kind]; "none" reads a[3] once outside the loop so that
// every case binds the same buffers.
const CASES = [
  ['none', SSBO, 'f32(k) + a[3]', 'storage'],
  ['storage, constant index', SSBO, 'a[7]', 'storage'],
  ['storage, uniform (loop counter)', SSBO, 'a[k]', 'storage'],
  ['storage, uniform (counter + workgroup)', SSBO, 'a[k + w.x * 8u]', 'storage'],
  ['storage, divergent (per invocation)', SSBO, 'a[k + l * 8u]', 'storage'],
  ['uniform buffer, uniform (loop counter)', UBO, 'a[k].y', 'uniform'],
  ['uniform buffer, divergent', UBO, 'a[(k + l * 8u) & 4095u].y', 'uniform'],
];
const buffers = {
  storage: device.createBuffer({ size: 4 * (K + WG * 8 + GROUPS * 8 + 64), usage: GPUBufferUsage.STORAGE }),
  uniform: device.createBuffer({ size: 65536, usage: GPUBufferUsage.UNIFORM }),
};
const out = device.createBuffer({ size: 4 * WG * GROUPS, usage: GPUBufferUsage.STORAGE });

const runs = CASES.map(([name, decl, load, kind]) => {
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: kernel(decl, load) }), entryPoint: 'main' } });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: buffers[kind] } }, { binding: 1, resource: { buffer: out } }],
  });
  const once = async () => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(GROUPS);
    pass.end();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  return { name, once, wall: Infinity, cpu: Infinity };
});

console.log(`load cost on ${adapter.info.description || adapter.info.device || 'this adapter'}: ${WG * GROUPS} invocations x ${K} loads, best of ${reps}`);
for (const r of runs) await r.once(); // compiles
// Interleaved, so that a slow moment of the machine touches every case alike.
for (let rep = 0; rep < reps; rep++) {
  for (const r of runs) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await r.once();
    r.wall = Math.min(r.wall, performance.now() - t0);
    const cpu = process.cpuUsage(cpu0);
    r.cpu = Math.min(r.cpu, (cpu.user + cpu.system) / 1e3);
  }
}
const loads = (WG * GROUPS * K) / 1e6; // millions of per-invocation loads per run
const base = runs[0];
const rows = runs.map((r) => ({
  case: r.name,
  wall_ms: r.wall,
  cpu_ms: r.cpu,
  // ns of CPU time per load of one invocation (the loop's fma's and counter subtracted)
  cpu_ns_per_load: r === base ? 0 : ((r.cpu - base.cpu) * 1e6) / (loads * 1e6),
}));
console.log(`${'case'.padEnd(40)} ${'wall ms'.padStart(8)} ${'cpu ms'.padStart(8)} ${'cpu ns/load'.padStart(12)}`);
for (const r of rows) {
  console.log(`${r.case.padEnd(40)} ${r.wall_ms.toFixed(1).padStart(8)} ${r.cpu_ms.toFixed(1).padStart(8)} ${r === rows[0] ? '-'.padStart(12) : r.cpu_ns_per_load.toFixed(2).padStart(12)}`);
}
if (json) writeFileSync(json, JSON.stringify({ suite: 'load-cost', adapter: { ...adapter.info }, invocations: WG * GROUPS, loads_per_invocation: K, reps, rows }, null, 2));
device.destroy();
process.exit(0);
