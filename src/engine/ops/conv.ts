// 2-D convolution (torch.nn.functional.conv2d with dilation 1, groups 1) and its gradients, all
// three as implicit GEMMs in conv2d_gemm.wgsl:
//
//   forward         Y  = W * X (+ bias)                 GEMM [C_out] x [N*H_out*W_out], K = C_in*kH*kW
//   input gradient  dX = conv_transpose(dY, W)          GEMM [C_in] x [N*H*W],          K = C_out*kH*kW
//   weight gradient dW[co, ci, i, j] = sum_{n,y,x} dY[n, co, y, x] X[n, ci, y*sh + i - ph, x*sw + j - pw]
//                                                       GEMM [C_out] x [C_in*kH*kW],    K = N*H_out*W_out
//   bias gradient   db = sum of dY over n, y, x
//
// The weight gradient's K is long and its output small, so it is split over K (split-K) into
// partial sums that `sum` adds. bench/README-conv.md has the measurements behind the choices.
//
// Four kernels compute the same GEMMs (CONV_KERNELS; one of them only some layer shapes). Each
// output is one float32 fma chain over k in increasing order in every kernel, and the split-K
// slices do not depend on the kernel, so all give bitwise the same results: which one runs is a
// question of speed only. That is chosen per pass and layer shape by timing (tuneConv, as
// tuneMatmul does for matmul), forced by NEURALIGN_CONV=<kernel> or the `kernel` option.
import convWgsl from '../../shaders/conv2d_gemm.wgsl';
import convSubgroupWgsl from '../../shaders/conv2d_subgroup.wgsl';
import convDirectWgsl from '../../shaders/conv2d_direct.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import { envVar } from '../env.js';
import { record } from '../autograd.js';
import { Kernel, grid1d, hasSubgroupsOf, launch, runtime, type ParamWriter } from '../runtime.js';
import { Tensor, sameShape, type Shape } from '../tensor.js';
import { pickFastest, tunedChoice, type TuneResult } from '../tune.js';
import { zeros } from './creation.js';
import { sum } from './reduce.js';
import { shapeString } from './util.js';

const registersKernel = new Kernel('conv2d_gemm', [gridWgsl, convWgsl], 'gemm_registers');
const packKernel = new Kernel('conv2d_gemm', [gridWgsl, convWgsl], 'pack_a');
const tiledKernel = new Kernel('conv2d_gemm', [gridWgsl, convWgsl], 'gemm_tiled');
const subgroupKernel = new Kernel('conv2d_subgroup', [gridWgsl, convWgsl, convSubgroupWgsl], 'gemm_subgroup');
const directKernel = new Kernel('conv2d_direct', [gridWgsl, convWgsl, convDirectWgsl], 'conv3x3_direct');
const directWeightKernel = new Kernel('conv2d_direct', [gridWgsl, convWgsl, convDirectWgsl], 'conv3x3_direct_weight');
/**
 * conv3x3_direct: rows (channels) per workgroup of 8 lanes, consecutive pixels per lane; its weight
 * pass: kernel rows (c, i) per lane, 3 columns (taps j) each.
 */
const DIRECT_BLOCK = { rows: 16, lanes: 8, pixels: 8, weightPairs: 3 };

/** gemm_tiled computes 64 x 64 blocks of C, 16 steps of k at a time. */
const TILE = 64;
const TILE_K = 16;

/** gemm_registers: invocations per workgroup, vec4s of rows and columns of C per invocation. */
interface RegisterBlock {
  wg: number;
  tm4: number;
  tn: number;
}

/**
 * Up to 32 rows (8 vec4s) and 16 x 8 columns of C per workgroup. Fewer rows when M is small, and
 * the column count (TN of 2, 4 or 8 per invocation) that minimizes the loads per k step over all
 * column blocks, (blocks) x (TN + TM4), since idle invocations past N still pay for their loads
 * (the weight gradient's N = C_in*kH*kW is often just above a multiple of 128). Sizes come from
 * a short list so that few pipelines get compiled: llvmpipe takes ~0.3-0.5 s for each.
 */
