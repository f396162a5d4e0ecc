#!/usr/bin/env python3
"""PyTorch baseline for our benchmark suites, on the same problems (see bench/README.md).

  torch_baseline.py matmul     --out T.json [--matmul-json ours.json] [--quick]
  torch_baseline.py conv       --out T.json [--quick] [--batch N]
  torch_baseline.py train-step --out T.json [--quick] [--reps N] [--batch N] [--models a,b]
  torch_baseline.py all        --out T.json [--matmul-json ours.json] [--quick]
  torch_baseline.py compare    --dir DIR      (DIR/{matmul,conv,train-step,torch}.json -> a table)

Each section merges its results into --out (so the sections can run as separate, time-limited
steps). fp32 with TF32 off. On a CUDA device each measurement is the median over a few runs after
warm-up, timed with CUDA events; without one (a check on a CPU machine) with time.perf_counter.
cuDNN autotuning (cudnn.benchmark) is on, as a tuned PyTorch training run would have it. On CPU
PyTorch uses one thread per core (torch.set_num_threads(os.cpu_count()); Debian's build starts
with one).

matmul: the shapes of our matmul JSON (rows[].shape: M, N, K, batch, transA, transB), or, without
one, the same list as bench/matmul.ts. conv: the layer list of bench/conv.ts, forward (with bias),
input gradient and weight gradient. train-step: TinyTen, ResNet32, GoogLeNet (aux heads weighted
0.3), VGG16-BN as src/nn/models/*.ts builds them; one step = forward, cross-entropy, backward,
SGD(lr 0.01, momentum 0.9, nesterov, weight decay 5e-4); --models picks some (our names). Memory:
torch.cuda.max_memory_allocated on CUDA (peak_mib), and everywhere the growth of the process's peak
RSS over the RSS before the first step (peak_rss_growth_mib; None for a model whose steps did not
raise the process's peak, set by an earlier model: run one model per process to have each).
"""
import argparse
import json
import os
import resource
import signal
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.benchmark = True

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
if not CUDA:
    torch.set_num_threads(os.cpu_count() or 1)  # Debian's PyTorch starts with one thread


def source():
    name = torch.cuda.get_device_name() if CUDA else f"CPU, {torch.get_num_threads()} threads"
    return f"torch {torch.__version__}, {name}, fp32, TF32 off"


