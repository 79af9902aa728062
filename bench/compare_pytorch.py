#!/usr/bin/python3
"""clcnn against PyTorch on the same CPU, in the same run.

Runs `clcnn bench --json` first, then measures the same figures with
PyTorch (the per-operation shapes, and training and inference of the
networks of examples/ on the same Fashion-MNIST images), one after the
other so that they never share the CPU, and prints clcnn/PyTorch ratios.

PyTorch is optional: without `import torch` this prints a message and
exits 0. Thread settings are made before torch is imported:
OMP_NUM_THREADS = --threads, OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = 1
(PyTorch parallelises around its BLAS calls itself); torch.set_num_threads.
oneDNN (torch.backends.mkldnn) is left at its default, on.

glibc's allocator is held steady for PyTorch (hold_malloc_steady): PyTorch
allocates its outputs and gradients afresh in every call, and with glibc's
default, adaptive thresholds its blocks of megabytes are mapped from the
kernel and returned to it call after call, each call faulting its pages in
again, depending on what the process ran before. Measured on an AMD EPYC
(2 cores): resnet_conv_c16 (16 channels, 28x28, batch 128) forward 55 and
backward 71 GFLOP/s in a fresh process, 266 and 225 held steady; the
residual network's training 1,400 against 1,800 images/s. --default-malloc
leaves glibc's defaults.

With --rounds N the operations are measured in pairs instead: each
operation N times, clcnn (`clcnn bench --ops --filter ID`) and PyTorch back
to back (clcnn first in even rounds, PyTorch first in odd ones), and each
figure's ratio is the median of its rounds' ratios. On a shared machine
whose speed drifts, the sequential ratios move with what else ran in each
half; paired ones see the same machine on both sides. (Training in pairs:
bench/paired_train.py.)

Usage: bench/compare_pytorch.py [--clcnn build/clcnn] [--repeat 5] [--quick]
       [--threads 2] [--json FILE] [--ops] [--train] [--infer] [--filter TEXT]
       [--rounds N]
"""

import argparse
import ctypes
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"

TRAIN_IMAGES = 6400
TRAIN_WARMUP_IMAGES = 640
TRAIN_BATCH = 64
INFER_IMAGES = 10000
INFER_BATCH = 256
MIN_RUN_SECONDS = 0.1  # as clcnn bench: a run repeats its call until it lasts this long

# The per-operation shapes of clcnn bench (host/cli/bench.c), with the same ids.
OP_SHAPES = [
    ("lenet_conv1", "conv", dict(N=64, C=1, H=28, W=28, K=6, R=5, pad=2)),
    ("lenet_conv2", "conv", dict(N=64, C=6, H=14, W=14, K=16, R=5, pad=0)),
    ("conv3x3_c64", "conv", dict(N=32, C=64, H=56, W=56, K=64, R=3, pad=1)),
    ("conv3x3_c128", "conv", dict(N=32, C=128, H=28, W=28, K=128, R=3, pad=1)),
    ("conv3x3_c256", "conv", dict(N=32, C=256, H=14, W=14, K=256, R=3, pad=1)),
    ("conv1x1_c64_k256", "conv", dict(N=32, C=64, H=56, W=56, K=256, R=1, pad=0)),
    ("conv1x1_c256_k64", "conv", dict(N=32, C=256, H=56, W=56, K=64, R=1, pad=0)),
    ("gemm_2048", "gemm", dict(M=2048, N=2048, K=2048)),
    ("maxpool_c64", "maxpool", dict(N=32, C=64, H=56, W=56, size=2)),
    ("resnet_conv_c16", "conv", dict(N=128, C=16, H=28, W=28, K=16, R=3, pad=1)),
    ("resnet_conv_c64", "conv", dict(N=128, C=64, H=7, W=7, K=64, R=3, pad=1)),
    ("resnet_conv_s2", "conv", dict(N=128, C=16, H=28, W=28, K=32, R=3, pad=1, stride=2)),
    ("resnet_shortcut", "conv", dict(N=128, C=16, H=28, W=28, K=32, R=1, pad=0, stride=2)),
    ("depthwise_c64", "conv", dict(N=32, C=64, H=56, W=56, K=64, R=3, pad=1, groups=64)),
    ("batchnorm_c64", "batchnorm", dict(N=32, C=64, H=56, W=56)),
]