function registerBlock(M: number, N: number): RegisterBlock {
  const forced = envVar('NEURALIGN_CONV_BLOCK')?.split(',').map(Number); // "TM4,TN,WG" (tuning)
  if (forced) return { tm4: Math.min(forced[0]!, Math.ceil(M / 4)), tn: forced[1]!, wg: forced[2]! };
  const wg = 16;
  const tm4 = Math.min(8, 2 ** Math.ceil(Math.log2(Math.ceil(M / 4))));
  const cost = (tn: number) => Math.ceil(N / (wg * tn)) * (tn + tm4);
  const tn = [8, 4, 2].reduce((best, tn) => (cost(tn) < cost(best) ? tn : best));
  return { tm4, tn, wg };
}

/**
 * gemm_subgroup: rows per workgroup of 8 lanes (SG_R) and columns per lane (SG_TN). 16 x 8: 32
 * rows with 8 columns, which holds as many accumulators as gemm_registers' largest block, ran
 * 3-5x slower on llvmpipe (bench/README-conv.md).
 */
const SUBGROUP_BLOCK = { lanes: 8, rows: 16, cols: 8 };

/** One size for both spatial axes, or [height, width]. */
export type Pair = number | readonly [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
}

/**
 * The kernels (conv2d_gemm.wgsl, conv2d_subgroup.wgsl, conv2d_direct.wgsl):
 *   registers  A packed as vec4s, 32 x 8 outputs per invocation, no workgroup memory: CPU adapters
 *              (llvmpipe, where barriers are dear)
 *   subgroup   A shared across 8 lanes by subgroup shuffles, 16 x 8 outputs per lane, no packing:
 *              CPU adapters with subgroups (lavapipe); needs subgroups of at least 8 invocations
 *   tiled      64 x 64 tiles in workgroup memory: GPUs
 *   direct     3x3, stride 1, padding 1, width a multiple of 8: image rows read as aligned vec4s
 *              (8 pixels per lane, or for the weight gradient 8 pixels of k per step), A shared
 *              as in subgroup
 */
export const CONV_KERNELS = ['registers', 'subgroup', 'tiled', 'direct'] as const;
export type ConvKernel = (typeof CONV_KERNELS)[number];

/** Whether `kernel` can run on the current device. */
export function convKernelAvailable(kernel: ConvKernel): boolean {
  if (kernel === 'subgroup') return hasSubgroupsOf(SUBGROUP_BLOCK.lanes);
  if (kernel === 'direct') return hasSubgroupsOf(DIRECT_BLOCK.lanes);
  return true;
}

/** Whether `kernel` computes `pass` of a layer of this shape (direct covers only some). */
export function convKernelSupports(kernel: ConvKernel, pass: Pass, g: Conv2dGeometry): boolean {
  if (kernel !== 'direct') return true;
  const threeByThree = g.kh === 3 && g.kw === 3 && g.sh === 1 && g.sw === 1 && g.ph === 1 && g.pw === 1;
  return threeByThree && g.width % DIRECT_BLOCK.pixels === 0;
}

export interface ConvKernelOptions extends Conv2dOptions {
  kernel?: ConvKernel;
  /** Weight gradient only: the number of K slices (default: enough to fill the device). */
  splitK?: number;
}

/** Sizes of one convolution. */
export interface Conv2dGeometry {
  batch: number;
  cIn: number;
  height: number;
  width: number;
  cOut: number;
  kh: number;
  kw: number;
  hOut: number;
  wOut: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
}

function pair(v: Pair | undefined, fallback: number, what: string): [number, number] {
  const p: [number, number] = v === undefined ? [fallback, fallback] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`conv2d: invalid ${what} ${JSON.stringify(v)}`);
  return p;
}