def time_ms(fn, warmup=3, reps=10):
    """Median milliseconds of one call of fn, after warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if CUDA:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


# ---------------------------------------------------------------- matmul

# bench/matmul.ts: SQUARE_SIZES and MODEL_SHAPES, used when our JSON is missing.
MATMUL_SHAPES = [{"name": f"square {n}", "M": n, "N": n, "K": n} for n in (256, 512, 1024, 1536, 2048)] + [
    {"name": "linear 512->4096 forward (x Wᵀ)", "M": 128, "N": 4096, "K": 512, "transB": True},
    {"name": "linear 512->4096 weight grad (gᵀ x)", "M": 4096, "N": 512, "K": 128, "transA": True},
    {"name": "linear 512->4096 input grad (g W)", "M": 128, "N": 512, "K": 4096},
    {"name": "classifier 64->10 forward", "M": 128, "N": 10, "K": 64, "transB": True},
    {"name": "conv 512->512 3x3 at 2x2 (VGG)", "M": 512, "N": 512, "K": 4608},
    {"name": "conv 512->512 3x3 at 1x1, batch 128", "M": 128, "N": 512, "K": 4608},
    {"name": "conv 64->64 3x3 at 32x32, batch 4", "M": 4096, "N": 64, "K": 576},
    {"name": "batched 16 x (64x64x64)", "M": 64, "N": 64, "K": 64, "batch": 16},
]


def bench_matmul(args, res):
    shapes = MATMUL_SHAPES
    if args.matmul_json and os.path.exists(args.matmul_json):
        shapes = [row["shape"] for row in json.load(open(args.matmul_json))["rows"]]
    if args.quick:
        shapes = [s for s in shapes if max(s["M"], s["N"], s["K"]) <= 512 or s.get("batch")][:4]
    out = res["shapes"] = {}
    for s in shapes:
        lead = [s["batch"]] if s.get("batch") else []
        # Stored as our benchmark stores them: A [K, M] when transposed, B [N, K] when transposed.
        a = torch.randn(*lead, *([s["K"], s["M"]] if s.get("transA") else [s["M"], s["K"]]), device=DEVICE)
        b = torch.randn(*lead, *([s["N"], s["K"]] if s.get("transB") else [s["K"], s["N"]]), device=DEVICE)
        at = a.transpose(-1, -2) if s.get("transA") else a
        bt = b.transpose(-1, -2) if s.get("transB") else b
        flops = 2 * s.get("batch", 1) * s["M"] * s["N"] * s["K"]
        # Enough calls per timed run for about 20 ms of work, as bench/matmul.ts does.
        once = time_ms(lambda: torch.matmul(at, bt), warmup=3, reps=3)
        calls = max(1, min(1000, round(20 / max(once, 1e-3))))

        def run():
            for _ in range(calls):
                torch.matmul(at, bt)

        ms = time_ms(run, warmup=1, reps=3 if args.quick else 7) / calls
        out[s["name"]] = {"shape": s, "ms": ms, "gflops": flops / ms / 1e6}
        print(f'matmul  {s["name"]:45s} {out[s["name"]]["gflops"]:10.1f} GFLOP/s')
    # Our JSON has a baseline slot keyed by shape name: fill it too.
    if args.matmul_json and os.path.exists(args.matmul_json) and not args.quick:
        report = json.load(open(args.matmul_json))
        report["baseline"] = {k: {"gflops": v["gflops"], "source": source()} for k, v in out.items()}
        json.dump(report, open(args.matmul_json, "w"), indent=2)


# ---------------------------------------------------------------- conv

# bench/conv.ts CONV_SHAPES: (net, cIn, cOut, size, k, stride, padding, count, quick)
def conv3(net, c_in, c_out, size, count, stride=1, quick=False):
    return (net, c_in, c_out, size, 3, stride, 1, count, quick)


CONV_SHAPES = [
    conv3("vgg16", 3, 64, 32, 1),
    conv3("vgg16", 64, 64, 32, 1, 1, True),
    conv3("vgg16", 64, 128, 16, 1),
    conv3("vgg16", 128, 128, 16, 1),
    conv3("vgg16", 128, 256, 8, 1),
    conv3("vgg16", 256, 256, 8, 2, 1, True),
    conv3("vgg16", 256, 512, 4, 1),
    conv3("vgg16", 512, 512, 4, 2),
    conv3("vgg16", 512, 512, 2, 3, 1, True),
    conv3("resnet32", 3, 16, 32, 1),
    conv3("resnet32", 16, 16, 32, 10, 1, True),
    conv3("resnet32", 16, 32, 32, 1, 2, True),
    ("resnet32", 16, 32, 32, 1, 2, 0, 1, True),
    conv3("resnet32", 32, 32, 16, 9),
    conv3("resnet32", 32, 64, 16, 1, 2),
    ("resnet32", 32, 64, 16, 1, 2, 0, 1, False),
    conv3("resnet32", 64, 64, 8, 9),
]


def layer_name(c_in, c_out, size, k, stride):
    """The `layer` label of bench/conv.ts, so rows can be matched."""
    return f"{c_in}->{c_out} {size}x{size} k{k}" + (f" s{stride}" if stride > 1 else "")


def conv_backward(dy, x, w, stride, padding, mask):
    """dX or dW through cuDNN's backward kernels (what autograd calls), without the autograd graph."""
    if hasattr(torch.ops.aten, "convolution_backward"):
        return torch.ops.aten.convolution_backward(dy, x, w, None, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1, mask)
    if mask[0]:
        return torch.nn.grad.conv2d_input(x.shape, w, dy, stride, padding)
    return torch.nn.grad.conv2d_weight(x, w.shape, dy, stride, padding)


def bench_conv(args, res):
    batch = args.batch or (4 if args.quick else 128)
    rows = res["rows"] = []
    step_ms = res["stepMs"] = {}
    res["batch"] = batch
    for net, c_in, c_out, size, k, stride, padding, count, quick in CONV_SHAPES:
        if args.quick and not quick:
            continue
        x = torch.randn(batch, c_in, size, size, device=DEVICE)
        w = torch.randn(c_out, c_in, k, k, device=DEVICE)
        b = torch.randn(c_out, device=DEVICE)
        h_out = (size + 2 * padding - k) // stride + 1
        dy = torch.randn(batch, c_out, h_out, h_out, device=DEVICE)
        flops = 2 * batch * c_out * h_out * h_out * c_in * k * k
        reps = 3 if args.quick else 10
        passes = {
            "forward": lambda: F.conv2d(x, w, b, stride, padding),
            "inputGrad": lambda: conv_backward(dy, x, w, stride, padding, [True, False, False]),
            "weightGrad": lambda: conv_backward(dy, x, w, stride, padding, [False, True, False]),
        }
        row = {"net": net, "layer": layer_name(c_in, c_out, size, k, stride), "count": count}
        for key, fn in passes.items():
            ms = time_ms(fn, warmup=2, reps=reps)
            row[key] = {"ms": ms, "gflops": flops / ms / 1e6}
        rows.append(row)
        step_ms[net] = step_ms.get(net, 0) + count * sum(row[p]["ms"] for p in passes)
        print(f'conv    {net:9s} {row["layer"]:24s} fwd {row["forward"]["gflops"]:9.1f}  dX {row["inputGrad"]["gflops"]:9.1f}'
              f'  dW {row["weightGrad"]["gflops"]:9.1f} GFLOP/s')



