#!/usr/bin/python3
"""Transfer learning from PyTorch to clcnn through ONNX, on Fashion-MNIST.

    /usr/bin/python3 bench/transfer_demo.py --clcnn build/clcnn --out /tmp/transfer \
        [--blocks 1] [--body-epochs 3] [--epochs 2]

1. trains bench/resnet_pytorch.py's residual network (with a 5-way head) in
   PyTorch on the classes 0-4 only, and exports it to ONNX;
2. writes the classes 5-9 (labels 0-4 there) as IDX files;
3. `clcnn import`s the ONNX body and exports it as a network file, whose
   last dense layer is renamed `head` so that --init does not copy it (a new
   head, freshly initialised);
4. fine-tunes in clcnn with `--init body.onnx --freeze-until <the layer
   before the head>`, and trains the same network from scratch with the
   same recipe and epochs; prints both runs' per-epoch figures and a
   summary line.
"""
import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import resnet_pytorch as twin
except ImportError as error:
    print(f"transfer_demo: skipped, {error}", file=sys.stderr)
    sys.exit(0)


def write_idx(path, array):
    dims = array.ndim
    header = bytes([0, 0, 8, dims]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def raw(directory, prefix):
    for suffix in (".gz", ""):
        path = os.path.join(directory, prefix + suffix)
        if os.path.exists(path):
            return twin.read_idx(path)
    raise FileNotFoundError(prefix)


def train_body(args, images, labels):
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.from_numpy(images[:, None].astype(np.float32) / 255.0)
    mean, std = x.mean().item(), x.std(unbiased=False).item()
    x = (x - mean) / std
    y = torch.from_numpy(labels.astype(np.int64))
    model = twin.ResNet(args.blocks)
    model.fc = nn.Linear(64, 5)
    nn.init.xavier_uniform_(model.fc.weight)
    nn.init.zeros_(model.fc.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    for epoch in range(args.body_epochs):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * (1 + np.cos(np.pi * epoch / args.body_epochs)) / 2
        model.train()
        order = torch.randperm(len(x), generator=generator)
        correct = 0
        for first in range(0, len(x), args.batch):
            index = order[first : first + args.batch]
            optimizer.zero_grad()
            scores = model(x[index])
            F.cross_entropy(scores, y[index]).backward()
            optimizer.step()
            correct += (scores.argmax(1) == y[index]).sum().item()
        print(f"pytorch body, classes 0-4, epoch {epoch + 1}/{args.body_epochs}: "
              f"train acc {100 * correct / len(x):.2f}%", flush=True)
    model.eval()
    return model


def run(command):
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    lines = [l for l in result.stdout.splitlines() if re.match(r"epoch \d+/\d+:", l) or "copied" in l]
    for line in lines:
        print("  " + line)
    if result.returncode != 0:
        print(result.stdout[-2000:] + result.stderr[-2000:], file=sys.stderr)
        sys.exit(1)
    final = [l for l in lines if re.match(r"epoch \d+/\d+:", l)][-1]
    return float(re.search(r"test loss [\d.]+ acc ([\d.]+)%", final).group(1)), time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clcnn", default="build/clcnn")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--out", default="/tmp/clcnn-transfer")
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--body-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads or os.cpu_count())
    os.makedirs(args.out, exist_ok=True)

    train_x, train_y = raw(args.data, "train-images-idx3-ubyte"), raw(args.data, "train-labels-idx1-ubyte")
    test_x, test_y = raw(args.data, "t10k-images-idx3-ubyte"), raw(args.data, "t10k-labels-idx1-ubyte")
    first = train_y < 5
    body = train_body(args, train_x[first], train_y[first])
    onnx_path = os.path.join(args.out, "body.onnx")
    torch.onnx.export(body, torch.zeros(1, 1, 28, 28), onnx_path, opset_version=13,
                      input_names=["input"], output_names=["scores"],
                      dynamic_axes={"input": {0: "batch"}, "scores": {0: "batch"}},
                      # batchnorm stays a layer of its own (not folded into the
                      # convolutions), so the network trained from scratch has it too
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)

    data_b = os.path.join(args.out, "classes5to9")
    os.makedirs(data_b, exist_ok=True)
    for prefix, images, labels in (("train", train_x, train_y), ("t10k", test_x, test_y)):
        keep = labels >= 5
        write_idx(os.path.join(data_b, f"{prefix}-images-idx3-ubyte"), images[keep])
        write_idx(os.path.join(data_b, f"{prefix}-labels-idx1-ubyte"), labels[keep] - 5)

    model_path, export_dir = os.path.join(args.out, "body.model"), os.path.join(args.out, "body")
    subprocess.run([args.clcnn, "import", onnx_path, model_path], check=True, capture_output=True)
    subprocess.run([args.clcnn, "export", model_path, export_dir], check=True, capture_output=True)
    lines = open(os.path.join(export_dir, "network.net")).read().splitlines()
    dense = [i for i, l in enumerate(lines) if l.split() and l.split()[0] == "dense"][-1]
    name_of = lambda line: re.search(r"\bname=(\S+)", line).group(1)
    body_end = name_of([l for l in lines[:dense] if l.strip() and not l.startswith("#")][-1])
    head_name = name_of(lines[dense])
    lines[dense] = re.sub(r"\bname=\S+", "name=head", lines[dense])
    lines = [re.sub(rf"\b(inputs?=[^ ]*)\b{re.escape(head_name)}\b", r"\1head", l) for l in lines]
    net_path = os.path.join(args.out, "finetune.net")
    with open(net_path, "w") as f:
        f.write("\n".join(lines) + "\n")

    common = ["--data", data_b, "--epochs", str(args.epochs), "--batch", str(args.batch),
              "--lr", str(args.lr), "--momentum", "0.9", "--weight-decay", "5e-4",
              "--schedule", "cosine", "--seed", str(args.seed),
              # the exported network ends in its dense layer (PyTorch's
              # cross_entropy takes the scores): clcnn's loss from the last
              # layer would be MSE there
              "--loss", "xent"]
    tuned, tuned_s = run([args.clcnn, "train", net_path, "--init", onnx_path, "--freeze-until",
                          body_end, "--save", os.path.join(args.out, "finetuned.model")] + common)
    scratch, scratch_s = run([args.clcnn, "train", net_path, "--save",
                              os.path.join(args.out, "scratch.model")] + common)
    print(f"classes 5-9 after {args.epochs} epochs: fine-tuned head on the frozen PyTorch body "
          f"{tuned:.2f}% ({tuned_s:.0f} s), whole network from scratch {scratch:.2f}% "
          f"({scratch_s:.0f} s)")


if __name__ == "__main__":
    main()