/** Checks the shapes of input [N, C_in, H, W] and weight [C_out, C_in, kH, kW]; returns the sizes. */
export function conv2dGeometry(xShape: Shape, wShape: Shape, opts: Conv2dOptions = {}): Conv2dGeometry {
  if (xShape.length !== 4 || wShape.length !== 4 || xShape[1] !== wShape[1]) {
    throw new Error(`conv2d: expects input [N, C_in, H, W] and weight [C_out, C_in, kH, kW], got ${shapeString(xShape)} and ${shapeString(wShape)}`);
  }
  const [batch, cIn, height, width] = xShape as [number, number, number, number];
  const [cOut, , kh, kw] = wShape as [number, number, number, number];
  const [sh, sw] = pair(opts.stride, 1, 'stride');
  const [ph, pw] = pair(opts.padding, 0, 'padding');
  if (sh < 1 || sw < 1) throw new Error(`conv2d: stride must be >= 1, got ${JSON.stringify(opts.stride)}`);
  const hOut = Math.floor((height + 2 * ph - kh) / sh) + 1;
  const wOut = Math.floor((width + 2 * pw - kw) / sw) + 1;
  if (hOut < 1 || wOut < 1) {
    throw new Error(`conv2d: kernel ${kh}x${kw} is larger than the padded input ${height + 2 * ph}x${width + 2 * pw}`);
  }
  return { batch, cIn, height, width, cOut, kh, kw, hOut, wOut, sh, sw, ph, pw };
}

/** 2 * multiply-adds of one pass (all three passes do the same useful work). */
export function conv2dFlops(g: Conv2dGeometry): number {
  return 2 * g.batch * g.cOut * g.hOut * g.wOut * g.cIn * g.kh * g.kw;
}

const PASS = { forward: 0, input: 1, weight: 2 } as const;
/** The three passes: forward, input gradient, weight gradient. */
export type ConvPass = keyof typeof PASS;
type Pass = ConvPass;

function checkKernel(name: string, from: string): ConvKernel {
  if (!(CONV_KERNELS as readonly string[]).includes(name)) {
    throw new Error(`${from}: unknown conv kernel '${name}' (one of ${CONV_KERNELS.join(', ')})`);
  }
  if (!convKernelAvailable(name as ConvKernel)) {
    throw new Error(`${from}: conv kernel '${name}' needs subgroups of at least ${SUBGROUP_BLOCK.lanes} invocations, which this adapter lacks`);
  }
  return name as ConvKernel;
}

const defaultKernel = () => (runtime().info.isCPU ? 'registers' : 'tiled');

/** A layer shape as people read it: `128x16x32x32 -> 16 k3x3 s1x1 p1x1`. */
function layerName(g: Conv2dGeometry): string {
  return `${g.batch}x${g.cIn}x${g.height}x${g.width} -> ${g.cOut} k${g.kh}x${g.kw} s${g.sh}x${g.sw} p${g.ph}x${g.pw}`;
}

/** The key under which tuneConv records its choice for one pass of one layer shape. */
function tuneKey(pass: Pass, g: Conv2dGeometry): string {
  return `conv2d ${pass} ${layerName(g)}`;
}

/**
 * The kernel a pass runs: the `kernel` option (which must support the pass), else
 * NEURALIGN_CONV=<kernel> where it supports the pass, else the one tuneConv measured fastest for
 * this pass and layer shape, else registers on CPU adapters (cheap to compile) and tiled on GPUs.
 */
export function convKernel(pass: Pass, g: Conv2dGeometry, option?: ConvKernel): ConvKernel {
  if (option) {
    const kernel = checkKernel(option, 'conv2d');
    if (!convKernelSupports(kernel, pass, g)) throw new Error(`conv2d: the ${kernel} kernel does not compute the ${pass} pass of ${layerName(g)}`);
    return kernel;
  }
  const env = envVar('NEURALIGN_CONV')?.trim();
  if (env) {
    const kernel = checkKernel(env, 'NEURALIGN_CONV');
    return convKernelSupports(kernel, pass, g) ? kernel : defaultKernel();
  }
  return tunedChoice<ConvKernel>(tuneKey(pass, g))?.choice ?? defaultKernel();
}