# ---------------------------------------------------------------- models (as src/nn/models/*.ts)

def conv_bn_relu(c_in, c_out, k, stride=1, padding=0, bias=True, eps=1e-5):
    return [nn.Conv2d(c_in, c_out, k, stride, padding, bias=bias), nn.BatchNorm2d(c_out, eps=eps), nn.ReLU()]


def tinyten(c=3, classes=10):
    blocks = [(16, 3, 1, 1), (16, 3, 1, 1), (32, 3, 2, 1), (32, 3, 1, 1), (32, 3, 1, 1), (64, 3, 2, 1), (64, 3, 1, 0), (64, 1, 1, 0)]
    layers = []
    for out, k, s, p in blocks:
        layers += conv_bn_relu(c, out, k, s, p)
        c = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.branch = nn.Sequential(*conv_bn_relu(c_in, c_out, 3, stride, 1, bias=False),
                                    nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        return F.relu(self.branch(x) + self.downsample(x))


def resnet32(c=3, classes=10):
    layers = conv_bn_relu(c, 16, 3, 1, 1, bias=False)
    c = 16
    for s, w in enumerate([16, 32, 64]):
        for i in range(5):
            layers.append(BasicBlock(c, w, 2 if i == 0 and s > 0 else 1))
            c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


def vgg16(c=3, classes=10):
    layers = []
    for block in [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]:
        for out in block:
            layers += conv_bn_relu(c, out, 3, 1, 1)
            c = out
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(0.5), nn.Linear(c, 512), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, classes))


def basic_conv(c_in, c_out, k, padding=0):
    """GoogLeNet's conv (no bias) -> BN (eps 1e-3) -> ReLU."""
    return nn.Sequential(*conv_bn_relu(c_in, c_out, k, 1, padding, bias=False, eps=1e-3))


class Inception(nn.Module):
    def __init__(self, c_in, c1, c3r, c3, c5r, c5, pool_proj):
        super().__init__()
        self.b1 = basic_conv(c_in, c1, 1)
        self.b2 = nn.Sequential(basic_conv(c_in, c3r, 1), basic_conv(c3r, c3, 3, 1))
        self.b3 = nn.Sequential(basic_conv(c_in, c5r, 1), basic_conv(c5r, c5, 3, 1))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), basic_conv(c_in, pool_proj, 1))
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def inception_aux(c_in, classes):
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), basic_conv(c_in, 128, 1), nn.Flatten(), nn.Linear(2048, 1024), nn.ReLU(),
                         nn.Dropout(0.7), nn.Linear(1024, classes))


class GoogLeNet(nn.Module):
    BLOCKS = [("3a", 64, 96, 128, 16, 32, 32), ("3b", 128, 128, 192, 32, 96, 64), ("4a", 192, 96, 208, 16, 48, 64),
              ("4b", 160, 112, 224, 24, 64, 64), ("4c", 128, 128, 256, 24, 64, 64), ("4d", 112, 144, 288, 32, 64, 64),
              ("4e", 256, 160, 320, 32, 128, 128), ("5a", 256, 160, 320, 32, 128, 128), ("5b", 384, 192, 384, 48, 128, 128)]

    def __init__(self, c=3, classes=10):
        super().__init__()
        self.stem = nn.Sequential(basic_conv(c, 64, 7, 3), basic_conv(64, 64, 1), basic_conv(64, 192, 3, 1))
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.names, blocks, c, aux_in = [], [], 192, {}
        for name, *cs in self.BLOCKS:
            blocks.append(Inception(c, *cs))
            c = blocks[-1].out_channels
            self.names.append(name)
            aux_in[name] = c
        self.blocks = nn.ModuleList(blocks)
        self.aux1 = inception_aux(aux_in["4a"], classes)
        self.aux2 = inception_aux(aux_in["4d"], classes)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(c, classes))

    def forward(self, x):
        x = self.pool(self.stem(x))  # 32 -> 16
        aux = []
        for name, block in zip(self.names, self.blocks):
            if name == "4a":
                x = self.pool(x)  # 16 -> 8
            x = block(x)
            if self.training and name == "4a":
                aux.append(self.aux1(x))
            if self.training and name == "4d":
                aux.append(self.aux2(x))
        return self.head(x), aux