NETWORKS = [("lenet5", "lenet5.net", "LeNet-5"), ("twoconv", "twoconv.net", "two-conv"),
            ("resnet", "resnet.net", "residual network")]


def parse_args():
    p = argparse.ArgumentParser(description="clcnn against PyTorch, same machine, same run")
    p.add_argument("--clcnn", default=None, help="the clcnn binary (default build/clcnn)")
    p.add_argument("--clcnn-json", default=None,
                   help="use a saved clcnn bench --json (or this script's --json) file "
                   "instead of running clcnn bench")
    p.add_argument("--device", default="opencl", choices=["opencl", "reference", "both"],
                   help="device(s) clcnn bench measures (default opencl)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per figure (default 5)")
    p.add_argument("--quick", action="store_true", help="passed to clcnn bench")
    p.add_argument("--threads", type=int, default=2, help="PyTorch threads (default 2)")
    p.add_argument("--ops", action="store_true", help="per-operation figures")
    p.add_argument("--train", action="store_true", help="training images/s")
    p.add_argument("--infer", action="store_true", help="inference images/s")
    p.add_argument("--filter", default=None, help="only figures whose id contains this")
    p.add_argument("--data", default=DEFAULT_DATA_DIR, help="Fashion-MNIST IDX directory")
    p.add_argument("--net-dir", default=None, help="directory of lenet5.net and twoconv.net")
    p.add_argument("--json", default=None, help="write every figure and ratio to this file")
    p.add_argument("--default-malloc", action="store_true",
                   help="leave glibc's malloc thresholds at their defaults (see above)")
    p.add_argument("--rounds", type=int, default=0,
                   help="operations in N alternating pairs of clcnn and PyTorch runs, the "
                   "median of the pairs' ratios (default 0: all of clcnn, then all of PyTorch)")
    args = p.parse_args()
    if args.rounds and (args.train or args.infer):
        p.error("--rounds pairs the operations; training in pairs: bench/paired_train.py")
    if args.rounds:
        args.ops = True
    if not (args.ops or args.train or args.infer):
        args.ops = args.train = args.infer = True
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.rounds < 0:
        p.error("--rounds must not be negative")
    if args.rounds and args.clcnn_json:
        p.error("--rounds runs clcnn bench itself: it takes no --clcnn-json")
    return args


def hold_malloc_steady(default_malloc):
    """Keeps blocks up to 32 MiB in the heap and the heap untrimmed up to
    1 GiB (mallopt M_MMAP_THRESHOLD, M_TRIM_THRESHOLD; fixed values also
    stop glibc's adapting them), so that PyTorch's tensors reuse memory
    instead of faulting fresh pages in each call. Returns what was done."""
    if default_malloc:
        return "glibc malloc at its defaults (--default-malloc)"
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        done = libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold,
                                                                          1 << 30)
    except (OSError, AttributeError):
        done = False
    return ("glibc malloc held steady: M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB" if done
            else "malloc at its defaults (no glibc mallopt here)")


def find_file(candidates):
    for path in candidates:
        if path and os.path.exists(path):
            return path
    return None


def selected(args, ident):
    return args.filter is None or args.filter in ident


# ---- clcnn ---------------------------------------------------------------------------------