/**
 * K slices for the weight gradient: enough workgroups to occupy the device (a few per core on a
 * CPU, a few per SM on a GPU), each slice at least 512 long so the partial sums stay few. The
 * workgroups are counted in blocks of the device's default kernel whichever kernel runs, so the
 * slices, and with them the rounding of the sums, are the same for every kernel.
 */
function chooseSplitK(M: number, N: number, K: number): number {
  const cpu = runtime().info.isCPU;
  const [bm, bn] = blockOf(cpu ? 'registers' : 'tiled', 'weight', M, N);
  const groups = Math.ceil(M / bm) * Math.ceil(N / bn);
  const wanted = cpu ? 8 : 512;
  return Math.max(1, Math.min(Math.ceil(wanted / groups), Math.floor(K / 512)));
}

/** One launch: the GEMM sizes, and for the input gradient the phase it covers. */
interface Gemm {
  pass: Pass;
  M: number;
  N: number;
  K: number;
  /** Input gradient: ry, rx, taps_y, taps_x, iy0, ix0, cols_y, cols_x, qy0, qx0 (see the WGSL). */
  phase?: number[];
}

function forwardGemm(g: Conv2dGeometry): Gemm {
  return { pass: 'forward', M: g.cOut, N: g.batch * g.hOut * g.wOut, K: g.cIn * g.kh * g.kw };
}

function weightGemm(g: Conv2dGeometry): Gemm {
  return { pass: 'weight', M: g.cOut, N: g.cIn * g.kh * g.kw, K: g.batch * g.hOut * g.wOut };
}

/**
 * The input gradient as sh * sw GEMMs, one per phase (ry, rx) of the stride. Input row iy receives
 * dY row oy through tap i when iy + ph - i = oy * sh, so only taps i = ry (mod sh), with
 * ry = (iy + ph) mod sh, reach it: grouping the rows by ry gives dense GEMMs with no zero terms
 * and no division in the kernel. A phase with no taps (ry >= kH) gets zeros.
 */
function inputGemms(g: Conv2dGeometry): Gemm[] {
  const axis = (r: number, s: number, p: number, k: number, size: number) => {
    const first = (((r - p) % s) + s) % s; // first input row of this phase
    return {
      taps: r < k ? Math.ceil((k - r) / s) : 0,
      first,
      count: first < size ? Math.ceil((size - first) / s) : 0,
      q0: (first + p - r) / s, // its output row for tap r
    };
  };
  const gemms: Gemm[] = [];
  for (let ry = 0; ry < g.sh; ry++) {
    for (let rx = 0; rx < g.sw; rx++) {
      const y = axis(ry, g.sh, g.ph, g.kh, g.height);
      const x = axis(rx, g.sw, g.pw, g.kw, g.width);
      const N = g.batch * y.count * x.count;
      if (N === 0) continue;
      gemms.push({
        pass: 'input', M: g.cIn, N, K: g.cOut * y.taps * x.taps,
        phase: [ry, rx, y.taps, x.taps, y.first, x.first, y.count, x.count, y.q0, x.q0],
      });
    }
  }
  return gemms;
}

/** Side lengths of the block of C one workgroup computes. */
function blockOf(kernel: ConvKernel, pass: Pass, M: number, N: number): [number, number] {
  if (kernel === 'tiled') return [TILE, TILE];
  if (kernel === 'subgroup') return [SUBGROUP_BLOCK.rows, SUBGROUP_BLOCK.lanes * SUBGROUP_BLOCK.cols];
  if (kernel === 'direct') {
    return [DIRECT_BLOCK.rows, DIRECT_BLOCK.lanes * (pass === 'weight' ? 3 * DIRECT_BLOCK.weightPairs : DIRECT_BLOCK.pixels)];
  }
  const b = registerBlock(M, N);
  return [4 * b.tm4, b.wg * b.tn];
}

