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
import convWgsl from '../../shaders/conv2d_gemm.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import { envVar } from '../env.js';
import { record } from '../autograd.js';
import { Kernel, grid1d, launch, runtime, type ParamWriter } from '../runtime.js';
import { Tensor, sameShape, type Shape } from '../tensor.js';
import { sum } from './reduce.js';
import { shapeString } from './util.js';

const registersKernel = new Kernel('conv2d_gemm', [gridWgsl, convWgsl], 'gemm_registers');
const packKernel = new Kernel('conv2d_gemm', [gridWgsl, convWgsl], 'pack_a');
const tiledKernel = new Kernel('conv2d_gemm', [gridWgsl, convWgsl], 'gemm_tiled');

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

/** One size for both spatial axes, or [height, width]. */
export type Pair = number | readonly [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
}

/**
 * Which kernel runs: 'registers' (no workgroup memory; fastest on llvmpipe, where barriers are
 * dear) or 'tiled' (workgroup-memory tiles, for GPUs). Default: by runtime().info.isCPU.
 */
export type ConvKernel = 'registers' | 'tiled';

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
type Pass = keyof typeof PASS;

function defaultKernel(): ConvKernel {
  return runtime().info.isCPU ? 'registers' : 'tiled';
}

/**
 * K slices for the weight gradient: enough workgroups to occupy the device (a few per core on a
 * CPU, a few per SM on a GPU), each slice at least 512 long so the partial sums stay few.
 */
function chooseSplitK(groups: number, K: number): number {
  const wanted = runtime().info.isCPU ? 8 : 512;
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
function blockOf(kernel: ConvKernel, M: number, N: number): [number, number] {
  if (kernel === 'tiled') return [TILE, TILE];
  const b = registerBlock(M, N);
  return [4 * b.tm4, b.wg * b.tn];
}

/**
 * Records one launch of the implicit GEMM. Workgroup z sums k in [z * kChunk, (z + 1) * kChunk)
 * into slice z of `out` (split-K; one slice unless kChunk < K).
 */
function launchGemm(gemm: Gemm, g: Conv2dGeometry, img: Tensor, mat: Tensor, bias: Tensor | null, out: Tensor, kernel: ConvKernel, kChunk?: number): void {
  const { M, N, K } = gemm;
  const [bm, bn] = blockOf(kernel, M, N);
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
  const out = new Tensor([g.batch, g.cOut, g.hOut, g.wOut], 'f32');
  if (out.size > 0) launchGemm(forwardGemm(g), g, x, weight, bias, out, opts.kernel ?? defaultKernel());
  return out;
}

/** dL/dX of conv2d given dL/dY: the transposed convolution of gradOutput with the weights. */
export function conv2dBackwardInput(gradOutput: Tensor, weight: Tensor, inputShape: Shape, opts: ConvKernelOptions = {}): Tensor {
  const g = conv2dGeometry(inputShape, weight.shape, opts);
  requireF32(weight);
  checkGradOutput(gradOutput, g);
  const dx = new Tensor(inputShape, 'f32');
  if (dx.size > 0) for (const gemm of inputGemms(g)) launchGemm(gemm, g, gradOutput, weight, null, dx, opts.kernel ?? defaultKernel());
  return dx;
}

/** dL/dW of conv2d given the input and dL/dY: a cross-correlation of the two over n, y, x. */
export function conv2dBackwardWeight(x: Tensor, gradOutput: Tensor, weightShape: Shape, opts: ConvKernelOptions = {}): Tensor {
  const g = conv2dGeometry(x.shape, weightShape, opts);
  requireF32(x);
  checkGradOutput(gradOutput, g);
  const kernel = opts.kernel ?? defaultKernel();
  const gemm = weightGemm(g);
  const { M, N, K } = gemm;
  const [bm, bn] = blockOf(kernel, M, N);
  const wanted = opts.splitK ?? chooseSplitK(Math.ceil(M / bm) * Math.ceil(N / bn), K);
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