def run_clcnn(args, net_dir, quiet=False):
    """Runs clcnn bench --json (its output shown only on failure when quiet);
    returns its parsed JSON or None."""
    if args.clcnn_json:
        with open(args.clcnn_json) as f:
            saved = json.load(f)
        return saved.get("clcnn", saved)  # this script's --json holds clcnn's under "clcnn"
    binary = args.clcnn or find_file(
        ["build/clcnn", os.path.join(SCRIPT_DIR, "..", "build", "clcnn")])
    if not binary or not os.path.exists(binary):
        print("compare_pytorch: no clcnn binary (build it, or give --clcnn PATH)", file=sys.stderr)
        return None
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        json_path = tmp.name
    command = [binary]
    if args.device != "both":
        command += ["--device", args.device]
    command += ["bench", "--json", json_path, "--repeat", str(args.repeat), "--data", args.data,
                "--net-dir", net_dir]
    if args.quick:
        command.append("--quick")
    for flag in ("ops", "train", "infer"):
        if getattr(args, flag) and not (args.ops and args.train and args.infer):
            command.append("--" + flag)
    if args.filter:
        command += ["--filter", args.filter]
    if not quiet:
        print("$ " + " ".join(command), flush=True)
    output = subprocess.PIPE if quiet else None
    result = subprocess.run(command, stdout=output, stderr=output, text=True)
    try:
        if result.returncode != 0:
            if quiet:
                print("$ " + " ".join(command) + "\n" + result.stdout + result.stderr,
                      file=sys.stderr)
            print("compare_pytorch: clcnn bench failed (exit %d)" % result.returncode,
                  file=sys.stderr)
            return None
        with open(json_path) as f:
            return json.load(f)
    finally:
        os.unlink(json_path)


def clcnn_figure(clcnn, ident, timing):
    """The median figure of a clcnn measurement on the OpenCL device, or None."""
    if not clcnn:
        return None
    for m in clcnn["measurements"]:
        if m["id"] == ident and m["device"] == "opencl" and m["timing"] == timing:
            value = m.get("value")
            return value["median"] if value else None
    return None


# ---- timing --------------------------------------------------------------------------------


def time_runs(fn, repeat):
    """Seconds per call of each of repeat runs, after a warm-up; a run repeats
    the call until it lasts MIN_RUN_SECONDS, as clcnn bench does."""
    fn()
    start = time.perf_counter()
    fn()
    one = time.perf_counter() - start
    calls = 1 if one >= MIN_RUN_SECONDS else int(MIN_RUN_SECONDS / max(one, 1e-9)) + 1
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - start) / calls)
    return runs, calls


def record(results, ident, unit, work, runs, calls, note=""):
    """Adds a figure: work (GFLOP, GB or images per call) over the median run."""
    median = statistics.median(runs)
    results.append({
        "id": ident, "unit": unit, "work_per_call": work, "calls_per_run": calls,
        "seconds_per_call": {"median": median, "min": min(runs), "max": max(runs)},
        "value": {"median": work / median, "min": work / max(runs), "max": work / min(runs)},
        "runs": runs, "note": note,
    })
    print("pytorch: %-34s %10.2f %s%s" % (ident, work / median, unit,
                                          ("  (" + note + ")") if note else ""), flush=True)


def pick_best(results, ident, candidates):
    """Keeps the faster of several ways PyTorch computes one figure."""
    best = max(candidates, key=lambda r: r["value"]["median"])
    best = dict(best)
    best["id"] = ident
    results.append(best)


def loss_backward_runs(torch, F, forward, inputs, forward_runs, repeat):
    """clcnn bench's backward figure in PyTorch: clcnn_net_backward runs the
    forward, an MSE loss against random targets and the gradients of the
    inputs and parameters, and the figure is that less clcnn_net_forward,
    per run. Here: forward(), F.mse_loss and torch.autograd.grad of inputs,
    less the median of forward_runs (the forward without autograd)."""
    target = torch.randn_like(forward().detach())

    def step():
        return torch.autograd.grad(F.mse_loss(forward(), target), inputs)

    both, calls = time_runs(step, repeat)
    forward_median = statistics.median(forward_runs)
    return [max(run - forward_median, 1e-12) for run in both], calls


# ---- operations ----------------------------------------------------------------------------