/**
 * Records one launch of the implicit GEMM. Workgroup z sums k in [z * kChunk, (z + 1) * kChunk)
 * into slice z of `out` (split-K; one slice unless kChunk < K).
 */
function launchGemm(gemm: Gemm, g: Conv2dGeometry, img: Tensor, mat: Tensor, bias: Tensor | null, out: Tensor, kernel: ConvKernel, kChunk?: number): void {
  const { M, N, K } = gemm;
  const [bm, bn] = blockOf(kernel, gemm.pass, M, N);
  const rowGroups = Math.ceil(M / bm);
  const colGroups = Math.ceil(N / bn);
  const chunk = kChunk ?? Math.max(K, 1);
  const splits = Math.max(1, Math.ceil(K / chunk));
  const [gx, gy] = grid1d(rowGroups * colGroups, 1);
  const params = (w: ParamWriter) =>
    w.i32(
      g.batch, g.cIn, g.height, g.width,
      g.cOut, g.kh, g.kw, g.hOut,
      g.wOut, g.sh, g.sw, g.ph,
      g.pw, M, N, K,
      chunk, rowGroups, colGroups, bias ? 1 : 0,
      ...(gemm.phase ?? []),
    );
  const op = `conv2d ${gemm.pass}`;
  // For the profiler: the two operands and the output (a weight gradient's split-K partial sums).
  const shapes = [img.shape, mat.shape, out.shape];
  const constants = { PASS: PASS[gemm.pass] };
  // Binding 3 (bias) is read only when has_bias; otherwise any buffer fills it.
  if (kernel === 'tiled') {
    launch(tiledKernel, { op, constants, params, buffers: [img.buffer, mat.buffer, (bias ?? mat).buffer, out.buffer], workgroups: [gx, gy, splits], shapes });
    return;
  }
  if (kernel === 'subgroup' || kernel === 'direct') {
    const [k, block] = kernel === 'subgroup'
      ? [subgroupKernel, { SG_R: SUBGROUP_BLOCK.rows, SG_TN: SUBGROUP_BLOCK.cols }]
      : [gemm.pass === 'weight' ? directWeightKernel : directKernel, {}];
    launch(k, { op, constants: { ...constants, ...block }, params, buffers: [img.buffer, mat.buffer, (bias ?? mat).buffer, out.buffer], workgroups: [gx, gy, splits], shapes });
    return;
  }
  const reg = registerBlock(M, N);
  const packed = new Tensor([Math.max(K, 1), Math.ceil(M / 4) * 4], 'f32');
  launch(packKernel, { op: `${op} (pack)`, constants, params, buffers: [null, mat.buffer, null, packed.buffer], workgroups: grid1d(K, 64), shapes: [mat.shape] });
  launch(registersKernel, {
    op,
    constants: { ...constants, WG_N: reg.wg, TM4: reg.tm4, TN: reg.tn },
    params,
    buffers: [img.buffer, packed.buffer, (bias ?? img).buffer, out.buffer],
    workgroups: [gx, gy, splits],
    shapes,
  });
  packed.dispose(); // reusable once the stream has submitted these launches
}

/** The forward convolution without recording a gradient. */
export function conv2dForward(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: ConvKernelOptions = {}): Tensor {
  const g = conv2dGeometry(x.shape, weight.shape, opts);
  requireF32(x, weight, bias);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== g.cOut)) {
    throw new Error(`conv2d: bias must have shape [${g.cOut}], got ${shapeString(bias.shape)}`);
  }
  seen?.set(tuneKey('forward', g), g);
  const out = new Tensor([g.batch, g.cOut, g.hOut, g.wOut], 'f32');
  if (out.size > 0) launchGemm(forwardGemm(g), g, x, weight, bias, out, convKernel('forward', g, opts.kernel));
  return out;
}