# Parameter counts of our models at 3 channels, 10 classes (`neuralign bench train-step`).
MODELS = {"tinyten": (tinyten, 86_778), "resnet32": (resnet32, 466_906), "googlenet": (GoogLeNet, 9_960_638), "vgg16": (vgg16, 15_253_578)}


def loss_of(model, x, y):
    out = model(x)
    if isinstance(out, tuple):  # GoogLeNet in training: CE(main) + 0.3 (CE(aux1) + CE(aux2))
        logits, aux = out
        return F.cross_entropy(logits, y) + 0.3 * sum(F.cross_entropy(a, y) for a in aux)
    return F.cross_entropy(out, y)


def rss_mib():
    """The process's resident set now (/proc/self/statm), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib():
    """The process's peak resident set so far (ru_maxrss is KiB on Linux), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_list(text):
    """--models a,b: names of MODELS, in the order given."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown model '{(unknown or [text])[0]}' ({', '.join(MODELS)})")
    return names


def bench_train_step(args, res):
    batch = args.batch or (4 if args.quick else 128)
    reps = args.reps or (2 if args.quick else 10)
    rows = res["rows"] = []
    res.update(batch=batch, reps=reps)
    for name in args.models or MODELS:
        build, ours = MODELS[name]
        torch.manual_seed(1)
        model = build().to(DEVICE).train()
        params = sum(p.numel() for p in model.parameters())
        assert params == ours, f"{name}: {params} parameters, ours has {ours}"
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        x = torch.randn(batch, 3, 32, 32, device=DEVICE)
        y = torch.arange(batch, device=DEVICE) % 10

        def step():
            loss = loss_of(model, x, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=False)  # keeps gradient buffers, as our pool keeps them

        rss_before, peak_before = rss_mib(), peak_rss_mib()
        step()  # creates momentum and gradient buffers, autotunes cuDNN
        if CUDA:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        ms = time_ms(step, warmup=1, reps=reps)
        peak = torch.cuda.max_memory_allocated() / 2**20 if CUDA else None
        # ru_maxrss only rises: the growth is this model's when its steps raised it.
        peak_after = peak_rss_mib()
        rss_growth = peak_after - rss_before if peak_after > peak_before else None
        rows.append({"model": name, "batch": batch, "params": params, "ms_per_step": ms, "images_per_s": batch * 1000 / ms,
                     "peak_mib": peak, "peak_rss_growth_mib": rss_growth})
        print(f"train   {name:10s} {params:>11,} params {ms:9.1f} ms/step {batch * 1000 / ms:9.1f} images/s"
              + (f" {peak:8.0f} MiB peak" if peak is not None else "")
              + (f" {rss_growth:8.0f} MiB peak RSS growth" if rss_growth is not None else ""))
        del model, opt, x, y
        if CUDA:
            torch.cuda.empty_cache()


# ---------------------------------------------------------------- compare


def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None


def compare(args):
    """ours / torch speed per shape, layer and model (1.0 = as fast as PyTorch; 0.5 = twice as slow)."""
    d = args.dir
    torch_r = load(os.path.join(d, "torch.json")) or {}
    lines = [f'PyTorch: {torch_r.get("source", "missing")}. Ratios are our speed / PyTorch speed (higher is better).']
    mm, tm = load(os.path.join(d, "matmul.json")), torch_r.get("matmul", {}).get("shapes", {})
    if mm:
        lines += ["", f'matmul (GFLOP/s; ours = best variant; auto choice {mm["tuned"]["choice"]})',
                  f'{"shape":45s} {"ours":>9s} {"variant":>9s} {"torch":>9s} {"ratio":>6s}']
        for row in mm["rows"]:
            name = row["shape"]["name"]
            best = max((r for r in row["results"] if r.get("gflops")), key=lambda r: r["gflops"], default=None)
            t = tm.get(name, {}).get("gflops")
            ours = best["gflops"] if best else None
            lines.append(f'{name:45s} {fmt(ours)} {(best or {}).get("variant", "-"):>9s} {fmt(t)} {ratio(ours, t)}')
    else:
        lines.append("matmul: our JSON missing")
    cv, tc = load(os.path.join(d, "conv.json")), {(r["net"], r["layer"]): r for r in torch_r.get("conv", {}).get("rows", [])}
    if cv:
        lines += ["", f'conv2d, batch {cv["batch"]} (torch batch {torch_r.get("conv", {}).get("batch")}): ratio per pass, our GFLOP/s in brackets',
                  f'{"net":9s} {"layer":24s} {"fwd":>14s} {"dX":>14s} {"dW":>14s}']
        for r in cv["rows"]:
            t = tc.get((r["net"], r["layer"]))
            cells = [f'{ratio(r[p]["gflops"], t and t[p]["gflops"])} ({r[p]["gflops"]:6.0f})' for p in ("forward", "inputGrad", "weightGrad")]
            lines.append(f'{r["net"]:9s} {r["layer"]:24s} ' + " ".join(c.rjust(14) for c in cells))
        for key, ms in cv.get("stepMs", {}).items():
            t = torch_r.get("conv", {}).get("stepMs", {}).get(key.split()[0])
            lines.append(f"{key}: conv ms per step ours {ms:.1f}, torch {fmt(t).strip()}, ratio {ratio(t, ms).strip()}")
    else:
        lines.append("conv: our JSON missing")
    ts, tt = load(os.path.join(d, "train-step.json")), {r["model"]: r for r in torch_r.get("train-step", {}).get("rows", [])}
    if ts:
        lines += ["", "training step (images/s, peak MiB: our pool's high-water mark / torch.cuda.max_memory_allocated,"
                  " on CPU the peak RSS growth)",
                  f'{"model":10s} {"batch":>5s} {"ours":>9s} {"torch":>9s} {"ratio":>6s} {"ours MiB":>9s} {"torch MiB":>9s}']
        for r in ts["rows"]:
            t = tt.get(r["model"], {})
            lines.append(f'{r["model"]:10s} {r["batch"]:5d} {fmt(r["images_per_s"])} {fmt(t.get("images_per_s"))} '
                         f'{ratio(r["images_per_s"], t.get("images_per_s"))} {fmt(r["peak_pool_mib"])} {fmt(torch_mib(t))}'
                         + ("" if t.get("batch") in (None, r["batch"]) else f'  (torch batch {t["batch"]})')
                         + ("" if r.get("width", 1) == 1 else f'  (ours at width {r["width"]}: not comparable)'))
    else:
        lines.append("train-step: our JSON missing")
    print("\n".join(lines))


def torch_mib(row):
    """A torch train-step row's peak memory: CUDA's allocator peak, else the peak RSS growth."""
    return row.get("peak_mib") if row.get("peak_mib") is not None else row.get("peak_rss_growth_mib")


def fmt(v):
    return f"{v:9.1f}" if isinstance(v, (int, float)) else f'{"-":>9s}'


def ratio(a, b):
    return f"{a / b:6.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0 else f'{"-":>6s}'


# ---------------------------------------------------------------- main

SECTIONS = {"matmul": bench_matmul, "conv": bench_conv, "train-step": bench_train_step}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=[*SECTIONS, "all", "compare"])
    p.add_argument("--out", help="JSON file the section's results are merged into")
    p.add_argument("--matmul-json", help="our `bench matmul` JSON: its shapes are timed, its baseline slot filled")
    p.add_argument("--dir", help="compare: folder with matmul.json, conv.json, train-step.json, torch.json")
    p.add_argument("--quick", action="store_true", help="tiny settings (batch 4, a few shapes): a check on CPU")
    p.add_argument("--batch", type=int, help="conv and train-step batch (default 128; 4 with --quick)")
    p.add_argument("--reps", type=int, help="train-step: timed steps (median reported)")
    p.add_argument("--models", type=model_list, help=f"train-step: models, comma-separated ({', '.join(MODELS)}; default all)")
    args = p.parse_args()
    if args.command == "compare":
        return compare(args)
    print(f"{source()}; cudnn.benchmark on")
    report = load(args.out) if args.out else None
    report = report or {}
    report.update({"suite": "torch-baseline", "source": source(), "device": str(DEVICE), "quick": args.quick})
    # Results are filled in as they come and saved on exit, also when `timeout` stops us (SIGTERM).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    try:
        for name in SECTIONS if args.command == "all" else [args.command]:
            report[name] = {}
            SECTIONS[name](args, report[name])
    finally:
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            json.dump(report, open(args.out, "w"), indent=2)


if __name__ == "__main__":
    main()
