#!/usr/bin/env python3
"""Training speed of one example network, clcnn against PyTorch, as pairs of
epochs run back to back in one process, so that both meet the same machine:

    CLCNN_LIBRARY=build/libclcnn.so /usr/bin/python3 bench/paired_train.py \
        [--net resnet|lenet5|twoconv] [--pairs 7] [--threads 2] [--batch 64] [--data DIR]

compare_pytorch.py times all of clcnn's figures first and all of PyTorch's
after: minutes apart, and on a shared machine its ratio moves with what
else ran in each half. Here each pair is one clcnn epoch and one PyTorch
epoch over the same data, in alternating order (clcnn first in even pairs,
PyTorch first in odd ones), and the figure is the median of the pairs'
ratios. Both sides train as clcnn bench and compare_pytorch.py do: the
first 6,400 Fashion-MNIST training images normalised with the training
set's mean and deviation, batch 64 (--batch), SGD with learning rate 0.01 and
momentum 0.9, after a warm-up epoch of 640 images each. clcnn runs through
its Python package (python/clcnn), which finds libclcnn.so as its README
says; PyTorch with torch.set_num_threads(--threads) and glibc's allocator
held steady as in compare_pytorch.py (--default-malloc: not).
"""
import argparse
import os
import statistics
import sys
import time

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPT_DIR)
sys.path.insert(0, os.path.join(SCRIPT_DIR, "..", "python"))

import compare_pytorch  # noqa: E402  (the data reader, the networks and their constants)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--net", default="resnet",
                   choices=[ident for ident, _, _ in compare_pytorch.NETWORKS])
    p.add_argument("--pairs", type=int, default=7, help="pairs of epochs (default 7)")
    p.add_argument("--threads", type=int, default=2, help="PyTorch's threads (default 2)")
    p.add_argument("--batch", type=int, default=compare_pytorch.TRAIN_BATCH,
                   help="images a step (default %d)" % compare_pytorch.TRAIN_BATCH)
    p.add_argument("--data", default=compare_pytorch.DEFAULT_DATA_DIR,
                   help="the Fashion-MNIST directory")
    p.add_argument("--net-dir", default=os.path.join(SCRIPT_DIR, "..", "examples"))
    p.add_argument("--default-malloc", action="store_true",
                   help="leave glibc's malloc thresholds at their defaults")
    args = p.parse_args()
    if args.pairs < 1:
        p.error("--pairs must be at least 1")
    if args.batch < 1:
        p.error("--batch must be at least 1")
    return args


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return "?"
    fields = {}
    for line in lines:
        key, colon, value = line.partition(":")
        if colon:
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "?")
    flags = fields.get("flags", "").split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return "%s (%s), %d cores" % (name, isa, os.cpu_count())


def main():
    args = parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch is imported
    malloc_setting = compare_pytorch.hold_malloc_steady(args.default_malloc)
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
    except ImportError as error:
        print("paired_train: PyTorch or NumPy is not installed (%s); skipped" % error)
        return 0
    try:
        import clcnn
    except (ImportError, OSError) as error:
        print("paired_train: the clcnn package or libclcnn.so was not found (%s): set "
              "CLCNN_LIBRARY=build/libclcnn.so" % error, file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)

    images, labels = compare_pytorch.load_split(args.data, "train")
    scaled = images.astype(np.float32) / 255.0
    mean, std = float(scaled.mean(dtype=np.float64)), float(scaled.std(dtype=np.float64))
    count = compare_pytorch.TRAIN_IMAGES
    x = np.ascontiguousarray(((scaled[:count] - mean) / std)[:, None, :, :], dtype=np.float32)
    y = labels[:count].astype(np.int32)
    warmup = compare_pytorch.TRAIN_WARMUP_IMAGES
    batch = args.batch

    file_name = {ident: name for ident, name, _ in compare_pytorch.NETWORKS}[args.net]
    path = os.path.join(args.net_dir, file_name)
    net = clcnn.Net(path)
    net.configure_training(batch_size=batch, optimizer="sgd", lr=0.01, momentum=0.9,
                           epochs=1000000)

    torch.manual_seed(1)
    model = compare_pytorch.network_model(torch, args.net, path)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(1)
    torch_x, torch_y = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def torch_epoch(n):
        order = torch.randperm(n, generator=generator)
        for first in range(0, n, batch):
            index = order[first:first + batch]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(torch_x[index]), torch_y[index]).backward()
            optimizer.step()

    def clcnn_epoch(n):
        net.train_epoch(x[:n], y[:n])

    def timed(epoch):
        start = time.perf_counter()
        epoch(count)
        return count / (time.perf_counter() - start)

    clcnn_epoch(warmup)
    torch_epoch(warmup)
    print("paired_train: %s, %s; PyTorch %s with %d threads, %s; clcnn %s" % (
        file_name, cpu_model(), torch.__version__, torch.get_num_threads(), malloc_setting,
        clcnn.version()))
    print("| pair | first | clcnn images/s | PyTorch images/s | clcnn/PyTorch |")
    print("|---:|---|---:|---:|---:|")
    ratios = []
    for pair in range(args.pairs):
        if pair % 2 == 0:
            ours = timed(clcnn_epoch)
            theirs = timed(torch_epoch)
        else:
            theirs = timed(torch_epoch)
            ours = timed(clcnn_epoch)
        ratios.append(ours / theirs)
        print("| %d | %s | %.0f | %.0f | %.2f |" % (pair + 1, "clcnn" if pair % 2 == 0 else
                                                   "PyTorch", ours, theirs, ratios[-1]),
              flush=True)
    print("median clcnn/PyTorch %.2f (lowest %.2f, highest %.2f) over %d pairs of epochs of "
          "%d images, batch %d" % (statistics.median(ratios), min(ratios), max(ratios),
                                   len(ratios), count, batch))
    net.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