/** dL/dX of conv2d given dL/dY: the transposed convolution of gradOutput with the weights. */
export function conv2dBackwardInput(gradOutput: Tensor, weight: Tensor, inputShape: Shape, opts: ConvKernelOptions = {}): Tensor {
  const g = conv2dGeometry(inputShape, weight.shape, opts);
  requireF32(weight);
  checkGradOutput(gradOutput, g);
  const dx = new Tensor(inputShape, 'f32');
  const kernel = convKernel('input', g, opts.kernel);
  if (dx.size > 0) for (const gemm of inputGemms(g)) launchGemm(gemm, g, gradOutput, weight, null, dx, kernel);
  return dx;
}

/** dL/dW of conv2d given the input and dL/dY: a cross-correlation of the two over n, y, x. */
export function conv2dBackwardWeight(x: Tensor, gradOutput: Tensor, weightShape: Shape, opts: ConvKernelOptions = {}): Tensor {
  const g = conv2dGeometry(x.shape, weightShape, opts);
  requireF32(x);
  checkGradOutput(gradOutput, g);
  const kernel = convKernel('weight', g, opts.kernel);
  const gemm = weightGemm(g);
  const { M, N, K } = gemm;
  const wanted = opts.splitK ?? chooseSplitK(M, N, K);
  // Slices of whole tiled-kernel k steps, none empty.
  const chunk = Math.max(TILE_K, Math.ceil(K / Math.max(1, wanted) / TILE_K) * TILE_K);
  const splits = Math.max(1, Math.ceil(K / chunk));
  const partial = new Tensor([splits, M, N], 'f32');
  if (partial.size > 0) launchGemm(gemm, g, x, gradOutput, null, partial, kernel, chunk);
  const summed = splits === 1 ? partial : sum(partial, 0);
  const dw = summed.reshape(weightShape);
  // dw holds the buffer; the views made on the way are done with.
  partial.dispose();
  summed.dispose();
  return dw;
}

function requireF32(...tensors: (Tensor | null)[]): void {
  for (const t of tensors) if (t && t.dtype !== 'f32') throw new Error(`conv2d: expects f32 tensors, got ${t.dtype}`);
}

function checkGradOutput(gy: Tensor, g: Conv2dGeometry): void {
  requireF32(gy);
  const want = [g.batch, g.cOut, g.hOut, g.wOut];
  if (!sameShape(gy.shape, want)) {
    throw new Error(`conv2d backward: gradient of shape ${shapeString(gy.shape)}, expected ${shapeString(want)}`);
  }
}

/**
 * conv2d(x, weight, bias?, {stride, padding}) as torch.nn.functional.conv2d: x [N, C_in, H, W],
 * weight [C_out, C_in, kH, kW], bias [C_out]; out [N, C_out, H_out, W_out] with
 * H_out = floor((H + 2 ph - kH) / sh) + 1. Records its gradients for backward().
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const out = conv2dForward(x, weight, bias ?? null, opts);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(out, 'conv2d', inputs, (gy) => [
    x.requiresGrad ? conv2dBackwardInput(gy, weight, x.shape, opts) : null,
    weight.requiresGrad ? conv2dBackwardWeight(x, gy, weight.shape, opts) : null,
    bias?.requiresGrad ? sum(gy, [0, 2, 3]) : null,
  ]);
}

// ---------------------------------------------------------------------------------------------
// Choosing the kernel per pass and layer shape by timing.

/** Layer shapes met by conv2dForward while collectConvShapes runs; null otherwise. */
let seen: Map<string, Conv2dGeometry> | null = null;

