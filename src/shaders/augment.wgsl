// Image batch transform: uint8 pixels -> normalized f32, with optional training augmentation, in
// one pass (torchvision's RandomAffine(degrees) -> RandomHorizontalFlip -> RandomCrop(out, padding)
// -> ToTensor -> Normalize(mean, std), preceded by zero-padding the source to the output size).
//
// Each output pixel is inverse-mapped through the transforms in reverse order:
//   crop:     output (y, x) reads the flipped canvas at (y + ci - pad, x + cj - pad), zero outside
//   flip:     the rotated canvas at (y, W - 1 - x) when this image is flipped
//   rotation: the canvas at c + R (p - c), c = ((W - 1) / 2, (H - 1) / 2) the image centre,
//             R = [cos a, sin a; -sin a, cos a] (PIL's inverse affine matrix for angle a),
//             sampled nearest (floor(u + 0.5), torchvision's default) or bilinear (BILINEAR),
//             zero fill outside
//   canvas:   the source image placed at (pad_top, pad_left) in an out_h x out_w frame of zeros
//             (Fashion-MNIST's 28 x 28 -> 32 x 32)
// then value = (v / 255 - mean[c]) / std[c]. Zero fill happens on raw pixels, as torchvision fills
// before ToTensor, so a filled pixel becomes -mean / std.
//
// Random numbers: image b of the batch draws counters offset + 4b + k from the counter-based
// generator of random.wgsl (same pcg hash, same seed mixing): k = 0 angle, 1 flip, 2 and 3 crop
// row and column offsets. Integer arithmetic picks the flip and the crop offsets, so they are
// bit-identical on every backend; the angle is uniform in [-degrees, degrees]. Every image takes
// its 4 counters whether or not a transform is on, so switching one transform off leaves the
// others' draws unchanged.
//
// Layout: src holds the batch's uint8 pixels [B, C, src_h, src_w] row-major, packed 4 per u32
// word (byte k is bits 8(k % 4) .. of word k / 4, little-endian); out is f32 [B, C, out_h, out_w].
// Each output element is computed on its own: 256 invocations per workgroup in a grid-stride loop
// over the elements (lib/grid.wgsl: an invocation takes i, i + S, i + 2S, ... for S the grid's
// invocations), so the host bounds the grid (gridStride, src/engine/runtime.ts). Every element
// recomputes its image's 4 hashes and cos/sin: a few dozen ALU operations against one 4-byte
// write, cheaper than a second pass. Limits: C <= 4 (mean and std are vec4s), src no
// larger than the output.

struct Params {
  n: u32,           // B * C * out_h * out_w
  channels: u32,
  src_h: u32,
  src_w: u32,
  out_h: u32,
  out_w: u32,
  pad_top: u32,     // where the source sits in the output-sized canvas
  pad_left: u32,
  seed: u32,
  offset: u32,      // counter of image 0's first draw
  degrees: f32,     // rotation range; 0 turns rotation off
  flip: u32,        // 1: flip each image with probability 1/2
  crop_pad: u32,    // random-crop zero padding; 0 turns cropping off
  mean: vec4<f32>,
  stdev: vec4<f32>,    // (`std` is a WGSL reserved word)
}

override BILINEAR: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// Canvas pixel (y, x) of channel plane `plane` (= b * C + c) as a raw value in [0, 255]; 0 outside.
fn canvas(plane: u32, y: i32, x: i32) -> f32 {
  let sy = y - i32(params.pad_top);
  let sx = x - i32(params.pad_left);
  if (sy < 0 || sx < 0 || sy >= i32(params.src_h) || sx >= i32(params.src_w)) { return 0.0; }
  let k = (plane * params.src_h + u32(sy)) * params.src_w + u32(sx);
  return f32((src[k >> 2u] >> ((k & 3u) * 8u)) & 0xffu);
}

// The canvas at continuous index coordinates (uy, ux): pixel centres sit at integers.
fn interpolate(plane: u32, uy: f32, ux: f32) -> f32 {
  if (!BILINEAR) {
    return canvas(plane, i32(floor(uy + 0.5)), i32(floor(ux + 0.5)));
  }
  let y0 = floor(uy);
  let x0 = floor(ux);
  let fy = uy - y0;
  let fx = ux - x0;
  let iy = i32(y0);
  let ix = i32(x0);
  let top = mix(canvas(plane, iy, ix), canvas(plane, iy, ix + 1), fx);
  let bottom = mix(canvas(plane, iy + 1, ix), canvas(plane, iy + 1, ix + 1), fx);
  return mix(top, bottom, fy);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let x = i % params.out_w;
    let y = (i / params.out_w) % params.out_h;
    let plane = i / (params.out_w * params.out_h);   // b * C + c
    let c = plane % params.channels;
    let b = plane / params.channels;
    let counter = params.offset + 4u * b;

    var v = 0.0;
    var inside = true;
    var qy = i32(y);
    var qx = i32(x);
    if (params.crop_pad > 0u) {
      // torch.randint(0, 2 pad + 1): the top 24 bits scaled to the span, exact in integers.
      let span = 2u * params.crop_pad + 1u;
      qy += i32(((counter_hash(params.seed, counter + 2u) >> 8u) * span) >> 24u) - i32(params.crop_pad);
      qx += i32(((counter_hash(params.seed, counter + 3u) >> 8u) * span) >> 24u) - i32(params.crop_pad);
      inside = qy >= 0 && qx >= 0 && qy < i32(params.out_h) && qx < i32(params.out_w);
    }
    if (inside) {
      if (params.flip != 0u && (counter_hash(params.seed, counter + 1u) >> 8u) < 0x800000u) {
        qx = i32(params.out_w) - 1 - qx;
      }
      if (params.degrees > 0.0) {
        let u = unit(counter_hash(params.seed, counter));
        let angle = radians(params.degrees * (2.0 * u - 1.0));
        let cs = cos(angle);
        let sn = sin(angle);
        let cy = 0.5 * f32(params.out_h - 1u);
        let cx = 0.5 * f32(params.out_w - 1u);
        let dy = f32(qy) - cy;
        let dx = f32(qx) - cx;
        v = interpolate(plane, cy - sn * dx + cs * dy, cx + cs * dx + sn * dy);
      } else {
        v = canvas(plane, qy, qx);
      }
    }
    out[i] = (v / 255.0 - params.mean[c]) / params.stdev[c];
  }
}
