#!/usr/bin/python3
"""Cross-checks `clcnn forward` against PyTorch, layer by layer.

Generates random networks from every layer type and option of SPEC.md
(conv with square and rectangular kernels, strides, integer and 'same'
padding, bias on and off, 1x1 kernels; max and average pooling with size,
stride, padding and ceil mode; relu, leaky with a slope, sigmoid, tanh;
flatten; dense with and without bias; softmax), random weights written as
.npy, and random float32 inputs (batch 1..5). Runs

    clcnn --device D forward NET --weights DIR --input X.npy --output Y.npy --trace T

for D = opencl and reference, and compares every traced layer with a float64
PyTorch computation from the same weights.

Each layer is checked in isolation: its PyTorch input is clcnn's own output
of the layer before (float32 values, exactly representable in float64), so
an error is attributed to the layer that made it instead of being carried
and amplified down the network. The end-to-end difference of the last layer
(PyTorch run from the input on its own) is reported too, for information.

The error metric, per value:

    error = |clcnn - torch| / scale,   scale = max(|torch|, magnitude)

where magnitude is the size of what the layer adds up: for conv and dense
the same operation applied to |input| and |weights| plus |bias| (the sum of
the absolute values of the products), for average pooling the average of
|input| over the window; for every other layer it is |torch| alone. A float32
sum of n terms is accurate to about n ulps of the sum of |terms|, not of a
result that cancels to almost nothing, so this is the error a correct float32
implementation keeps small (a few 1e-7 here) while any wrong index, window,
padding or divisor makes it of order 1e-2..1. The target is 1e-4.

Usage:
    /usr/bin/python3 tools/check_pytorch.py [--count 300] [--seed 1] [--clcnn build/clcnn]
        [--devices opencl,reference] [--jobs 2] [--keep DIR] [--tolerance 1e-4]

Exit status 0 when every layer of every network is within the tolerance.
"""

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

ACTIVATIONS = ("relu", "leaky", "sigmoid", "tanh")


class Layer:
    """One line of a network file and what it means."""

    def __init__(self, kind):
        self.kind = kind
        self.options = []  # "key=value" words as written
        self.name = None
        self.variants = []  # labels for the report: "same", "ceil", "1x1", ...
        self.in_shape = None
        self.out_shape = None
        # conv and pooling
        self.size = (1, 1)
        self.stride = (1, 1)
        self.pad = (0, 0)  # or the string "same" for conv
        self.ceil = False
        # conv and dense
        self.filters = 0
        self.units = 0
        self.bias = True
        # leaky
        self.slope = 0.01

    def line(self):
        return " ".join([self.kind] + self.options)


def pair_text(pair, rng, force_pair=False):
    """'3' or '3x3' for a square pair (either spelling), '3x5' otherwise."""
    if pair[0] == pair[1] and not force_pair and rng.random() < 0.8:
        return str(pair[0])
    return "%dx%d" % pair


