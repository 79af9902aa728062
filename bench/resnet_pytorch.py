#!/usr/bin/python3
"""The PyTorch twin of examples/resnet.net, trained with the same recipe as
clcnn, for the accuracy and speed comparison in bench/RESULTS.md.

    /usr/bin/python3 bench/resnet_pytorch.py --epochs 15 --batch 128 --lr 0.05 \
        --momentum 0.9 --weight-decay 5e-4 --augment crop=2,flip [--limit N]

is the twin of

    clcnn train examples/resnet.net --epochs 15 --batch 128 --lr 0.05 \
        --momentum 0.9 --weight-decay 5e-4 --schedule cosine --augment crop=2,flip

Same network (stem, three stages of two basic blocks with 16/32/64 channels,
batchnorm, projection shortcuts, global average pooling), same data
(Fashion-MNIST from /usr/share/datasets/fashion-mnist, pixels in [0, 1],
normalised with the training set's mean and standard deviation), SGD with
momentum and L2 weight decay, a per-epoch cosine schedule
lr * (1 + cos(pi * epoch / epochs)) / 2, shuffling every epoch, random crops
from a zero-padded image and horizontal flips. Prints one line per epoch:
training loss and accuracy, test loss and accuracy, seconds and images/s.
Threads: the machine's cores (os.cpu_count()) unless --threads.

    /usr/bin/python3 bench/resnet_pytorch.py --profile-layers 20 --batch 64 --threads 2

times 20 training steps on random images instead (after 10 unrecorded) and
prints PyTorch's time a call per layer shape, forward and backward (data
and weights together), as torch.profiler records it: the other side of
bench/conv_time.c's figures for clcnn's layers.
"""
import argparse
import gzip
import math
import os
import struct
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as error:  # the C suite never needs Python
    print(f"resnet_pytorch: skipped, {error}", file=sys.stderr)
    sys.exit(0)


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(directory, prefix, limit):
    def find(name):
        for candidate in (name + ".gz", name):
            path = os.path.join(directory, candidate)
            if os.path.exists(path):
                return path
        raise FileNotFoundError(os.path.join(directory, name))

    images = read_idx(find(f"{prefix}-images-idx3-ubyte")).astype(np.float32) / 255.0
    labels = read_idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return torch.from_numpy(images[:, None, :, :].copy()), torch.from_numpy(labels.copy())


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.shortcut(x) if self.shortcut else x))


class ResNet(nn.Module):
    """examples/resnet.net, layer for layer (blocks=2)."""

    def __init__(self, blocks):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for b in range(blocks):
                layers.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(64, 10)
        for m in self.modules():  # clcnn's initialisation: He before a relu, Xavier otherwise
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.stages(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def augment(batch, crop, flip, generator):
    if crop:
        n, _, h, w = batch.shape
        padded = F.pad(batch, (crop, crop, crop, crop))
        dy = torch.randint(0, 2 * crop + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * crop + 1, (n,), generator=generator)
        batch = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
                             for i in range(n)])
    if flip:
        mask = torch.rand(batch.shape[0], generator=generator) < 0.5
        batch = torch.where(mask[:, None, None, None], batch.flip(3), batch)
    return batch


def profile_layers(args):
    """Per layer shape: convolutions' forward and backward, batchnorm's, in
    ms a call, summed over args.profile_layers steps by torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(args.seed)
    model = ResNet(args.blocks)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(10):
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        start = time.perf_counter()
        for _ in range(args.profile_layers):
            step()
        seconds = time.perf_counter() - start
    names = {"aten::mkldnn_convolution": "conv forward", "aten::convolution_backward":
             "conv backward", "aten::native_batch_norm": "batchnorm forward",
             "aten::native_batch_norm_backward": "batchnorm backward"}
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.profile_layers} steps: {1000 * seconds / args.profile_layers:.1f} ms a step "
          f"(profiled), {args.batch * args.profile_layers / seconds:.0f} images/s")
    print("| operation | tensors (as the operator takes them) | calls a step | ms a call |")
    print("|---|---|---:|---:|")
    rows = []
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key in names:
            shapes = " ".join(str(shape) for shape in event.input_shapes[:3] if shape)
            calls = event.count / args.profile_layers
            rows.append((names[event.key], shapes, calls,
                         event.self_cpu_time_total / 1000 / event.count))
    for row in sorted(rows):
        print("| %s | %s | %g | %.2f |" % row)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--augment", default="crop=2,flip")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--test-limit", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--blocks", type=int, default=2, help="basic blocks per stage")
    parser.add_argument("--profile-layers", type=int, default=0, metavar="STEPS",
                        help="time STEPS training steps on random images, per layer shape")
    args = parser.parse_args()
    torch.set_num_threads(args.threads or os.cpu_count())
    if args.profile_layers:
        profile_layers(args)
        return
    crop, flip = 0, False
    for part in filter(None, args.augment.split(",")):
        if part.startswith("crop="):
            crop = int(part[5:])
        elif part == "flip":
            flip = True
        else:
            parser.error(f"--augment: unknown part '{part}' (crop=P, flip)")
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    train_x, train_y = load(args.data, "train", args.limit)
    test_x, test_y = load(args.data, "t10k", args.test_limit)
    mean, std = train_x.mean().item(), train_x.std(unbiased=False).item()
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    # Padding fills with the normalised zero, the training set's mean, as clcnn does.
    model = ResNet(args.blocks)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{len(train_x)} images, {len(test_x)} test images, {args.epochs} epochs")
    for epoch in range(args.epochs):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * (1 + math.cos(math.pi * epoch / args.epochs)) / 2
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        start = time.perf_counter()
        loss_sum, correct = 0.0, 0
        for first in range(0, len(train_x), args.batch):
            index = order[first : first + args.batch]
            x = augment(train_x[index], crop, flip, generator)
            y = train_y[index]
            optimizer.zero_grad()
            scores = model(x)
            loss = F.cross_entropy(scores, y)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += (scores.argmax(1) == y).sum().item()
        seconds = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            scores = torch.cat([model(test_x[i : i + 1000]) for i in range(0, len(test_x), 1000)])
            test_loss = F.cross_entropy(scores, test_y).item()
            test_accuracy = (scores.argmax(1) == test_y).float().mean().item()
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {loss_sum / len(train_x):.4f} "
              f"acc {100 * correct / len(train_x):.2f}% | test loss {test_loss:.4f} "
              f"acc {100 * test_accuracy:.2f}% | {seconds:.1f} s, "
              f"{len(train_x) / seconds:.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