/** The layer shapes of every conv2d that `fn` runs forward (e.g. one forward pass of a model). */
export function collectConvShapes(fn: () => void): Conv2dGeometry[] {
  const outer = seen;
  seen = new Map();
  try {
    fn();
    return [...seen.values()];
  } finally {
    seen = outer;
  }
}

/** One choice of tuneConv: a pass of a layer shape, its timings and the kernel kept. */
export interface ConvTuning extends TuneResult<ConvKernel> {
  pass: Pass;
  geometry: Conv2dGeometry;
  key: string;
  /** The layer shape alone, as in the key (`128x16x32x32 -> 16 k3x3 s1x1 p1x1`). */
  layer: string;
}

/**
 * Below this many FLOPs a pass is not timed (it keeps the default kernel): compiling a candidate
 * pipeline takes llvmpipe 0.3-1 s, more than a small layer's whole run.
 */
export const CONV_TUNE_MIN_FLOPS = 5e7;
/**
 * Larger layers are timed on fewer images, about this many FLOPs a pass (tens of milliseconds on
 * llvmpipe): the kernels' order does not change with the batch once a pass fills the device, and
 * a model's tuning then takes seconds rather than a minute.
 */
const CONV_TUNE_FLOPS = 3e8;

/**
 * Times every available kernel on each pass (forward, input gradient, weight gradient) of each
 * layer shape and makes the fastest the choice for that pass and shape on this runtime; shapes
 * already tuned keep their choice. Inputs are zeros (timing does not depend on values), with the
 * batch cut to about CONV_TUNE_FLOPS a pass. `passes` limits the timing to some passes (an
 * evaluation needs only the forward one). With a
 * kernel forced by NEURALIGN_CONV, nothing is timed. Returns the choices, including earlier ones.
 */
export async function tuneConv(shapes: readonly Conv2dGeometry[], opts: { minFlops?: number; passes?: readonly ConvPass[] } = {}): Promise<ConvTuning[]> {
  if (envVar('NEURALIGN_CONV')?.trim()) return [];
  // On CPU adapters the tiled kernel is 5-40x slower than the others (barriers; bench/README-conv.md)
  // and a second of each of its runs would dominate the tuning: it is left out there.
  const order: ConvKernel[] = runtime().info.isCPU ? ['direct', 'subgroup', 'registers'] : ['tiled', 'direct', 'registers', 'subgroup'];
  const available = order.filter(convKernelAvailable);
  const minFlops = opts.minFlops ?? CONV_TUNE_MIN_FLOPS;
  const out: ConvTuning[] = [];
  for (const g of shapes) {
    if (conv2dFlops(g) < minFlops) continue;
    const o = { stride: [g.sh, g.sw] as const, padding: [g.ph, g.pw] as const };
    const batch = Math.max(1, Math.round(g.batch * Math.min(1, CONV_TUNE_FLOPS / conv2dFlops(g))));
    const x = zeros([batch, g.cIn, g.height, g.width]);
    const w = zeros([g.cOut, g.cIn, g.kh, g.kw]);
    const gy = zeros([batch, g.cOut, g.hOut, g.wOut]);
    const runs: Record<Pass, (kernel: ConvKernel) => Tensor> = {
      forward: (kernel) => conv2dForward(x, w, null, { ...o, kernel }),
      input: (kernel) => conv2dBackwardInput(gy, w, x.shape, { ...o, kernel }),
      weight: (kernel) => conv2dBackwardWeight(x, gy, w.shape, { ...o, kernel }),
    };
    try {
      for (const pass of opts.passes ?? (Object.keys(PASS) as Pass[])) {
        const key = tuneKey(pass, g);
        const candidates = available.filter((kernel) => convKernelSupports(kernel, pass, g));
        const result = await pickFastest(key, candidates, (kernel) => runs[pass](kernel).dispose());
        out.push({ ...result, pass, geometry: g, key, layer: layerName(g) });
      }
    } finally {
      for (const t of [x, w, gy]) t.dispose();
    }
  }
  return out;
}