def same_padding(size, kernel, stride):
    """SPEC.md's 'same': ceil(in / stride) outputs, the odd row or column after."""
    outputs = -(-size // stride)
    total = max((outputs - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_output(size, kernel, stride, before, after):
    padded = size + before + after
    if kernel > padded:
        return None
    return (padded - kernel) // stride + 1


def pool_output(size, kernel, stride, pad, ceil):
    span = size + 2 * pad - kernel
    if span < 0:
        return None
    if not ceil:
        return span // stride + 1
    outputs = -(-span // stride) + 1
    if (outputs - 1) * stride >= size + pad:
        outputs -= 1
    return outputs


def random_pair(rng, low, high, square_probability):
    first = rng.randint(low, high)
    if rng.random() < square_probability:
        return (first, first)
    return (first, rng.randint(low, high))


def make_conv(rng, shape):
    c, h, w = shape
    layer = Layer("conv")
    big = rng.random() < 0.2
    layer.filters = rng.randint(1, 24 if big else 6)
    if rng.random() < 0.15:
        layer.size = (1, 1)
    else:
        layer.size = random_pair(rng, 1, 5, 0.7)
    if rng.random() < 0.6:
        layer.stride = (1, 1)
    else:
        layer.stride = random_pair(rng, 1, 3, 0.8)
    roll = rng.random()
    if roll < 0.3:
        layer.pad = "same"
    elif roll < 0.5:
        layer.pad = (0, 0)
    else:
        layer.pad = random_pair(rng, 0, 2, 0.8)
    layer.bias = rng.random() < 0.7

    if layer.pad == "same":
        top, bottom = same_padding(h, layer.size[0], layer.stride[0])
        left, right = same_padding(w, layer.size[1], layer.stride[1])
    else:
        top = bottom = layer.pad[0]
        left = right = layer.pad[1]
    out_h = conv_output(h, layer.size[0], layer.stride[0], top, bottom)
    out_w = conv_output(w, layer.size[1], layer.stride[1], left, right)
    if out_h is None or out_w is None:
        return None
    layer.padding = (top, bottom, left, right)
    layer.out_shape = (layer.filters, out_h, out_w)

    layer.options.append("filters=%d" % layer.filters)
    layer.options.append("size=" + pair_text(layer.size, rng))
    if layer.stride != (1, 1) or rng.random() < 0.2:
        layer.options.append("stride=" + pair_text(layer.stride, rng))
    if layer.pad == "same":
        layer.options.append("pad=same")
    elif layer.pad != (0, 0) or rng.random() < 0.2:
        layer.options.append("pad=" + pair_text(layer.pad, rng))
    if not layer.bias:
        layer.options.append("bias=false")
    elif rng.random() < 0.2:
        layer.options.append("bias=true")

    if layer.size == (1, 1):
        layer.variants.append("1x1")
    elif layer.size[0] != layer.size[1]:
        layer.variants.append("rectangular")
    if layer.stride != (1, 1):
        layer.variants.append("stride>1")
    if layer.pad == "same":
        layer.variants.append("same" + (" asymmetric" if (top != bottom or left != right) else ""))
    elif layer.pad != (0, 0):
        layer.variants.append("padded")
    layer.variants.append("bias" if layer.bias else "no bias")
    return layer


def make_pool(rng, shape, kind):
    c, h, w = shape
    layer = Layer(kind)
    layer.size = random_pair(rng, 1, 4, 0.75)
    if rng.random() < 0.5:
        layer.stride = layer.size
        explicit_stride = rng.random() < 0.2
    else:
        layer.stride = random_pair(rng, 1, 3, 0.8)
        explicit_stride = True
    if rng.random() < 0.4:
        layer.pad = (rng.randint(0, layer.size[0] // 2), rng.randint(0, layer.size[1] // 2))
    else:
        layer.pad = (0, 0)
    layer.ceil = rng.random() < 0.4
    out_h = pool_output(h, layer.size[0], layer.stride[0], layer.pad[0], layer.ceil)
    out_w = pool_output(w, layer.size[1], layer.stride[1], layer.pad[1], layer.ceil)
    if out_h is None or out_w is None or out_h < 1 or out_w < 1:
        return None
    layer.out_shape = (c, out_h, out_w)

    layer.options.append("size=" + pair_text(layer.size, rng))
    if explicit_stride:
        layer.options.append("stride=" + pair_text(layer.stride, rng))
    if layer.pad != (0, 0) or rng.random() < 0.1:
        layer.options.append("pad=" + pair_text(layer.pad, rng))
    if layer.ceil:
        layer.options.append("ceil=true")
    elif rng.random() < 0.2:
        layer.options.append("ceil=false")

    if layer.stride != layer.size:
        overlapping = layer.stride[0] < layer.size[0] or layer.stride[1] < layer.size[1]
        layer.variants.append("overlapping" if overlapping else "stride > size")
    if layer.pad != (0, 0):
        layer.variants.append("padded")
    if layer.ceil:
        layer.variants.append("ceil")
    if layer.size[0] != layer.size[1]:
        layer.variants.append("rectangular")
    return layer


def make_activation(rng, shape, kind):
    layer = Layer(kind)
    if kind == "leaky":
        roll = rng.random()
        if roll < 0.3:
            layer.slope = 0.01  # the default
        else:
            layer.slope = rng.choice([0.1, 0.2, 0.3, 0.05, 0.5, 1.5, -0.25])
            layer.options.append("slope=%g" % layer.slope)
    layer.out_shape = shape
    return layer


def make_dense(rng, shape):
    layer = Layer("dense")
    layer.units = rng.randint(1, 48 if rng.random() < 0.3 else 12)
    layer.bias = rng.random() < 0.7
    layer.options.append("units=%d" % layer.units)
    if not layer.bias:
        layer.options.append("bias=false")
    elif rng.random() < 0.2:
        layer.options.append("bias=true")
    layer.variants.append("bias" if layer.bias else "no bias")
    layer.out_shape = (layer.units,)
    return layer


def random_network(rng):
    """A list of layers, the input first, with shapes worked out."""
    big = rng.random() < 0.2
    channels = rng.randint(1, 16 if big else 4)
    height = rng.randint(3, 24 if big else 14)
    width = height if rng.random() < 0.5 else rng.randint(3, 24 if big else 14)
    first = Layer("input")
    first.options = ["channels=%d" % channels, "height=%d" % height, "width=%d" % width]
    first.out_shape = (channels, height, width)
    layers = [first]
    shape = first.out_shape

    for _ in range(rng.randint(1, 5)):
        roll = rng.random()
        for _attempt in range(20):
            if roll < 0.4:
                layer = make_conv(rng, shape)
            elif roll < 0.55:
                layer = make_pool(rng, shape, "maxpool")
            elif roll < 0.7:
                layer = make_pool(rng, shape, "avgpool")
            else:
                layer = make_activation(rng, shape, rng.choice(ACTIVATIONS))
            if layer is not None:
                break
        if layer is None:
            continue
        layer.in_shape = shape
        shape = layer.out_shape
        layers.append(layer)
        # an activation after a conv most of the time
        if layer.kind == "conv" and rng.random() < 0.6:
            activation = make_activation(rng, shape, rng.choice(ACTIVATIONS))
            activation.in_shape = shape
            layers.append(activation)

    if rng.random() < 0.75:
        flatten = Layer("flatten")
        flatten.in_shape = shape
        shape = (shape[0] * shape[1] * shape[2],)
        flatten.out_shape = shape
        layers.append(flatten)
        for _ in range(rng.randint(0, 2)):
            dense = make_dense(rng, shape)
            dense.in_shape = shape
            shape = dense.out_shape
            layers.append(dense)
            if rng.random() < 0.5:
                activation = make_activation(rng, shape, rng.choice(ACTIVATIONS))
                activation.in_shape = shape
                layers.append(activation)
    if rng.random() < 0.35:
        softmax = Layer("softmax")
        softmax.in_shape = shape
        softmax.out_shape = shape
        if len(shape) == 3:
            softmax.variants.append("3-D (last axis)")
        layers.append(softmax)

    # names: the default type<N>, or now and then a name= of our own
    counts = {}
    for index, layer in enumerate(layers):
        if layer.kind == "input":
            layer.name = "input"
            continue
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
        if rng.random() < 0.1:
            layer.name = "my_%s.%d" % (layer.kind, index)
            layer.options.append("name=" + layer.name)
        else:
            layer.name = "%s%d" % (layer.kind, counts[layer.kind])
    return layers


def network_text(layers, title):
    return "# %s\n" % title + "".join(layer.line() + "\n" for layer in layers)


def random_parameters(rng_np, layers):
    """{layer name: (weight, bias or None)} in PyTorch's shapes, float32."""
    parameters = {}
    for layer in layers:
        if layer.kind == "conv":
            c = layer.in_shape[0]
            fan_in = c * layer.size[0] * layer.size[1]
            weight = rng_np.standard_normal((layer.filters, c) + layer.size) / math.sqrt(fan_in)
            bias = rng_np.standard_normal(layer.filters) * 0.5 if layer.bias else None
        elif layer.kind == "dense":
            fan_in = layer.in_shape[0]
            weight = rng_np.standard_normal((layer.units, fan_in)) / math.sqrt(fan_in)
            bias = rng_np.standard_normal(layer.units) * 0.5 if layer.bias else None
        else:
            continue
        parameters[layer.name] = (
            weight.astype(np.float32),
            None if bias is None else bias.astype(np.float32),
        )
    return parameters


def torch_layer(layer, x, parameters):
    """The layer's output for x (float64), and the magnitude the error is measured against."""
    if layer.kind == "conv":
        weight, bias = parameters[layer.name]
        w = torch.from_numpy(weight.astype(np.float64))
        b = None if bias is None else torch.from_numpy(bias.astype(np.float64))
        top, bottom, left, right = layer.padding
        padded = F.pad(x, (left, right, top, bottom))
        if layer.pad == "same" and layer.stride == (1, 1):
            # PyTorch's own 'same' (stride 1 only): the odd row/column after
            y = F.conv2d(x, w, b, padding="same")
        else:
            y = F.conv2d(padded, w, b, stride=layer.stride)
        magnitude = F.conv2d(padded.abs(), w.abs(), None if b is None else b.abs(),
                             stride=layer.stride)
        return y, magnitude
    if layer.kind == "maxpool":
        y = F.max_pool2d(x, layer.size, layer.stride, layer.pad, ceil_mode=layer.ceil)
        return y, y.abs()
    if layer.kind == "avgpool":
        y = F.avg_pool2d(x, layer.size, layer.stride, layer.pad, ceil_mode=layer.ceil,
                         count_include_pad=True)
        magnitude = F.avg_pool2d(x.abs(), layer.size, layer.stride, layer.pad,
                                 ceil_mode=layer.ceil, count_include_pad=True)
        return y, magnitude
    if layer.kind == "relu":
        y = F.relu(x)
    elif layer.kind == "leaky":
        y = torch.where(x > 0, x, x * layer.slope)
    elif layer.kind == "sigmoid":
        y = torch.sigmoid(x)
    elif layer.kind == "tanh":
        y = torch.tanh(x)
    elif layer.kind == "flatten":
        y = x.reshape(x.shape[0], -1)
    elif layer.kind == "dense":
        weight, bias = parameters[layer.name]
        w = torch.from_numpy(weight.astype(np.float64))
        b = None if bias is None else torch.from_numpy(bias.astype(np.float64))
        y = F.linear(x, w, b)
        magnitude = F.linear(x.abs(), w.abs(), None if b is None else b.abs())
        return y, magnitude
    elif layer.kind == "softmax":
        y = F.softmax(x, dim=-1)
    else:
        raise ValueError("unknown layer " + layer.kind)
    return y, y.abs()


def layer_error(got, want, magnitude):
    """Worst error of the metric in the module docstring, and where it is."""
    got = got.astype(np.float64)
    difference = np.abs(got - want)
    scale = np.maximum(np.abs(want), magnitude)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.where(difference == 0, 0.0, difference / scale)
    error = np.where(np.isnan(got) != np.isnan(want), np.inf, error)
    error = np.where(np.isnan(error), np.inf, error)
    if error.size == 0:
        return 0.0, None
    index = np.unravel_index(int(np.argmax(error)), error.shape)
    return float(error[index]), index


def run_clcnn(clcnn, device, net_path, weights_dir, input_path, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    command = [clcnn, "--device", device, "forward", net_path, "--weights", weights_dir,
               "--input", input_path, "--output", os.path.join(out_dir, "output.npy"),
               "--trace", os.path.join(out_dir, "trace")]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return result.returncode, result.stderr.strip()


def variant_labels(layer):
    labels = [layer.kind]
    for variant in layer.variants:
        labels.append("%s %s" % (layer.kind, variant))
    return labels


def check_network(number, layers, parameters, images, work_dir, clcnn, devices, tolerance,
                  float64_input):
    """Runs one network on every device. Returns (per-device results, failures)."""
    net_dir = os.path.join(work_dir, "net%04d" % number)
    weights_dir = os.path.join(net_dir, "weights")
    os.makedirs(weights_dir, exist_ok=True)
    text = network_text(layers, "random network %d" % number)
    net_path = os.path.join(net_dir, "network.net")
    with open(net_path, "w") as f:
        f.write(text)
    for name, (weight, bias) in parameters.items():
        np.save(os.path.join(weights_dir, name + ".weight.npy"), weight)
        if bias is not None:
            np.save(os.path.join(weights_dir, name + ".bias.npy"), bias)
    input_path = os.path.join(net_dir, "input.npy")
    np.save(input_path, images.astype(np.float64) if float64_input else images)

    runs = {}
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        futures = {device: pool.submit(run_clcnn, clcnn, device, net_path, weights_dir,
                                       input_path, os.path.join(net_dir, device))
                   for device in devices}
        for device, future in futures.items():
            runs[device] = future.result()

    # PyTorch from the input alone, for the end-to-end figure
    x = torch.from_numpy(images.astype(np.float64))
    for layer in layers[1:]:
        x, _ = torch_layer(layer, x, parameters)
    end_to_end_reference = x.numpy()

    results = {}
    failures = []
    for device in devices:
        status, message = runs[device]
        out_dir = os.path.join(net_dir, device)
        if status != 0:
            failures.append("network %d on %s: clcnn exited with %d: %s\n%s"
                            % (number, device, status, message, text))
            continue
        per_layer = []
        previous = images  # clcnn converts a float64 input to float32 as well
        for index, layer in enumerate(layers[1:], start=1):
            path = os.path.join(out_dir, "trace", "%02d-%s.npy" % (index, layer.name))
            got = np.load(path)
            expected_shape = (images.shape[0],) + tuple(layer.out_shape)
            if got.dtype != np.float32 or got.shape != expected_shape:
                failures.append("network %d on %s: %s has %s %s, expected float32 %s\n%s"
                                % (number, device, path, got.dtype, got.shape, expected_shape,
                                   text))
                break
            want, magnitude = torch_layer(layer, torch.from_numpy(previous.astype(np.float64)),
                                          parameters)
            error, where = layer_error(got, want.numpy(), magnitude.numpy())
            per_layer.append((layer, error))
            if not error <= tolerance:
                failures.append(
                    "network %d on %s: layer %s (%s) error %.3g at %s: clcnn %.9g, torch %.9g, "
                    "magnitude %.3g\n%s"
                    % (number, device, layer.name, layer.line(), error, where,
                       float(got[where]), float(want.numpy()[where]),
                       float(magnitude.numpy()[where]), text))
            previous = got
        else:
            output = np.load(os.path.join(out_dir, "output.npy"))
            if not np.array_equal(output, previous):
                failures.append("network %d on %s: output.npy differs from the last trace file\n%s"
                                % (number, device, text))
            scale = max(float(np.abs(end_to_end_reference).max()), 1e-30)
            end_to_end = float(np.abs(output - end_to_end_reference).max()) / scale
            results[device] = (per_layer, end_to_end)
    return results, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="networks to generate")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generator")
    parser.add_argument("--clcnn", default="build/clcnn", help="the clcnn binary")
    parser.add_argument("--devices", default="opencl,reference")
    parser.add_argument("--jobs", type=int, default=2, help="networks checked at once")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--keep", help="write the networks and outputs here and keep them")
    args = parser.parse_args()

    clcnn = args.clcnn
    if not os.path.exists(clcnn):
        beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", args.clcnn)
        if os.path.exists(beside):
            clcnn = beside
        else:
            sys.exit("check_pytorch: no clcnn binary at %s (give --clcnn PATH)" % args.clcnn)
    clcnn = os.path.abspath(clcnn)
    devices = [d for d in args.devices.split(",") if d]
    torch.set_num_threads(1)
    # F.conv2d(padding="same") with even kernels warns that it copies the input
    warnings.filterwarnings("ignore", message="Using padding='same'")

    if args.keep:
        work_dir = args.keep
        os.makedirs(work_dir, exist_ok=True)
    else:
        work_dir = tempfile.mkdtemp(prefix="clcnn-check-pytorch-")

    rng = random.Random(args.seed)
    jobs = []
    for number in range(args.count):
        layers = random_network(rng)
        rng_np = np.random.default_rng(rng.randrange(2**32))
        parameters = random_parameters(rng_np, layers)
        batch = rng.randint(1, 5)
        scale = rng.choice([1.0, 1.0, 3.0, 0.1])
        images = (rng_np.standard_normal((batch,) + layers[0].out_shape) * scale).astype(
            np.float32)
        jobs.append((number, layers, parameters, images, rng.random() < 0.1))

    worst = {}  # (device, label) -> (error, network number, layer line)
    seen = {}  # label -> layers checked
    end_to_end_worst = {}
    failures = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(check_network, number, layers, parameters, images, work_dir, clcnn,
                               devices, args.tolerance, float64_input)
                   for number, layers, parameters, images, float64_input in jobs]
        for done, future in enumerate(futures, start=1):
            results, network_failures = future.result()
            failures.extend(network_failures)
            for failure in network_failures:
                print("FAIL " + failure, flush=True)
            number = jobs[done - 1][0]
            for device, (per_layer, end_to_end) in results.items():
                for layer, error in per_layer:
                    for label in variant_labels(layer):
                        key = (device, label)
                        if key not in worst or error > worst[key][0]:
                            worst[key] = (error, number, layer.line())
                        if device == devices[0]:
                            seen[label] = seen.get(label, 0) + 1
                if end_to_end > end_to_end_worst.get(device, (-1,))[0]:
                    end_to_end_worst[device] = (end_to_end, number)
            if done % 50 == 0:
                print("checked %d of %d networks" % (done, len(jobs)), flush=True)

    labels = sorted(seen, key=lambda label: (label.split(" ")[0], label))
    print()
    print("worst error per layer type (|clcnn - torch| / max(|torch|, magnitude)), %d networks"
          % len(jobs))
    header = "%-34s %7s" % ("layer", "layers") + "".join(" %22s" % d for d in devices)
    print(header)
    for label in labels:
        row = "%-34s %7d" % (label, seen[label])
        for device in devices:
            entry = worst.get((device, label))
            row += " %22s" % ("-" if entry is None else "%.3g (net %d)" % (entry[0], entry[1]))
        print(row)
    print()
    for device in devices:
        if device in end_to_end_worst:
            error, number = end_to_end_worst[device]
            print("%s: worst end-to-end difference of the output, relative to its largest value: "
                  "%.3g (net %d)" % (device, error, number))
    print()
    if failures:
        print("%d failures above %g" % (len(failures), args.tolerance))
    else:
        print("all layers within %g" % args.tolerance)
    if not args.keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