def bench_conv(torch, F, results, ident, s, repeat):
    n, c, h, w, k, r, pad = s["N"], s["C"], s["H"], s["W"], s["K"], s["R"], s["pad"]
    groups, stride = s.get("groups", 1), s.get("stride", 1)
    oh, ow = (h + 2 * pad - r) // stride + 1, (w + 2 * pad - r) // stride + 1
    gflop = 2.0 * n * k * (c // groups) * r * r * oh * ow * 1e-9
    x = torch.randn(n, c, h, w)
    weight = torch.randn(k, c // groups, r, r) * (2.0 / (c // groups * r * r)) ** 0.5
    bias = torch.zeros(k)

    def forward():
        return F.conv2d(x, weight, bias, stride=stride, padding=pad, groups=groups)

    with torch.no_grad():
        forward_runs, calls = time_runs(forward, repeat)
    record(results, ident + ".forward", "GFLOP/s", gflop, forward_runs, calls)

    x.requires_grad_(True)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    y = forward()
    g = torch.randn_like(y)
    runs, calls = time_runs(lambda: torch.autograd.grad(y, [x], g, retain_graph=True), repeat)
    record(results, ident + ".backward_data", "GFLOP/s", gflop, runs, calls)
    runs, calls = time_runs(
        lambda: torch.autograd.grad(y, [weight, bias], g, retain_graph=True), repeat)
    record(results, ident + ".backward_weights", "GFLOP/s", gflop, runs, calls)
    runs, calls = time_runs(
        lambda: torch.autograd.grad(y, [x, weight, bias], g, retain_graph=True), repeat)
    record(results, ident + ".backward_autograd", "GFLOP/s", 2 * gflop, runs, calls,
           "autograd alone, from a given output gradient")
    runs, calls = loss_backward_runs(torch, F, forward, [x, weight, bias], forward_runs, repeat)
    record(results, ident + ".backward", "GFLOP/s", 2 * gflop, runs, calls)


def bench_gemm(torch, F, results, ident, s, repeat):
    """GEMM two ways: torch.mm / linear (the system BLAS) and a 1x1 convolution
    of a 1x1 image (oneDNN); the faster of the two is PyTorch's figure."""
    m, n, k = s["M"], s["N"], s["K"]
    gflop = 2.0 * m * n * k * 1e-9
    x = torch.randn(m, k)
    weight = torch.randn(n, k) * (1.0 / k) ** 0.5
    bias = torch.zeros(n)
    ways_forward, ways_backward = [], []
    with torch.no_grad():
        runs, calls = time_runs(lambda: F.linear(x, weight, bias), repeat)
    record(ways_forward, ident + ".forward", "GFLOP/s", gflop, runs, calls,
           "F.linear: the system BLAS")
    x4, w4 = x.reshape(m, k, 1, 1), weight.reshape(n, k, 1, 1)
    with torch.no_grad():
        runs, calls = time_runs(lambda: F.conv2d(x4, w4, bias), repeat)
    record(ways_forward, ident + ".forward", "GFLOP/s", gflop, runs, calls,
           "1x1 conv2d: oneDNN")

    x.requires_grad_(True)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    runs, calls = loss_backward_runs(torch, F, lambda: F.linear(x, weight, bias),
                                     [x, weight, bias], ways_forward[0]["runs"], repeat)
    record(ways_backward, ident + ".backward", "GFLOP/s", 2 * gflop, runs, calls,
           "F.linear: the system BLAS")
    x4 = x.detach().reshape(m, k, 1, 1).requires_grad_(True)
    w4 = weight.detach().reshape(n, k, 1, 1).requires_grad_(True)
    runs, calls = loss_backward_runs(torch, F, lambda: F.conv2d(x4, w4, bias), [x4, w4, bias],
                                     ways_forward[1]["runs"], repeat)
    record(ways_backward, ident + ".backward", "GFLOP/s", 2 * gflop, runs, calls,
           "1x1 conv2d: oneDNN")
    pick_best(results, ident + ".forward", ways_forward)
    pick_best(results, ident + ".backward", ways_backward)


def bench_maxpool(torch, F, results, ident, s, repeat):
    n, c, h, w, size = s["N"], s["C"], s["H"], s["W"], s["size"]
    inputs, outputs = n * c * h * w, n * c * (h // size) * (w // size)
    x = torch.randn(n, c, h, w)
    with torch.no_grad():
        forward_runs, calls = time_runs(lambda: F.max_pool2d(x, size), repeat)
    record(results, ident + ".forward", "GB/s", 4.0 * (inputs + outputs) * 1e-9, forward_runs,
           calls)
    x.requires_grad_(True)
    y = F.max_pool2d(x, size)
    g = torch.randn_like(y)
    runs, calls = time_runs(lambda: torch.autograd.grad(y, [x], g, retain_graph=True), repeat)
    record(results, ident + ".backward_autograd", "GB/s", 4.0 * (2 * inputs + outputs) * 1e-9,
           runs, calls, "autograd alone, from a given output gradient")
    runs, calls = loss_backward_runs(torch, F, lambda: F.max_pool2d(x, size), [x], forward_runs,
                                     repeat)
    record(results, ident + ".backward", "GB/s", 4.0 * (2 * inputs + outputs) * 1e-9, runs,
           calls)


def bench_batchnorm(torch, F, results, ident, s, repeat):
    """As clcnn bench measures its batchnorm: forward in eval mode (running
    statistics); backward the train-mode forward, the MSE loss and backward,
    less the eval-mode forward (clcnn_net_backward less clcnn_net_forward)."""
    n, c, h, w = s["N"], s["C"], s["H"], s["W"]
    values = n * c * h * w
    x = torch.randn(n, c, h, w)
    weight, bias = torch.ones(c), torch.zeros(c)
    mean, var = torch.zeros(c), torch.ones(c)
    with torch.no_grad():
        forward, calls = time_runs(
            lambda: F.batch_norm(x, mean, var, weight, bias, training=False), repeat)
    record(results, ident + ".forward", "GB/s", 8.0 * values * 1e-9, forward, calls)
    x.requires_grad_(True)
    weight.requires_grad_(True)
    bias.requires_grad_(True)

    backward, calls_backward = loss_backward_runs(
        torch, F, lambda: F.batch_norm(x, mean, var, weight, bias, training=True),
        [x, weight, bias], forward, repeat)
    record(results, ident + ".backward", "GB/s", 12.0 * values * 1e-9, backward, calls_backward)


# ---- networks ------------------------------------------------------------------------------


def read_idx(path):
    import numpy as np
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    dims = magic & 0xFF
    if magic >> 8 != 0x08 or dims not in (1, 3):
        raise ValueError("%s: not an IDX file of unsigned bytes" % path)
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    offset = 4 + 4 * dims
    count = 1
    for d in shape:
        count *= d
    if len(data) < offset + count:
        raise ValueError("%s: truncated" % path)
    return np.frombuffer(data, dtype=np.uint8, count=count, offset=offset).reshape(shape)


def load_split(data_dir, prefix):
    def path_of(kind):
        base = os.path.join(data_dir, "%s-%s" % (prefix, kind))
        return find_file([base + ".gz", base])
    images = read_idx(path_of("images-idx3-ubyte"))
    labels = read_idx(path_of("labels-idx1-ubyte"))
    return images, labels


def build_network(torch, path):
    """A minimal reader of clcnn network files: the layers the examples use."""
    nn = torch.nn
    layers = []
    channels = height = width = units = None
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].split()
            if not line:
                continue
            kind, opts = line[0], dict(item.split("=", 1) for item in line[1:])
            opts.pop("name", None)

            def pair(key, default):
                text = opts.get(key, str(default))
                a, _, b = text.partition("x")
                return int(a), int(b or a)
            if kind == "input":
                channels, height, width = (int(opts[k]) for k in ("channels", "height", "width"))
            elif kind == "conv":
                kh, kw = pair("size", 1)
                sh, sw = pair("stride", 1)
                ph, pw = pair("pad", 0)
                filters = int(opts["filters"])
                layers.append(nn.Conv2d(channels, filters, (kh, kw), (sh, sw), (ph, pw),
                                        bias=opts.get("bias", "true") == "true"))
                channels = filters
                height = (height + 2 * ph - kh) // sh + 1
                width = (width + 2 * pw - kw) // sw + 1
            elif kind in ("maxpool", "avgpool"):
                kh, kw = pair("size", 1)
                sh, sw = pair("stride", "%dx%d" % (kh, kw))
                ph, pw = pair("pad", 0)
                ceil = opts.get("ceil", "false") == "true"
                pool = nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d
                layers.append(pool((kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil))
                with torch.no_grad():
                    shape = layers[-1](torch.zeros(1, channels, height, width)).shape
                height, width = shape[2], shape[3]
            elif kind == "flatten":
                layers.append(nn.Flatten())
                units = channels * height * width
            elif kind == "dense":
                out = int(opts["units"])
                layers.append(nn.Linear(units, out, bias=opts.get("bias", "true") == "true"))
                units = out
            elif kind == "relu":
                layers.append(nn.ReLU())
            elif kind == "leaky":
                layers.append(nn.LeakyReLU(float(opts.get("slope", "0.01"))))
            elif kind == "sigmoid":
                layers.append(nn.Sigmoid())
            elif kind == "tanh":
                layers.append(nn.Tanh())
            elif kind == "softmax":
                pass  # the training loss takes logits: nn.CrossEntropyLoss
            else:
                raise ValueError("%s:%d: layer %s is not supported here" % (path, number, kind))
    return nn.Sequential(*layers)


def network_model(torch, ident, path):
    """The residual network is a graph: its twin is bench/resnet_pytorch.py's
    model; the sequential examples are read from their files."""
    if ident != "resnet":
        return build_network(torch, path)
    sys.path.insert(0, SCRIPT_DIR)
    import resnet_pytorch
    return resnet_pytorch.ResNet(blocks=2)


def bench_network(torch, F, results, ident, path, train_x, train_y, test_x, args):
    torch.manual_seed(1)
    if args.train and selected(args, ident + ".train"):
        model = network_model(torch, ident, path)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        generator = torch.Generator().manual_seed(1)

        def epoch(count):
            order = torch.randperm(count, generator=generator)
            total = torch.zeros(())
            for first in range(0, count, TRAIN_BATCH):
                index = order[first:first + TRAIN_BATCH]
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(train_x[index]), train_y[index])
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(index)
            return float(total) / count

        epoch(TRAIN_WARMUP_IMAGES)
        runs = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            loss = epoch(TRAIN_IMAGES)
            runs.append(time.perf_counter() - start)
        record(results, ident + ".train", "images/s", float(TRAIN_IMAGES), runs, 1,
               "batch %d, SGD momentum 0.9, last epoch loss %.3f" % (TRAIN_BATCH, loss))
    if args.infer and selected(args, ident + ".infer"):
        model = network_model(torch, ident, path)
        model.eval()
        images = test_x[:INFER_IMAGES]

        def infer():
            with torch.inference_mode():
                for first in range(0, len(images), INFER_BATCH):
                    model(images[first:first + INFER_BATCH])

        infer()
        runs = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            infer()
            runs.append(time.perf_counter() - start)
        record(results, ident + ".infer", "images/s", float(len(images)), runs, 1,
               "batch %d" % INFER_BATCH)


# ---- output --------------------------------------------------------------------------------


def fmt(value):
    if value is None:
        return "–"
    if value >= 1000:
        return "%.0f" % value
    if value >= 100:
        return "%.1f" % value
    if value >= 1:
        return "%.2f" % value
    return "%.3f" % value


def ratio_rows(clcnn, results):
    rows = []
    for r in results:
        # clcnn_net_forward chunks the GEMM's batch of 2048; clcnn bench also
        # reports the forward kernels of one launch (its id + "_single").
        for clcnn_id in (r["id"], r["id"] + "_single"):
            wall = clcnn_figure(clcnn, clcnn_id, "wall")
            kernel = clcnn_figure(clcnn, clcnn_id, "kernel")
            if clcnn_id != r["id"] and not kernel:
                continue
            torch_value = r["value"]["median"]
            rows.append({
                "id": clcnn_id, "unit": r["unit"], "pytorch": torch_value,
                "note": r.get("note", ""), "clcnn_wall": wall, "clcnn_kernel": kernel,
                "ratio_wall": wall / torch_value if wall else None,
                "ratio_kernel": kernel / torch_value if kernel else None,
            })
    return rows


def print_ratios(rows, header):
    print()
    print("## clcnn (OpenCL) / PyTorch")
    print()
    for line in header:
        print("- " + line)
    print()
    print("| figure | unit | clcnn wall | clcnn kernel | PyTorch | clcnn/PyTorch wall "
          "| clcnn/PyTorch kernel |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio_wall = "%.2f" % r["ratio_wall"] if r["ratio_wall"] else "–"
        ratio_kernel = "%.2f" % r["ratio_kernel"] if r["ratio_kernel"] else "–"
        name = r["id"]
        if name.startswith("gemm") and r["note"]:
            name += " (PyTorch: " + r["note"] + ")"
        print("| %s | %s | %s | %s | %s | %s | %s |" % (
            name, r["unit"], fmt(r["clcnn_wall"]), fmt(r["clcnn_kernel"]), fmt(r["pytorch"]),
            ratio_wall, ratio_kernel))
    sys.stdout.flush()


def bench_operation(torch, F, results, ident, kind, shape, repeat):
    bench = {"conv": bench_conv, "gemm": bench_gemm, "batchnorm": bench_batchnorm,
             "maxpool": bench_maxpool}[kind]
    bench(torch, F, results, ident, shape, repeat)


def paired_operations(args, net_dir, torch, F, malloc_setting):
    """--rounds: each operation's figures as the median of rounds of clcnn
    and PyTorch run back to back; prints the table and writes --json."""
    load_before = os.getloadavg()
    alone = argparse.Namespace(**vars(args))
    alone.ops, alone.train, alone.infer = True, False, False
    pairs = {}  # figure id -> the rounds' ratio_rows entries
    for ident, kind, shape in OP_SHAPES:
        if not selected(args, ident):
            continue
        alone.filter = ident
        for round_index in range(args.rounds):
            clcnn, results = None, []
            for side in ("clcnn", "pytorch") if round_index % 2 == 0 else ("pytorch", "clcnn"):
                if side == "clcnn":
                    clcnn = run_clcnn(alone, net_dir, quiet=True)
                    if not clcnn:
                        return 1
                else:
                    bench_operation(torch, F, results, ident, kind, shape, args.repeat)
            for row in ratio_rows(clcnn, results):
                pairs.setdefault(row["id"], []).append(row)
    load_after = os.getloadavg()

    def median_of(rows, key):
        values = [r[key] for r in rows if r[key]]
        return statistics.median(values) if values else None

    print()
    print("## clcnn (OpenCL) / PyTorch, operations in %d pairs" % args.rounds)
    print()
    print("- PyTorch %s, %d threads, oneDNN %s, %s; load average %.2f before, %.2f after" % (
        torch.__version__, torch.get_num_threads(),
        "on" if torch.backends.mkldnn.enabled else "off", malloc_setting, load_before[0],
        load_after[0]))
    print("- each pair: clcnn bench --ops --filter ID and PyTorch's figure back to back "
          "(medians of %d runs each); the ratio is the median of the pairs' ratios, with "
          "the lowest and highest; backward: the forward, an MSE loss and the gradients, "
          "less the forward, on both sides" % args.repeat)
    print()
    print("| figure | unit | clcnn wall | PyTorch | clcnn/PyTorch wall | lowest-highest "
          "| clcnn/PyTorch kernel |")
    print("|---|---|---:|---:|---:|---|---:|")
    summary = []
    for ident, rows in pairs.items():
        ratios = [r["ratio_wall"] for r in rows if r["ratio_wall"]]
        entry = {
            "id": ident, "unit": rows[0]["unit"], "pairs": rows,
            "clcnn_wall": median_of(rows, "clcnn_wall"), "pytorch": median_of(rows, "pytorch"),
            "ratio_wall": statistics.median(ratios) if ratios else None,
            "ratio_kernel": median_of(rows, "ratio_kernel"),
        }
        summary.append(entry)
        span = "%.2f-%.2f" % (min(ratios), max(ratios)) if ratios else "–"
        print("| %s | %s | %s | %s | %s | %s | %s |" % (
            ident, entry["unit"], fmt(entry["clcnn_wall"]), fmt(entry["pytorch"]),
            "%.2f" % entry["ratio_wall"] if entry["ratio_wall"] else "–", span,
            "%.2f" % entry["ratio_kernel"] if entry["ratio_kernel"] else "–"))
    sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(),
                       "malloc": malloc_setting, "rounds": args.rounds,
                       "load_average_before": load_before, "load_average_after": load_after,
                       "paired": summary}, f, indent=1)
    return 0


def loaded_blas():
    """The BLAS library this process loaded (PyTorch's F.linear calls it), from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    except OSError:
        return "unknown"
    return ", ".join(sorted(os.path.realpath(p) for p in paths)) or "none loaded"


def main():
    args = parse_args()
    # Thread settings must precede the import of torch.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    malloc_setting = hold_malloc_steady(args.default_malloc)
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as error:
        print("compare_pytorch: PyTorch is not installed (%s); skipped. "
              "On Debian: apt install python3-torch" % error)
        return 0
    torch.set_num_threads(args.threads)
    torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2))  # loads the BLAS
    blas = loaded_blas()

    net_dir = args.net_dir or find_file(["examples", os.path.join(SCRIPT_DIR, "..", "examples")])
    if not net_dir:
        print("compare_pytorch: no examples directory: give --net-dir", file=sys.stderr)
        return 1
    if args.rounds:
        return paired_operations(args, net_dir, torch, F, malloc_setting)
    load_before = os.getloadavg()
    clcnn = run_clcnn(args, net_dir)

    print("\ncompare_pytorch: PyTorch %s, %d threads, oneDNN %s" % (
        torch.__version__, torch.get_num_threads(),
        "on" if torch.backends.mkldnn.enabled else "off"), flush=True)
    results = []
    if args.ops:
        for ident, kind, shape in OP_SHAPES:
            if selected(args, ident):
                bench_operation(torch, F, results, ident, kind, shape, args.repeat)
    if args.train or args.infer:
        import numpy as np
        train_images, train_labels = load_split(args.data, "train")
        test_images, _ = load_split(args.data, "t10k")
        # Normalised with the whole training set's mean and deviation, as clcnn bench does.
        scaled = train_images.astype(np.float32) / 255.0
        mean, std = float(scaled.mean(dtype=np.float64)), float(scaled.std(dtype=np.float64))
        train_x = torch.from_numpy((scaled[:TRAIN_IMAGES] - mean) / std).unsqueeze(1).contiguous()
        train_y = torch.from_numpy(train_labels[:TRAIN_IMAGES].astype(np.int64))
        test_x = torch.from_numpy(
            (test_images.astype(np.float32) / 255.0 - mean) / std).unsqueeze(1).contiguous()
        for ident, file_name, _ in NETWORKS:
            bench_network(torch, F, results, ident, os.path.join(net_dir, file_name), train_x,
                          train_y, test_x, args)
    load_after = os.getloadavg()

    rows = ratio_rows(clcnn, results)
    header = [
        "PyTorch %s, torch.set_num_threads(%d), OMP_NUM_THREADS=%s, OPENBLAS_NUM_THREADS=%s, "
        "oneDNN %s" % (torch.__version__, torch.get_num_threads(), os.environ["OMP_NUM_THREADS"],
                       os.environ["OPENBLAS_NUM_THREADS"],
                       "on" if torch.backends.mkldnn.enabled else "off"),
        "PyTorch's BLAS (F.linear, nn.Linear): %s; %s" % (blas, malloc_setting),
        "clcnn: %s" % (clcnn["devices"].get("opencl", "?") if clcnn else "not run"),
        "load average %.2f before, %.2f after (1 min)" % (load_before[0], load_after[0]),
        "medians of %d runs; ratio > 1: clcnn is faster; backward: as clcnn bench's "
        "(clcnn_net_backward less clcnn_net_forward), the forward, an MSE loss and the "
        "gradients of input and parameters (F.mse_loss, torch.autograd.grad) less the "
        "forward; *.backward_autograd: torch.autograd.grad alone from a given output "
        "gradient; conv backward_data and backward_weights: torch.autograd.grad for the "
        "input, or weight + bias" % args.repeat,
        "gemm: PyTorch's faster of F.linear (system BLAS) and a 1x1 conv2d (oneDNN); "
        "clcnn_net_forward runs a batch in chunks only when a layer's outputs exceed 2^24 "
        "floats; then *.forward_single is the one-launch forward inside clcnn_net_backward "
        "(kernel time only)",
    ]
    print_ratios(rows, header)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas,
                "malloc": malloc_setting,
                "environment": {k: os.environ.get(k) for k in
                                ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
                "load_average_before": load_before, "load_average_after": load_after,
                "pytorch": results, "ratios": rows, "clcnn": clcnn,
            }, f, indent=1)
    return 0 if clcnn else 1


if __name__ == "__main__":
    sys.exit(main())
